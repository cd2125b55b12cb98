"""BLK132: the branches of a UNION / INTERSECT / EXCEPT with different numbers of columns.

Certain at the head when every branch's width is known; when one branch is `g.*` from a
relation of unknown columns, the change is judged against the git base: one branch changed
its number of columns while the `g.*` branch (same SQL, same relations) did not.

Scripted git repositories, the change staged as a commit would stage it, `bulwark
fast-compile` run as the hook runs (base = the index's HEAD).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_standins import _env, _git, committed_repo

from dbt_bulwark.sql.columns import set_operations, set_width_mismatch
from dbt_bulwark.sql.sql_verdicts import set_width_mismatches

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# an invented DuckDB project: `ledger.entries` and `ledger.archive` are sources whose columns
# are not declared
PROJECT = {
    "dbt_project.yml": "name: tally\nversion: '1.0'\nconfig-version: 2\nprofile: tally\n",
    "bulwark.yml": "dialect: duckdb\n",
    "packages.yml": "packages:\n  - package: acme/helpers\n    version: 0.1.0\n",
    "models/sources.yml": (
        "version: 2\n"
        "sources:\n"
        "  - name: ledger\n"
        "    tables:\n"
        "      - name: entries\n"
        "      - name: archive\n"
    ),
    "models/stock_counts.sql": (
        "select\n"
        "    7 as bin_id,\n"
        "    'washer' as part_name,\n"
        "    40 as on_hand\n"
    ),
    # the shape of the fault: `e.*` of unknown width, a second branch written out
    "models/stock_history.sql": (
        "{{ config(materialized='table') }}\n"
        "\n"
        "select e.*\n"
        "from {{ source('ledger', 'entries') }} e\n"
        "union all\n"
        "select\n"
        "    c.bin_id as bin_id,\n"
        "    2024 as fiscal_year,\n"
        "    c.part_name as part_name,\n"
        "    c.on_hand as quantity\n"
        "from {{ ref('stock_counts') }} c\n"
    ),
    # every branch of known width
    "models/stock_pairs.sql": (
        "select bin_id, on_hand from {{ ref('stock_counts') }}\n"
        "union all\n"
        "select bin_id, 0 as on_hand from {{ ref('stock_counts') }}\n"
    ),
    # the unknown branch reads a CTE
    "models/stock_merged.sql": (
        "with old as (\n"
        "    select * from {{ source('ledger', 'archive') }}\n"
        ")\n"
        "select o.* from old o\n"
        "except\n"
        "select bin_id, part_name, on_hand from {{ ref('stock_counts') }}\n"
    ),
    # the unknown branch is a project model
    "models/stock_again.sql": (
        "select s.* from {{ ref('stock_counts') }} s\n"
        "union all\n"
        "select 8, 'nut', 12\n"
    ),
    # columns matched by name: widths may differ
    "models/stock_by_name.sql": (
        "select e.* from {{ source('ledger', 'entries') }} e\n"
        "union all by name\n"
        "select bin_id, on_hand from {{ ref('stock_counts') }}\n"
    ),
    # a macro of a package that is not installed: the SQL is not what dbt compiles
    "models/stock_unrendered.sql": (
        "select e.* from {{ source('ledger', 'entries') }} e\n"
        "union all\n"
        "select {{ helpers.key(['bin_id']) }} as k, bin_id, on_hand\n"
        "from {{ ref('stock_counts') }}\n"
    ),
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return committed_repo(tmp_path_factory.mktemp("set_widths") / "repo", PROJECT)


def _staged(repo: Path, edits: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    """Stage ``edits`` (path -> new text), run fast-compile on them, restore the base."""
    try:
        for rel, text in edits.items():
            (repo / rel).write_text(text, encoding="utf-8")
        _git(repo, "add", "-A")
        return subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "fast-compile",
                               *extra, *edits], cwd=repo, env=_env(), capture_output=True,
                              text=True, timeout=600)
    finally:
        _git(repo, "reset", "-q", "--hard")


def _errors(out: str) -> list[str]:
    return [line for line in out.splitlines()
            if " BLK" in line and "[info]" not in line and "[warning]" not in line]


def _edit(rel: str, old: str, new: str) -> dict[str, str]:
    text = PROJECT[rel]
    assert old in text, old
    return {rel: text.replace(old, new, 1)}


# ----------------------------------------------------------------------------- faults

FAULTS = [
    # (edits, the error's place, what it says)
    (_edit("models/stock_history.sql", "    2024 as fiscal_year,\n", ""),
     "models/stock_history.sql:7:5:", "branch 2 has 3, was 4 at the base revision HEAD"),
    (_edit("models/stock_history.sql", "    c.on_hand as quantity\n",
           "    c.on_hand as quantity,\n    'new' as origin\n"),
     "models/stock_history.sql:7:5:", "branch 2 has 5, was 4"),
    (_edit("models/stock_merged.sql", "select bin_id, part_name, on_hand",
           "select bin_id, on_hand"),
     "models/stock_merged.sql:6:8:", "EXCEPT branches no longer"),
    (_edit("models/stock_again.sql", "select 8, 'nut', 12", "select 8, 'nut'"),
     "models/stock_again.sql:3:8:", "branch 2 has 2, was 3"),
]


@pytest.mark.parametrize("edits,where,says", FAULTS,
                         ids=["removed", "added", "cte-except", "model-star"])
def test_one_branch_changes_width_next_to_an_unknown_one(repo: Path, edits: dict[str, str],
                                                         where: str, says: str) -> None:
    proc = _staged(repo, edits)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = _errors(proc.stdout)
    assert len(errors) == 1, proc.stdout
    assert errors[0].startswith(where) and "BLK132" in errors[0], errors[0]
    assert says in errors[0], errors[0]
    assert "of a width bulwark cannot count) is unchanged" in errors[0]


@pytest.mark.parametrize("extra", [(), ("--no-base",)], ids=["base", "no-base"])
def test_known_widths_differ_without_the_base(repo: Path, extra: tuple[str, ...]) -> None:
    proc = _staged(repo, _edit("models/stock_pairs.sql", "select bin_id, 0 as on_hand",
                               "select bin_id"), *extra)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = _errors(proc.stdout)
    assert len(errors) == 1, proc.stdout
    assert errors[0].startswith("models/stock_pairs.sql:3:8: BLK132 UNION ALL branches have "
                                "different numbers of columns: branch 2 has 1, branch 1 has 2")


def test_judged_with_a_guessed_dialect_too(tmp_path: Path) -> None:
    files = {k: v for k, v in PROJECT.items() if k != "bulwark.yml"}
    guess = committed_repo(tmp_path / "repo", files)
    proc = _staged(guess, _edit("models/stock_history.sql", "    2024 as fiscal_year,\n", ""))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = _errors(proc.stdout)
    assert len(errors) == 1 and "BLK132" in errors[0], proc.stdout
    proc = _staged(guess, _edit("models/stock_history.sql", "as quantity", "as qty"))
    assert "BLK132" not in proc.stdout, proc.stdout


# ----------------------------------------------------------------------------- no finding

BENIGN = [
    # every branch the same way, the unknown one included
    {"models/stock_history.sql": PROJECT["models/stock_history.sql"].replace(
        "select e.*\n", "select e.*, 1 as batch\n").replace(
        "    c.on_hand as quantity\n", "    c.on_hand as quantity,\n    1 as batch\n")},
    # the unknown branch changed too (it drops the column the other one lost)
    {"models/stock_history.sql": PROJECT["models/stock_history.sql"].replace(
        "select e.*\n", "select e.* exclude (fiscal_year)\n").replace(
        "    2024 as fiscal_year,\n", "")},
    # the relation behind the star gained a column in the same change (losing one would
    # break the models that read it: BLK140, not this)
    {"models/stock_again.sql": PROJECT["models/stock_again.sql"].replace(
        "select 8, 'nut', 12", "select 8, 'nut', 12, 'steel'"),
     "models/stock_counts.sql": PROJECT["models/stock_counts.sql"].replace(
        "    40 as on_hand\n", "    40 as on_hand,\n    'steel' as grade\n")},
    # the source behind the star now names another table
    {"models/stock_history.sql": PROJECT["models/stock_history.sql"].replace(
        "    2024 as fiscal_year,\n", ""),
     "models/sources.yml": PROJECT["models/sources.yml"].replace(
        "      - name: entries\n", "      - name: entries\n        identifier: entries_v2\n")},
    # columns matched by name
    _edit("models/stock_by_name.sql", "select bin_id, on_hand", "select bin_id"),
    # SQL bulwark cannot render: not judged
    _edit("models/stock_unrendered.sql", " bin_id, on_hand\n", " bin_id\n"),
    # same widths: a renamed column, a comment, whitespace
    _edit("models/stock_history.sql", "as quantity", "as qty"),
    _edit("models/stock_history.sql", "union all\n", "-- archived rows first\nunion all\n"),
    {"models/stock_history.sql": PROJECT["models/stock_history.sql"].replace("    ", "  ")},
    # a new branch of the same width
    _edit("models/stock_again.sql", "select 8, 'nut', 12", "select 8, 'nut', 12\nunion all\n"
                                                         "select 9, 'bolt', 3"),
]


@pytest.mark.parametrize("edits", BENIGN, ids=[
    "every-branch", "star-changed", "upstream-changed", "source-changed", "by-name",
    "unrendered", "renamed", "comment", "whitespace", "new-branch"])
def test_consistent_or_unknowable_changes_pass(repo: Path, edits: dict[str, str]) -> None:
    proc = _staged(repo, edits)
    assert "BLK132" not in proc.stdout, proc.stdout
    assert not _errors(proc.stdout), proc.stdout


def test_clean_tree_has_no_set_width_findings(repo: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "fast-compile",
                           "--all-files"], cwd=repo, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert "BLK132" not in proc.stdout, proc.stdout


# ----------------------------------------------------------------------------- the SQL


@pytest.mark.parametrize("sql,widths", [
    ("select a, b from t union all select 1, 2", [2, 2]),
    ("select * from t union all select 1, 2", [None, 2]),
    ("select t.* exclude (a) from t union select 1", [None, 1]),
    ("select columns('a.*') from t union select 1", [None, 1]),
    ("select unnest(s) from t union select 1", [None, 1]),
    ("select count(*), (select max(x) from u) from t union select 1, 2", [2, 2]),
    ("(select 1, 2 union select 3, 4) union all (select 5 limit 1)", [2, 2, 1]),
    ("select (t).* from t union select 1", [None, 1]),
    ("select 1 union all values (1)", [1, None]),
])
def test_branch_widths(sql: str, widths: list[int | None]) -> None:
    ops = set_operations(sql, "duckdb")
    assert ops is not None and len(ops.operations) == 1
    assert [b.width for b in ops.operations[0].branches] == widths


@pytest.mark.parametrize("dialect,item", [
    ("spark", "stack(2, 1, 2, 3, 4)"),
    ("spark", "json_tuple(j, 'a', 'b')"),
    ("spark", "posexplode(arr)"),
    ("databricks", "explode(m) as (k, v)"),
    ("clickhouse", "untuple(t)"),
    ("bigquery", "s.*"),
    ("snowflake", "* exclude (a)"),
])
def test_items_that_may_be_several_columns(dialect: str, item: str) -> None:
    ops = set_operations(f"select {item} from t union all select 1, 2, 3", dialect)
    assert ops is not None
    assert [b.width for b in ops.operations[0].branches] == [None, 3]
    assert set_width_mismatch(ops.operations[0]) is None


def test_set_operations_inside_ctes_are_keyed_by_cte() -> None:
    sql = ("with a as (select 1 x union all select 2), b as (select 1, 2 union select 3)\n"
           "select * from a union all select * from b")
    ops = set_operations(sql, "duckdb")
    assert ops is not None
    assert [op.key for op in ops.operations] == [("", 0), ("a", 0), ("b", 0)]
    assert [set_width_mismatch(op) for op in ops.operations] == [None, None, (1, 1, 2)]
    assert set(ops.ctes) == {"a", "b"}


def test_the_shape_alone_reads_what_the_texts_read() -> None:
    """fast-compile asks for the shape only (no SQL written back): the same keys, kinds,
    widths and positions as with the texts, which only the base comparison reads."""
    sql = ("with a as (select 1 x union all select 2), b as (select t.*, 2 from t union all "
           "select 3)\nselect * from a union all select * from b union all select 1, 2")
    for dialect in ("duckdb", "bigquery", "snowflake", "postgres"):
        full, shape = set_operations(sql, dialect), set_operations(sql, dialect, texts=False)
        assert full is not None and shape is not None
        assert [(op.key, op.op, op.by_name, [(b.width, b.start) for b in op.branches])
                for op in shape.operations] == \
            [(op.key, op.op, op.by_name, [(b.width, b.start) for b in op.branches])
             for op in full.operations]
        assert full.ctes and not shape.ctes
        assert all(b.text for op in full.operations for b in op.branches)


@pytest.mark.parametrize("sql", [
    "select a, b from t union all by name select c from u",
    "select a from t union all select b, c from u",
])
def test_by_name_is_never_a_mismatch(sql: str) -> None:
    ops = set_operations(sql, "duckdb")
    assert ops is not None
    by_name = "by name" in sql
    assert (set_width_mismatch(ops.operations[0]) is None) == by_name


def test_unparsable_sql_has_no_verdict() -> None:
    assert set_operations("select from union all (", "duckdb") is None
    assert set_width_mismatches("select from union all (", "duckdb", "bulwark.yml") == []
    assert set_width_mismatches("select 1 union all select 1, 2", "postgres", "guess")
