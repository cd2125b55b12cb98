"""check-contracts without dbt: expected findings on the fixtures, targets, dialects, bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from dbt_bulwark import cli
from dbt_bulwark.checks.contracts import has_primary_key, nodes_to_check
from dbt_bulwark.project.workspace import open_workspace
from dbt_bulwark.sql.columns import display_name

FIXTURES = Path(__file__).parent / "fixtures" / "contracts"


def copy_project(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest)
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    return dest


def run(project: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict]]:
    capsys.readouterr()
    code = cli.main(["check-contracts", "--format", "json", "--repo-root", str(project),
                     "--project-dir", str(project), "--no-cache", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)["findings"]


def by_model(findings: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in findings:
        out.setdefault(f["node"].split(".")[-1], set()).add(f["code"])
    return out


@pytest.fixture(autouse=True)
def duckdb_profile(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A readable DuckDB profile for every profile name the fixtures use (the dialect)."""
    d = tmp_path_factory.getbasetemp() / "_profiles"
    if not d.exists():
        d.mkdir()
        names = ("contracts_oracle", "contracts_presence", "p", "bad")
        (d / "profiles.yml").write_text("".join(
            f"{n}:\n  target: dev\n  outputs:\n    dev: {{type: duckdb, path: x.duckdb}}\n"
            for n in names))
    monkeypatch.setenv("DBT_PROFILES_DIR", str(d))


@pytest.fixture(scope="module")
def oracle_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("c"), "oracle")


@pytest.fixture(scope="module")
def presence_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("c"), "presence")


def test_oracle_fixture_findings(oracle_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, findings = run(oracle_project, "--all-files", capsys=capsys)
    assert code == 1
    assert by_model(findings) == {
        "fail_missing": {"BLK211"},
        "fail_extra": {"BLK210"},
        "fail_type": {"BLK212"},
        "fail_star": {"BLK210"},
        "fail_cte": {"BLK212"},
        "fail_ephemeral": {"BLK210"},
        "fail_seed": {"BLK212"},
        "fail_case": {"BLK210", "BLK211"},
        "fail_no_type": {"BLK205"},
        "fail_bad_type": {"BLK206"},
        "fail_no_columns": {"BLK204"},
    }
    text = {f["code"] + " " + f["message"] for f in findings}
    assert any("'ordered_at' (type timestamp)" in t for t in text)
    assert any("declared integer but the SQL produces double" in t for t in text)


def test_presence_fixture_findings(presence_project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, findings = run(presence_project, "--all-files", capsys=capsys)
    assert code == 1
    got = by_model(findings)
    assert got == {
        "dim_items": {"BLK201"},                 # critical, has unique+not_null: no BLK209
        "items_public": {"BLK201", "BLK209"},    # access: public, no YAML at all
        "items_unknown": {"BLK201", "BLK209"},
        "fct_prices_star": {"BLK210"},           # contract from dbt_project.yml via var()
        "view_constraints": {"BLK207", "BLK208"},
        "uses_unknown_macro": {"BLK213"},
        "constraints_no_contract": {"BLK207"},
        "eph_contracted": {"BLK202"},
        "inc_contracted": {"BLK203"},
    }
    sev = {(f["node"].split(".")[-1], f["code"]): f["severity"] for f in findings}
    assert sev[("uses_unknown_macro", "BLK213")] == "info"
    assert sev[("view_constraints", "BLK207")] == "warning"
    where = {(f["node"].split(".")[-1], f["code"]): (f["path"], f["line"]) for f in findings}
    assert where[("dim_items", "BLK201")] == ("models/core/_core.yml", 4)
    assert where[("items_public", "BLK201")] == ("models/core/items_public.sql", 1)
    assert where[("inc_contracted", "BLK203")][0] == "models/misc/inc_contracted.sql"


def test_var_can_switch_the_project_level_contract_off(presence_project: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _code, findings = run(presence_project, "--all-files", "--vars", "{finance_contracts: false}",
                          capsys=capsys)
    got = by_model(findings)
    assert "BLK201" in got["fct_prices"] and "BLK201" in got["fct_prices_star"]


def test_guessed_dialect_downgrades_dialect_dependent_findings(
        oracle_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path))     # no profiles.yml there
    monkeypatch.setenv("HOME", str(tmp_path))
    _code, findings = run(oracle_project, "--all-files", capsys=capsys)
    sev = {(f["node"].split(".")[-1], f["code"]): f["severity"] for f in findings}
    assert sev[("fail_type", "BLK212")] == "info"       # a type is unknowable without it
    assert sev[("fail_bad_type", "BLK206")] == "warning"
    assert sev[("fail_case", "BLK211")] == sev[("fail_case", "BLK210")] == "warning"
    assert sev[("fail_missing", "BLK211")] == "error"        # missing in every dialect
    assert all("dialect guessed" in f["message"] for f in findings
               if f["severity"] in ("warning", "info") and f["code"] != "BLK213")


def test_policy_select_and_switches(presence_project: Path, capsys: pytest.CaptureFixture[str],
                                    tmp_path: Path) -> None:
    project = tmp_path / "p"
    shutil.copytree(presence_project, project)
    (project / "bulwark.yml").write_text(
        "contracts:\n  select: 'path:models/misc'\n  check_columns: false\n")
    _code, findings = run(project, "--all-files", capsys=capsys)
    got = by_model(findings)
    assert "dim_items" not in got and "fct_prices_star" not in got      # no BLK201 / BLK210
    assert got["constraints_no_contract"] == {"BLK201", "BLK207"}


def test_changed_files_check_affected_contracts_only(oracle_project: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, findings = run(oracle_project, str(oracle_project / "models/marts/fail_type.sql"),
                         capsys=capsys)
    assert code == 1 and by_model(findings) == {"fail_type": {"BLK212"}}
    # an upstream change reaches the contracted models that select from it
    ws = open_workspace([str(oracle_project)], str(oracle_project), None, False)
    project = ws.projects()[0]
    names = {n.name for n in nodes_to_check(project, {"model.contracts_oracle.stg_customers"})}
    assert {"stg_customers", "fail_star", "pass_star", "fail_case"} <= names
    assert "pass_upstream_contract" not in names      # sees pass_basic's contract, not its SQL
    assert "fail_seed" not in names
    names = {n.name for n in nodes_to_check(project, {"seed.contracts_oracle.raw_orders"})}
    assert {"fail_ephemeral", "pass_ephemeral", "fail_seed"} <= names   # through the ephemeral


def test_clean_project_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "dbt_project.yml").write_text("name: p\nprofile: p\nconfig-version: 2\n")
    (project / "models").mkdir()
    (project / "models" / "a.sql").write_text("select 1 as id\n")
    code, findings = run(project, "--all-files", capsys=capsys)
    assert code == 0 and findings == []


def test_snowflake_names_and_types(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "sf"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: sf\nprofile: sf\nconfig-version: 2\n")
    (project / "bulwark.yml").write_text("dialect: snowflake\n")
    (project / "models" / "m.sql").write_text(
        "select cast(a as int) as CUSTOMER_ID, cast(b as varchar(3)) as name, "
        "cast(c as timestamp) as ts from t\n")
    (project / "models" / "m.yml").write_text(
        "version: 2\nmodels:\n  - name: m\n    config:\n      contract: {enforced: true}\n"
        "    columns:\n      - name: customer_id\n        data_type: number(38, 0)\n"
        "      - name: NAME\n        data_type: string\n"
        "      - name: ts\n        data_type: timestamp_ntz\n")
    code, findings = run(project, "--all-files", capsys=capsys)
    assert findings == [] and code == 0
    assert display_name("customer_id", "snowflake") == "CUSTOMER_ID"
    assert display_name("customer_id", "snowflake", quoted=True) == "customer_id"
    assert display_name("Customer_ID", "duckdb") == "Customer_ID"
    assert display_name("Customer_ID", "postgres") == "customer_id"


@pytest.mark.parametrize("yaml_text, sql", [
    ("version: 2\nmodels:\n  - name: m\n    config: {contract: {enforced: true}\n", "select 1 as a"),
    ("version: 2\nmodels:\n  - name: m\n    config:\n      contract: {enforced: true}\n"
     "    columns:\n      - name: a\n        data_type: int\n", "select {{ broken( }} as a"),
    ("version: 2\nmodels:\n  - name: m\n    config:\n      contract: {enforced: true}\n"
     "    columns:\n      - name: a\n        data_type: int\n", "select from where ((("),
    ("version: 2\nmodels:\n  - name: m\n    config:\n      contract: true\n"
     "    columns: 7\n", "select 1 as a"),
    ("version: 2\nmodels:\n  - name: m\n    config:\n      contract: {enforced: true}\n"
     "    columns:\n      - name: a\n        data_type: [int]\n", "select 1 as a"),
])
def test_bad_input_never_crashes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 yaml_text: str, sql: str) -> None:
    project = tmp_path / "bad"
    (project / "models").mkdir(parents=True)
    (project / "dbt_project.yml").write_text("name: bad\nprofile: bad\nconfig-version: 2\n")
    (project / "models" / "m.sql").write_bytes(sql.encode() + b"\n-- caf\xe9\n")
    (project / "models" / "m.yml").write_text(yaml_text)
    # every case fails on the non-UTF-8 byte (BLK003), with or without --fix; never exit 3
    code, findings = run(project, "--all-files", capsys=capsys)
    assert code == 1 and "BLK003" in {f["code"] for f in findings}, findings
    code, findings = run(project, "--all-files", "--fix", capsys=capsys)
    assert code == 1 and "BLK003" in {f["code"] for f in findings}, findings


def test_has_primary_key_variants(presence_project: Path) -> None:
    ws = open_workspace([str(presence_project)], str(presence_project), None, False)
    project = ws.projects()[0]
    models = {n.name: n for n in project.models()}
    assert has_primary_key(models["fct_prices"])          # column primary_key constraint
    assert has_primary_key(models["fct_prices_star"])     # unique + not_null tests
    assert has_primary_key(models["dim_items"])
    assert not has_primary_key(models["items_public"])


def test_usage_error_on_bad_selector(presence_project: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "p"
    shutil.copytree(presence_project, project)
    (project / "bulwark.yml").write_text("contracts:\n  select: 'nosuchmethod:x'\n")
    code = cli.main(["check-contracts", "--all-files", "--repo-root", str(project),
                     "--project-dir", str(project), "--no-cache"])
    assert code == 2


def test_hook_path_does_not_import_heavy_modules() -> None:
    from conftest import imported_by

    code = "import dbt_bulwark.commands.check_contracts, dbt_bulwark.checks.contracts"
    assert imported_by(code, ["sqlglot", "duckdb", "dbt", "dbt_bulwark.yaml_edit"]) == []
