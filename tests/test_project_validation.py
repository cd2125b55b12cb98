"""fast-compile agrees with `dbt parse` (1.11) on malformed dbt_project.yml and properties
files (issue 11 "No silent skips"): what dbt rejects is an error finding at the file and
line to edit; what dbt accepts gives no finding.

``test_bulwark_verdict`` runs without dbt; ``test_dbt_agrees`` (marked ``oracle``) runs real
``dbt parse`` on every case and checks that dbt's verdict is the one bulwark gives.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dbt_oracle import dbt_command, dbt_env, require_dbt

PROJECT = "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n"
MODELS = {"models/a.sql": "select 1 as id\n", "models/b.sql": "select id from {{ ref('a') }}\n"}


@dataclass
class Case:
    name: str
    project: str = PROJECT
    files: dict[str, str] = field(default_factory=dict)
    expect: tuple[str, str, int] | None = None   # (code, path, line) or None: dbt accepts it


def _props(body: str) -> dict[str, str]:
    return {"models/p.yml": "version: 2\n" + body}


CASES = [
    Case("model-paths-number", PROJECT + "model-paths: 5\n",
         expect=("BLK013", "dbt_project.yml", 5)),
    Case("model-paths-string", PROJECT + "model-paths: models\n",
         expect=("BLK013", "dbt_project.yml", 5)),
    Case("model-paths-list-of-numbers", PROJECT + "model-paths: [5]\n",
         expect=("BLK013", "dbt_project.yml", 5)),
    Case("models-a-list", PROJECT + "models:\n  - shop\n", expect=("BLK013", "dbt_project.yml", 5)),
    Case("models-empty", PROJECT + "models:\n"),
    Case("config-version-banana", PROJECT.replace("config-version: 2", "config-version: banana"),
         expect=("BLK013", "dbt_project.yml", 3)),
    Case("config-version-1", PROJECT.replace("config-version: 2", "config-version: 1"),
         expect=("BLK013", "dbt_project.yml", 3)),
    Case("vars-a-list", PROJECT + "vars: [1, 2]\n", expect=("BLK013", "dbt_project.yml", 5)),
    Case("vars-empty", PROJECT + "vars:\n"),
    Case("exposure-owner-string", files=_props(
        "exposures:\n  - name: e\n    type: dashboard\n    owner: bob\n"
        "    depends_on: [ref('a')]\n"), expect=("BLK038", "models/p.yml", 5)),
    Case("exposure-owner-mapping", files=_props(
        "exposures:\n  - name: e\n    type: dashboard\n    owner: {name: bob}\n"
        "    depends_on: [ref('a')]\n")),
    Case("deprecation-date-not-a-date", files=_props(
        "models:\n  - name: a\n    deprecation_date: 'not a date'\n"),
         expect=("BLK038", "models/p.yml", 4)),
    Case("deprecation-date-iso-string", files=_props(
        "models:\n  - name: a\n    deprecation_date: '2999-01-01'\n")),
    Case("deprecation-date-yaml-date", files=_props(
        "models:\n  - name: a\n    deprecation_date: 2999-01-01 10:00:00\n")),
    Case("unit-test-model-number", files=_props(
        "unit_tests:\n  - name: t\n    model: 5\n    given: []\n    expect: {rows: [{id: 1}]}\n"),
         expect=("BLK038", "models/p.yml", 4)),
    Case("column-name-number", files=_props("models:\n  - name: a\n    columns:\n"
                                            "      - name: 123\n"),
         expect=("BLK038", "models/p.yml", 5)),
    Case("source-column-name-number", files=_props(
        "sources:\n  - name: s\n    tables:\n      - name: t\n        columns:\n"
        "          - name: 7\n"), expect=("BLK038", "models/p.yml", 7)),
    Case("model-name-list", files=_props("models:\n  - name: [a, b]\n"),
         expect=("BLK033", "models/p.yml", 3)),
]


def make(tmp_path: Path, case: Case) -> Path:
    root = tmp_path / case.name
    for rel, text in {"dbt_project.yml": case.project, **MODELS, **case.files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def bulwark_findings(root: Path) -> tuple[int, list[dict]]:
    proc = subprocess.run(
        [sys.executable, "-m", "dbt_bulwark.cli", "fast-compile", "--all-files", "--format",
         "json", "--no-cache", "--project-dir", str(root), "--repo-root", str(root)],
        cwd=root, capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout)["findings"]


def check_bulwark(root: Path, case: Case) -> None:
    rc, findings = bulwark_findings(root)
    errors = [(f["code"], f["path"], f["line"]) for f in findings if f["severity"] == "error"]
    if case.expect is None:
        assert errors == [] and rc == 0, findings
    else:
        assert case.expect in errors, findings
        assert rc == 1


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bulwark_verdict(tmp_path: Path, case: Case) -> None:
    check_bulwark(make(tmp_path, case), case)


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_dbt_agrees(tmp_path: Path, case: Case) -> None:
    require_dbt()
    root = make(tmp_path, case)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(
        f"shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {profiles / 'x.duckdb'}\n")
    proc = subprocess.run(
        [*dbt_command(), "--no-use-colors", "parse", "--no-partial-parse", "--profiles-dir",
         str(profiles), "--project-dir", str(root)],
        cwd=root, env=dbt_env(), capture_output=True, text=True, timeout=300, check=False)
    dbt_rejects = proc.returncode != 0
    assert dbt_rejects == (case.expect is not None), proc.stdout[-2000:] + proc.stderr[-2000:]
    check_bulwark(root, case)


def test_empty_sql_of_a_contracted_model_is_an_error(tmp_path: Path) -> None:
    """dbt parse accepts it, dbt build fails (the contract's preflight has no select):
    check-contracts says so as an error at the SQL file, not as 'cannot infer' info."""
    case = Case("empty", files={
        "models/c.sql": "-- nothing yet\n{{ config(materialized='table') }}\n",
        **_props("models:\n  - name: c\n    config:\n      contract: {enforced: true}\n"
                 "    columns:\n      - name: id\n        data_type: integer\n")})
    root = make(tmp_path, case)
    proc = subprocess.run(
        [sys.executable, "-m", "dbt_bulwark.cli", "check-contracts", "--all-files", "--format",
         "json", "--no-cache", "--project-dir", str(root), "--repo-root", str(root)],
        cwd=root, capture_output=True, text=True, timeout=120, check=False)
    findings = json.loads(proc.stdout)["findings"]
    got = {(f["code"], f["path"], f["line"], f["severity"]) for f in findings}
    assert ("BLK214", "models/c.sql", 1, "error") in got, findings
    assert not any(f["code"] == "BLK213" for f in findings)
    assert proc.returncode == 1
