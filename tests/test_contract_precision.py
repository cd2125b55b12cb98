"""Contract type verdicts equal dbt's for a known adapter (issue 10 item 6): dbt-duckdb
compares DuckDB's own types, precision and scale included (`select 1.234 as x` against
`numeric(38,3)` fails in `dbt build`); a guessed dialect or another adapter keeps the
base-type comparison. The oracle runs real `dbt build` on DuckDB for each case."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from dbt_oracle import dbt_command, dbt_env, require_dbt

from dbt_bulwark.cli import main

# (name, SQL, declared data_type, dbt build fails on DuckDB)
CASES = [
    ("decimal_scale_literal", "select 1.234 as x", "numeric(38,3)", True),
    ("decimal_exact", "select cast(1.234 as decimal(38,3)) as x", "numeric(38,3)", False),
    ("decimal_default", "select cast(1 as decimal) as x", "decimal(18,3)", False),
    ("decimal_precision", "select cast(1.5 as decimal(10,2)) as x", "decimal(12,2)", True),
    ("int_alias", "select 1::integer as x", "int", False),
    ("varchar_length", "select 'a' as x", "varchar(10)", False),
    ("sum_of_decimal", "select sum(y) as x from (select cast(1 as decimal(10,2)) as y) t",
     "decimal(38,2)", False),
    ("bigint_vs_int", "select 1::bigint as x", "integer", True),
]


def project(root: Path, sql: str, data_type: str, dialect: str | None = "duckdb") -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: prec\nversion: '1.0'\nconfig-version: 2\n"
                                          "profile: prec\n")
    if dialect:
        (root / "bulwark.yml").write_text(f"dialect: {dialect}\n")
    (root / "models" / "m.sql").write_text(sql + "\n")
    (root / "models" / "m.yml").write_text(textwrap.dedent(f"""\
        models:
          - name: m
            config:
              materialized: table
              contract: {{enforced: true}}
            columns:
              - name: x
                data_type: "{data_type}"
        """))
    return root


def bulwark_fails(capsys: pytest.CaptureFixture[str], root: Path) -> tuple[bool, list[dict]]:
    capsys.readouterr()
    rc = main(["check-contracts", "--project-dir", str(root), "--repo-root", str(root),
               "--format", "json", "--no-cache", "--all-files"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    return rc == 1 and any(f["code"] == "BLK212" for f in findings), findings


@pytest.mark.parametrize("name,sql,data_type,fails", CASES, ids=[c[0] for c in CASES])
def test_duckdb_precision_and_scale(name: str, sql: str, data_type: str, fails: bool,
                                    capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path / "none"))
    got, findings = bulwark_fails(capsys, project(tmp_path / "p", sql, data_type))
    assert got == fails, findings


def test_other_adapter_keeps_base_types(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path / "none"))
    got, findings = bulwark_fails(capsys, project(tmp_path / "p", "select cast(1.5 as "
                                                  "decimal(10,2)) as x", "numeric(12,2)",
                                                  "postgres"))
    assert not got, findings


@pytest.mark.oracle
@pytest.mark.slow
def test_verdicts_equal_dbt_build_on_duckdb(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    require_dbt()
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(
        f"prec:\n  target: dev\n  outputs:\n    dev: {{type: duckdb, path: "
        f"'{tmp_path}/prec.duckdb', threads: 1}}\n")
    # one project, one model per case: a single dbt build
    root = tmp_path / "all"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: prec\nversion: '1.0'\nconfig-version: 2\n"
                                          "profile: prec\n")
    (root / "bulwark.yml").write_text("dialect: duckdb\n")
    yml = ["models:"]
    for name, sql, data_type, _fails in CASES:
        (root / "models" / f"{name}.sql").write_text(sql + "\n")
        yml += [f"  - name: {name}", "    config:", "      materialized: table",
                "      contract: {enforced: true}", "    columns:", "      - name: x",
                f"        data_type: \"{data_type}\""]
    (root / "models" / "m.yml").write_text("\n".join(yml) + "\n")
    proc = subprocess.run([*dbt_command(), "build", "--project-dir", str(root),
                           "--profiles-dir", str(profiles), "--target-path",
                           str(tmp_path / "target")], capture_output=True, text=True,
                          env=dbt_env(), timeout=600)
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    dbt_failed = {r["unique_id"].split(".")[-1] for r in results if r["status"] == "error"}
    assert dbt_failed == {n for n, _s, _d, f in CASES if f}, proc.stdout[-3000:]
    capsys.readouterr()
    main(["check-contracts", "--project-dir", str(root), "--repo-root", str(root),
          "--format", "json", "--no-cache", "--all-files"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    ours = {f["node"].split(".")[-1] for f in findings if f["code"] == "BLK212"
            and f["severity"] == "error"}
    assert ours == dbt_failed
