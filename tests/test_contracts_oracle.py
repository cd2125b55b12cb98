"""check-contracts against dbt itself: `dbt build` on DuckDB is the oracle.

The fixture (tests/fixtures/contracts/oracle) has contracted models that pass and
that fail dbt's contract preflight in every way check-contracts claims to find:
missing column, extra column, wrong type, ``select *``, CTEs, an ephemeral
upstream, a seed with column_types, a name differing only in case, a column
without data_type, an unknown type, no columns at all. dbt builds it; the test
asserts that check-contracts fails exactly the models dbt fails, naming the same
columns, and passes the ones dbt passes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import dbt_oracle
import pytest
from conftest import expected_exit

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

FIXTURE = Path(__file__).parent / "fixtures" / "contracts" / "oracle"
# codes that stand for "dbt build fails this model"
BUILD_FAILURE_CODES = {"BLK202", "BLK204", "BLK205", "BLK206", "BLK210", "BLK211", "BLK212"}


def copy_fixture(tmp: Path, name: str = "proj") -> Path:
    dest = tmp / name
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("target", "logs", "*.duckdb"))
    subprocess.run(["git", "init", "-q", str(dest)], check=True)
    return dest


def dbt_build(project: Path, select: str | None = None) -> dict[str, dict]:
    """Run `dbt build` (failures allowed); unique_id -> result of run_results.json."""
    profiles = project.parent / f"_profiles_{project.name}"
    dbt_oracle.write_profiles(project, profiles)
    target = project.parent / f"_target_{project.name}"
    cmd = [*dbt_oracle.dbt_command(), "--no-use-colors", "--log-level", "warn", "build",
           "--profiles-dir", str(profiles), "--project-dir", str(project),
           "--target-path", str(target)]
    if select:
        cmd += ["--select", select]
    proc = subprocess.run(cmd, cwd=project, env=dbt_oracle.dbt_env(), capture_output=True,
                          text=True, timeout=dbt_oracle.DBT_TIMEOUT)
    results_path = target / "run_results.json"
    assert results_path.exists(), f"dbt build did not run:\n{proc.stdout}\n{proc.stderr}"
    results = json.loads(results_path.read_text())["results"]
    return {r["unique_id"]: r for r in results}


def bulwark_contracts(project: Path, *extra: str) -> tuple[int, list[dict]]:
    """check-contracts as a hook runs it; the dialect comes from the profile (DuckDB)."""
    import os
    import sys

    profiles = project.parent / f"_profiles_{project.name}"
    dbt_oracle.write_profiles(project, profiles)
    env = dict(os.environ, DBT_PROFILES_DIR=str(profiles))
    src = Path(__file__).resolve().parent.parent / "src"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "dbt_bulwark.cli", "check-contracts", "--all-files", "--format",
         "json", "--project-dir", str(project), "--repo-root", str(project), "--no-cache",
         *extra], cwd=project, env=env, capture_output=True, text=True, timeout=120)
    findings = json.loads(proc.stdout)["findings"]
    assert proc.returncode == expected_exit(findings), proc.stderr
    return proc.returncode, findings


def dbt_columns(message: str) -> set[str]:
    """Column names dbt's contract error names (its mismatch table, or the column list of
    the missing-data_type error)."""
    names: set[str] = set()
    for line in message.splitlines():
        m = re.match(r"\s*\|\s*([^|]+?)\s*\|\s*[^|]*\|\s*[^|]*\|\s*(missing in|data type)", line)
        if m:
            names.add(m.group(1))
    m = re.search(r"for the \[([^\]]*)\] column", message)
    if m:
        names |= {n.strip().strip("'\"") for n in m.group(1).split(",") if n.strip()}
    return names


Built = tuple[Path, int, list[dict], dict[str, dict]]   # project, exit code, findings, dbt results


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    dbt_oracle.require_dbt()
    project = copy_fixture(tmp_path_factory.mktemp("contracts_oracle"))
    code, findings = bulwark_contracts(project)
    results = dbt_build(project)
    return project, code, findings, results


def test_fails_exactly_the_models_dbt_fails(built: Built) -> None:
    _project, code, findings, results = built
    models = {uid: r for uid, r in results.items() if uid.startswith("model.")}
    dbt_failed = {uid for uid, r in models.items() if r["status"] != "success"}
    dbt_passed = {uid for uid, r in models.items() if r["status"] == "success"}
    ours = {f["node"] for f in findings
            if f["code"] in BUILD_FAILURE_CODES and f["severity"] == "error"}
    # the fixture exercises both sides
    assert len(dbt_failed) >= 10 and len(dbt_passed) >= 8, sorted(models)
    assert ours == dbt_failed, (
        f"only bulwark: {sorted(ours - dbt_failed)}; only dbt: {sorted(dbt_failed - ours)}")
    assert not ours & dbt_passed
    assert code == 1
    # nothing else is an error on this fixture (no false error anywhere)
    others = [f for f in findings if f["severity"] == "error" and f["node"] not in dbt_failed]
    assert not others, others


def test_names_the_columns_dbt_names(built: Built) -> None:
    _project, _code, findings, results = built
    checked = 0
    for uid, r in results.items():
        if not uid.startswith("model.") or r["status"] == "success":
            continue
        expected = dbt_columns(r.get("message") or "")
        if not expected:
            continue  # e.g. an unknown type: the warehouse errors before dbt compares
        ours = {f["extra"]["column"] for f in findings
                if f["node"] == uid and f["code"] in BUILD_FAILURE_CODES and "extra" in f
                and "column" in f["extra"]}
        assert ours == expected, f"{uid}: dbt names {sorted(expected)}, bulwark {sorted(ours)}"
        checked += 1
    assert checked >= 9


def test_findings_point_at_the_yaml_lines(built: Built) -> None:
    project, _code, findings, _results = built
    yml = (project / "models" / "marts" / "_marts.yml").read_text().splitlines()
    yml = [line.split("#", 1)[0] for line in yml]
    for f in findings:
        if f["code"] in ("BLK205", "BLK206", "BLK211", "BLK212"):
            assert f["path"] == "models/marts/_marts.yml"
            assert yml[f["line"] - 1].strip() == f"- name: {f['extra']['column']}", f
        if f["code"] == "BLK210":
            model = f["node"].rsplit(".", 1)[-1]
            assert yml[f["line"] - 1].strip() == f"- name: {model}", f
