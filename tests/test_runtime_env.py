"""One verdict everywhere (issue 10 item 5): the SQL-verdict mutation tests run through a
`bulwark` installed in a fresh venv with ONLY the declared runtime dependencies (what a
pre-commit hook environment gets: no dbt, no dev extras), and give exactly the verdicts of
the dev environment, for a DuckDB project (DuckDB's parser decides) and for the same
project on another dialect and a guessed one (sqlglot plus certainty rules)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import expected_exit
from fast_compile_cases import BENIGN, CASES, Case, apply

from dbt_bulwark.cli import main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
S = "models/staging/"

SQL_CASES: list[Case] = [c for c in CASES if any(code == "BLK130" for code, _p, _l in c.expect)]
SQL_CASES += [
    Case("sql_missing_comma", {S + "stg_orders.sql": ("    customer_id,\n", "    customer_id\n")},
         [("BLK130", S + "stg_orders.sql", 0)]),
    Case("sql_misspelled_select", {S + "stg_orders.sql": ("select\n", "selct\n")},
         [("BLK130", S + "stg_orders.sql", 0)]),
    Case("sql_misspelled_from", {S + "stg_customers.sql": ("from {{", "frm {{")},
         [("BLK130", S + "stg_customers.sql", 0)]),
    # a set operation whose branches differ in width (sqlglot counts them in every env)
    Case("union_widths", {S + "stg_union.sql": (None, "select 1 as a, 2 as b\nunion all\n"
                                                        "select 3 as a\n")},
         [("BLK132", S + "stg_union.sql", 0)]),
]
DIALECTS = {"duckdb": "dialect: duckdb\n", "snowflake": "dialect: snowflake\n",
            "guess": ""}


@pytest.fixture(scope="module")
def runtime_bulwark(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`bulwark` from a venv holding the project and its runtime dependencies only."""
    base = tmp_path_factory.mktemp("runtime")
    src = base / "src_copy"
    src.mkdir()
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "src", src / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    proc = subprocess.run([str(py), "-m", "pip", "install", "-q", str(src)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format", "json"],
                            capture_output=True, text=True, check=True).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert not names & {"dbt-core", "dbt-duckdb", "pytest", "pre-commit"}, names
    assert "duckdb" in names   # a declared runtime dependency
    return venv / "bin" / "bulwark"


def _args(root: Path, case: Case) -> list[str]:
    args = ["fast-compile", "--project-dir", str(root), "--repo-root", str(root),
            "--format", "json", "--no-cache"]
    return args + ([str(root / f) for f in case.files] if case.files else ["--all-files"])


def _verdicts(findings: list[dict]) -> list[tuple]:
    return sorted((f["code"], f["path"], f["line"], f["col"], f["severity"])
                  for f in findings)


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_runtime_env_gives_the_dev_verdicts(dialect: str, runtime_bulwark: Path,
                                            tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DBT_PROFILES_DIR"}
    env["DBT_PROFILES_DIR"] = str(tmp_path / "no_profiles")   # the dialect: bulwark.yml only
    for case in SQL_CASES + BENIGN:
        root = apply(case, tmp_path / f"{case.name}_{dialect}")
        (root / "bulwark.yml").write_text(DIALECTS[dialect])
        proc = subprocess.run([str(runtime_bulwark), *_args(root, case)], env=env,
                              capture_output=True, text=True, timeout=300)
        hook = json.loads(proc.stdout)["findings"]
        assert proc.returncode == expected_exit(hook), proc.stderr
        capsys.readouterr()
        old = os.environ.get("DBT_PROFILES_DIR")
        os.environ["DBT_PROFILES_DIR"] = env["DBT_PROFILES_DIR"]
        try:
            rc = main(_args(root, case))
        finally:
            if old is None:
                os.environ.pop("DBT_PROFILES_DIR", None)
            else:
                os.environ["DBT_PROFILES_DIR"] = old
        dev = json.loads(capsys.readouterr().out)["findings"]
        assert _verdicts(hook) == _verdicts(dev), (case.name, dialect)
        assert rc == proc.returncode, (case.name, dialect)
        codes = {code for code, _p, _l in case.expect}
        errors = [f for f in dev if f["code"] in codes and f["severity"] == "error"]
        if case in BENIGN:
            assert not [f for f in dev if f["severity"] != "info"], (case.name, dev)
        else:
            # every SQL fault is an error in every dialect, known or guessed
            assert errors, (case.name, dialect, dev)
