"""Lateral column aliases (`select a + 1 as b, b * 2 as c`): a select item that uses an alias
defined earlier in the same select list, next to `select *` from a relation whose columns are
not declared.  Snowflake, DuckDB, Databricks, Redshift accept it; sqlglot alone will not
choose between the alias and an unknown column of the relation, so the model's output
columns were unknown and a column removed from it went unreported downstream.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_standins import _env, _git, committed_repo

from dbt_bulwark.sql.columns import column_uses, find_unknown_columns, infer_output_columns

# `shipments` is a relation whose columns are unknown (an undeclared source)
LATERAL_SQL = (
    "with raw as (\n"
    "    select * from shipments\n"
    ")\n"
    "select\n"
    "    parcel_code,\n"
    "    upper(parcel_code) as parcel_label,\n"
    "    sent_at::date as sent_on,\n"
    "    dateadd(day, 3, sent_on) as due_on,\n"
    "    coalesce(arrived_at::date, due_on) as arrived_on\n"
    "from raw\n"
)


@pytest.mark.parametrize(("dialect", "lateral"), [
    ("snowflake", True), ("duckdb", True), ("databricks", True), ("redshift", True),
    # no lateral aliases there: `sent_on` in `due_on` can only be a column of `shipments`;
    # bulwark does not guess, it sets that reference aside
    ("bigquery", False), ("postgres", False)])
def test_output_columns_with_lateral_alias_and_unknown_source(dialect: str,
                                                              lateral: bool) -> None:
    out = infer_output_columns(LATERAL_SQL, dialect, {"shipments": None})
    assert out.complete, out.reason
    assert [n.lower() for n in out.names] == [
        "parcel_code", "parcel_label", "sent_on", "due_on", "arrived_on"]
    by_name = {c.name.lower(): c.expression_sql.lower() for c in out.columns}
    if lateral:   # the lateral reference is the earlier item's expression
        assert "sent_at" in by_name["due_on"] and "sent_on" not in by_name["due_on"]
        assert "sent_at" in by_name["arrived_on"]
    else:
        assert "sent_at" not in by_name["due_on"]


def test_lateral_alias_lineage_and_unknown_columns() -> None:
    # one relation with known columns, one without: the lateral reference carries the
    # known column's lineage, and a misspelt known column is still reported once
    sql = ("select\n"
           "    s.sent_at::date as sent_on,\n"
           "    dateadd(day, 3, sent_on) as due_on,\n"
           "    c.carrier_name\n"
           "from shipments s\n"
           "join carriers c on c.carrier_id = s.carrier_id\n")
    upstream = {"shipments": {"sent_at": "timestamp", "carrier_id": "int"}, "carriers": None}
    assert infer_output_columns(sql, "snowflake", upstream).complete
    assert find_unknown_columns(sql, "snowflake", upstream) == []
    uses = column_uses(sql, "snowflake", upstream, "shipments", "sent_at")
    assert [(u.line, u.col) for u in uses] == [(2, 7)]
    assert {n.lower() for n in uses[0].output_columns} == {"sent_on", "due_on"}
    bad = find_unknown_columns(sql.replace("s.sent_at", "s.sentat"), "snowflake", upstream)
    assert len(bad) == 1 and bad[0].line == 2 and bad[0].suggestion == "sent_at"


def test_known_columns_still_prefer_what_sqlglot_chose() -> None:
    upstream = {"shipments": {"parcel_code": "varchar", "sent_at": "timestamp",
                              "arrived_at": "timestamp"}}
    out = infer_output_columns(LATERAL_SQL, "snowflake", upstream)
    assert out.complete and len(out.names) == 5
    assert out.columns[3].data_type == "DATE"


def test_aggregate_alias_is_not_expanded_into_an_aggregate() -> None:
    sql = ("select sum(amount) as total, sum(total) as twice\n"
           "from (select * from ledger)\n")
    # expanding would nest aggregates; the reference stays as sqlglot leaves it
    out = infer_output_columns(sql, "snowflake", {"ledger": None})
    assert [n.lower() for n in out.names] == ["total", "twice"] or not out.complete


# ---- through the hook, on a scripted git repository -----------------------------------------

pytestmark_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

PROJECT = {
    "dbt_project.yml": "name: freight\nversion: '1.0'\nconfig-version: 2\nprofile: freight\n",
    # the source declares no columns
    "models/sources.yml": (
        "version: 2\n"
        "sources:\n"
        "  - name: ops\n"
        "    tables:\n"
        "      - name: shipments\n"
    ),
    "models/stg_shipments.sql": LATERAL_SQL.replace(
        "shipments", "{{ source('ops', 'shipments') }}", 1),
    "models/late_parcels.sql": (
        "select\n"
        "    parcel_label,\n"
        "    due_on,\n"
        "    arrived_on\n"
        "from {{ ref('stg_shipments') }}\n"
        "where arrived_on > due_on\n"
    ),
}


def _repo(root: Path, dialect: str | None) -> Path:
    files = dict(PROJECT)
    if dialect:
        files["bulwark.yml"] = f"dialect: {dialect}\n"
    return committed_repo(root, files)


def _hook(repo: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "fast-compile", *files],
                          cwd=repo, env=_env(), capture_output=True, text=True, timeout=600)


def _errors(out: str) -> list[str]:
    return [line for line in out.splitlines()
            if " BLK" in line and "[info]" not in line and "[warning]" not in line]


@pytestmark_git
@pytest.mark.parametrize("dialect", ["snowflake", None], ids=["snowflake", "guessed"])
def test_column_removed_from_lateral_alias_model_is_blk140(tmp_path: Path,
                                                          dialect: str | None) -> None:
    repo = _repo(tmp_path / "repo", dialect)
    clean = _hook(repo, "models/stg_shipments.sql", "models/late_parcels.sql")
    assert clean.returncode == 0 and not _errors(clean.stdout), clean.stdout + clean.stderr

    rel = "models/stg_shipments.sql"
    text = (repo / rel).read_text(encoding="utf-8")
    line = "    upper(parcel_code) as parcel_label,\n"
    assert line in text
    (repo / rel).write_text(text.replace(line, ""), encoding="utf-8")
    _git(repo, "add", "-A")
    proc = _hook(repo, rel)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = _errors(proc.stdout)
    assert len(errors) == 1, proc.stdout
    assert errors[0].startswith("models/late_parcels.sql:2:")
    assert "BLK140" in errors[0] and "parcel_label" in errors[0]


@pytestmark_git
def test_benign_edit_of_lateral_alias_model_is_clean(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo", "snowflake")
    rel = "models/stg_shipments.sql"
    text = (repo / rel).read_text(encoding="utf-8")
    (repo / rel).write_text(text.replace("    parcel_code,\n",
                                         "    parcel_code,\n    1 as batch_no,\n"),
                            encoding="utf-8")
    _git(repo, "add", "-A")
    proc = _hook(repo, rel)
    assert proc.returncode == 0 and not _errors(proc.stdout), proc.stdout + proc.stderr


# ---- a column removed from a Snowflake model, used downstream next to what sqlglot cannot
# resolve (an alias in WHERE beside an undeclared source; LATERAL FLATTEN) -----------------

FREIGHT = {
    "dbt_project.yml": "name: freight\nversion: '1.0'\nconfig-version: 2\nprofile: freight\n",
    "models/sources.yml": (
        "version: 2\nsources:\n  - name: ops\n    tables:\n"
        "      - name: parcels\n      - name: carriers\n"
    ),
    # Snowflake-only syntax (`payload:path`): no other dialect parses it
    "models/stg_parcels.sql": (
        "select\n"
        "    id as parcel_id,\n"
        "    payload:carrier.code::varchar as carrier_code,\n"
        "    payload:tags as tags,\n"
        "    sent_at\n"
        "from {{ source('ops', 'parcels') }}\n"
    ),
    "models/parcel_tags.sql": (
        "select\n"
        "    parcel_id,\n"
        "    value::string as tag\n"
        "from {{ ref('stg_parcels') }},\n"
        "    lateral flatten(input => tags)\n"
    ),
    "models/parcel_carriers.sql": (
        "select\n"
        "    p.parcel_id,\n"
        "    p.carrier_code,\n"
        "    c.carrier_name,\n"
        "    datediff(day, p.sent_at, current_date) as age_days\n"
        "from {{ ref('stg_parcels') }} p\n"
        "left join {{ source('ops', 'carriers') }} c on c.code = p.carrier_code\n"
        "where age_days < 30\n"
    ),
}
# a profiles.yml checked in below the project, as CI passes it with --profiles-dir
CHECKED_IN_PROFILE = ("freight:\n  target: prod\n  outputs:\n    prod:\n      type: snowflake\n"
                      "      account: \"{{ env_var('FREIGHT_ACCOUNT') }}\"\n")


def _freight(root: Path, how: str) -> Path:
    files = dict(FREIGHT)
    if how == "bulwark.yml":
        files["bulwark.yml"] = "dialect: snowflake\n"
    elif how == "checked-in profile":
        files["profile/profiles.yml"] = CHECKED_IN_PROFILE
    elif how == "profiles disagree":   # one per warehouse: no guess from them
        files["profiles/snowflake/profiles.yml"] = CHECKED_IN_PROFILE
        files["profiles/duckdb/profiles.yml"] = CHECKED_IN_PROFILE.replace("snowflake", "duckdb")
    return committed_repo(root, files)


def _check(repo: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in _env().items() if k != "DBT_PROFILES_DIR"}
    return subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "check"], cwd=repo,
                          env=env, capture_output=True, text=True, timeout=600)


@pytestmark_git
@pytest.mark.parametrize("how", ["bulwark.yml", "checked-in profile"])
def test_removed_column_used_next_to_unresolvable_names_is_reported(tmp_path: Path,
                                                                     how: str) -> None:
    repo = _freight(tmp_path / "repo", how)
    rel = "models/stg_parcels.sql"
    text = (repo / rel).read_text(encoding="utf-8")
    (repo / rel).write_text(text.replace("    id as parcel_id,\n", ""), encoding="utf-8")
    _git(repo, "add", "-A")
    proc = _check(repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = {e.split(": ", 1)[0] + " " + e.split()[1] for e in _errors(proc.stdout)}
    # schema-diff at the uses, and fast-compile (BLK140) where every dialect tried agrees
    uses = {"models/parcel_carriers.sql:2:7",   # `p.parcel_id`, beside an alias in WHERE
            "models/parcel_tags.sql:2:5"}       # `parcel_id`, beside LATERAL FLATTEN
    assert {f"{u} BLK410" for u in uses} | {"models/stg_parcels.sql:1:1 BLK401"} <= errors, \
        proc.stdout
    assert {e.split()[0] for e in errors} <= uses | {"models/stg_parcels.sql:1:1"}, proc.stdout
    assert "models/parcel_carriers.sql:2:7 BLK140" in errors, proc.stdout


@pytestmark_git
@pytest.mark.parametrize("how", ["bulwark.yml", "checked-in profile", "none",
                                 "profiles disagree"])
def test_valid_edits_next_to_unresolvable_names_stay_clean(tmp_path: Path, how: str) -> None:
    repo = _freight(tmp_path / "repo", how)
    rel = "models/stg_parcels.sql"
    text = (repo / rel).read_text(encoding="utf-8")
    (repo / rel).write_text(text.replace("    sent_at\n", "    sent_at,\n    1 as batch_no\n"),
                            encoding="utf-8")
    rel2 = "models/parcel_carriers.sql"
    text2 = (repo / rel2).read_text(encoding="utf-8")
    (repo / rel2).write_text(text2.replace("where age_days < 30\n",
                                           "where age_days < 30 and carrier_name is not null\n"),
                             encoding="utf-8")
    _git(repo, "add", "-A")
    proc = _check(repo)
    assert proc.returncode == 0 and not _errors(proc.stdout), proc.stdout + proc.stderr


@pytestmark_git
def test_removed_column_named_like_an_alias_in_where_is_no_use(tmp_path: Path) -> None:
    # `where carrier_code ...` reads the relation's column while it has one, the select
    # alias once it is gone (Snowflake): that use does not break, the qualified ones do
    files = dict(FREIGHT)
    files["bulwark.yml"] = "dialect: snowflake\n"
    files["models/coded_parcels.sql"] = (
        "select\n"
        "    p.parcel_id,\n"
        "    upper(p.tags::varchar) as carrier_code\n"
        "from {{ ref('stg_parcels') }} p\n"
        "where carrier_code is not null\n"
    )
    repo = committed_repo(tmp_path / "repo", files)
    rel = "models/stg_parcels.sql"
    text = (repo / rel).read_text(encoding="utf-8")
    line = "    payload:carrier.code::varchar as carrier_code,\n"
    (repo / rel).write_text(text.replace(line, ""), encoding="utf-8")
    _git(repo, "add", "-A")
    proc = _check(repo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = _errors(proc.stdout)
    assert any(e.startswith("models/parcel_carriers.sql:3:") for e in errors), proc.stdout
    assert not any(e.startswith("models/coded_parcels.sql") for e in errors), proc.stdout


def test_checked_in_profile_is_the_guess_only_when_unambiguous(tmp_path: Path) -> None:
    from dbt_bulwark.project.profiles import checked_in_adapter

    def write(rel: str, adapter: str, name: str = "freight") -> None:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(CHECKED_IN_PROFILE.replace("freight", name).replace("snowflake", adapter),
                     encoding="utf-8")

    assert checked_in_adapter("freight", tmp_path) is None
    write("ci/other/deeper/profiles.yml", "bigquery")           # too deep
    write("dbt_packages/pkg/profiles.yml", "postgres")          # an installed package's
    write("profile/profiles.yml", "databricks", name="another")  # another profile
    assert checked_in_adapter("freight", tmp_path) is None
    write("profile/profiles.yml", "snowflake")
    assert checked_in_adapter("freight", tmp_path) == "snowflake"
    write("ci/duckdb/profiles.yml", "duckdb")                    # they disagree
    assert checked_in_adapter("freight", tmp_path) is None
    assert checked_in_adapter(None, tmp_path) is None
