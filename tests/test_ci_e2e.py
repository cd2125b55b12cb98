"""End-to-end: `bulwark ci --full` and `bulwark baseline` on the sample project, with real dbt.

The bundled sample (examples/jaffle_bulwark, DuckDB, seeds with data, critical
contracted models, committed baselines) is copied into a temporary git repository;
each test injects one fault into its own copy and checks that the layer meant to
catch it fails and that the summary names it. dbt runs in the bulwark process
(dbtRunner) on the embedded DuckDB: no profiles.yml anywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dbt_oracle
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.oracle]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "jaffle_bulwark"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ci"


@pytest.fixture(autouse=True)
def _needs_dbt() -> None:
    dbt_oracle.require_dbt()


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t",
                           "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(SAMPLE, repo, ignore=shutil.ignore_patterns(
        "target", "logs", ".bulwark-cache", "*.duckdb"))
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "sample")
    _git(repo, "checkout", "-qb", "feature")
    return repo


def bulwark(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dbt_oracle.dbt_env()
    env["HOME"] = str(cwd.parent)           # no ~/.dbt/profiles.yml of the machine
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                      env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _layers(proc: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    data = json.loads(proc.stdout)
    return {layer["layer"]: layer for layer in data["layers"]}


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def test_full_passes_on_the_clean_sample(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    proc = bulwark(repo, "ci", "--full", "--all-files")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for name in ("fast-compile", "critical-tags", "contracts", "schema-diff", "build-empty",
                 "data-quality", "baselines"):
        assert f"== {name}: PASSED" in out, out
    assert "bulwark ci PASSED" in out
    assert "customers      3       0       0" in out      # per-model tests run/failed/warned
    assert "2 model(s) match their baseline" in out
    # the user's tree is untouched: no target/, no profiles.yml, no database next to it
    assert not (repo / "target").exists() and not (repo / "profiles.yml").exists()
    assert _git(repo, "status", "--porcelain") == ""        # .bulwark-cache ignores itself


def test_error_test_failure_fails_the_data_quality_gate(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    marts = repo / "models/marts/_marts.yml"
    # an ERROR test that fails on the data (revenue is never 0) ...
    _edit(marts, """      - name: revenue
        data_tests:
""", """      - name: revenue
        data_tests:
          - accepted_values:
              values: [0]
""")
    # ... and a WARN test that fails: listed, not fatal
    _edit(marts, """      - name: first_name
        data_type: varchar
""", """      - name: first_name
        data_type: varchar
        data_tests:
          - accepted_values:
              values: [Ava]
              config:
                severity: warn
""")
    proc = bulwark(repo, "ci", "--full", "-q")
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    assert "bulwark ci FAILED (not passed: data-quality) in" in out, out
    assert "== data-quality: FAILED" in out and "1 ERROR test failure(s), 1 warned" in out
    assert ("models/marts/_marts.yml:77:1: BLK520 test accepted_values(revenue) on "
            "revenue_by_month failed: 12 failing row(s)") in out, out
    assert "BLK521 [warning] test accepted_values(first_name) on customers warned" in out
    assert "revenue_by_month      3       1       0" in out, out
    for name in ("fast-compile", "critical-tags", "contracts", "schema-diff", "build-empty",
                 "baselines"):
        assert f"== {name}: PASSED" in out, (name, out)


def test_contract_the_database_rejects_fails_build_empty(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    # decimal(18, 3) vs the declared decimal(18, 2): the same base type for the static
    # check, a contract violation for DuckDB's preflight
    _edit(repo / "models/marts/orders.sql",
          "cast(coalesce(p.amount, 0) as decimal(18, 2)) as amount",
          "cast(coalesce(p.amount, 0) as decimal(18, 3)) as amount")
    proc = bulwark(repo, "ci", "--full", "--fail-fast", "--format", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    layers = _layers(proc)
    assert layers["build-empty"]["status"] == "failed", layers["build-empty"]
    assert layers["contracts"]["status"] == "passed"
    assert layers["data-quality"]["status"] == "not run"
    f = next(f for f in layers["build-empty"]["findings"] if f["code"] == "BLK510")
    assert f["path"] == "models/marts/_marts.yml" and f["line"] == 4   # the contract's entry
    assert "contract" in f["message"].lower()


def test_unknown_function_points_at_its_line(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _edit(repo / "models/marts/revenue_by_month.sql", "sum(amount) as revenue",
          "sum_money(amount) as revenue")
    proc = bulwark(repo, "ci", "--layers", "build-empty", "--format", "json")
    layers = _layers(proc)
    assert proc.returncode == 1
    f = layers["build-empty"]["findings"][0]
    assert (f["code"], f["path"], f["line"]) == ("BLK510", "models/marts/revenue_by_month.sql", 4)


def test_baselines_capture_change_check_recapture(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    # a changed output beyond tolerance: one payment doubled (tests still pass)
    _edit(repo / "seeds/raw_payments.csv", "\n1,1,credit_card,1400\n", "\n1,1,credit_card,2800\n")
    proc = bulwark(repo, "ci", "--full", "--format", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    layers = _layers(proc)
    assert layers["baselines"]["status"] == "failed"
    for name in ("fast-compile", "contracts", "schema-diff", "build-empty", "data-quality"):
        assert layers[name]["status"] == "passed", (name, layers[name])
    details = "\n".join(layers["baselines"]["details"])
    assert "column amount: sum 2357 -> 2371 (+14, +0.594%)" in details, details
    assert "column lifetime_value: sum" in details
    check = bulwark(repo, "baseline", "check")
    assert check.returncode == 1
    assert "models/marts/orders.sql:1:1: BLK532 orders: column amount: max" in check.stdout \
        or "BLK532 orders: column amount: sum 2357 -> 2371" in check.stdout, check.stdout
    # the change is intended: re-capture in the same commit, the reviewer sees the diff
    cap = bulwark(repo, "baseline", "capture")
    assert cap.returncode == 0, cap.stdout + cap.stderr
    diff = _git(repo, "diff", "--", ".bulwark/baselines/orders.json")
    assert '-      "sum": 2357' in diff and '+      "sum": 2371' in diff, diff
    assert bulwark(repo, "baseline", "check").returncode == 0
    # a tolerance from the policy accepts small drift without re-capturing
    _edit(repo / "seeds/raw_payments.csv", "\n1,1,credit_card,2800\n", "\n1,1,credit_card,2801\n")
    assert bulwark(repo, "baseline", "check", "orders").returncode == 1
    (repo / "bulwark.yml").write_text("dialect: duckdb\nbaselines:\n  float_tolerance: 0.001\n")
    # decimals compare exactly: float_tolerance is for float columns only
    assert bulwark(repo, "baseline", "check", "orders").returncode == 1
    # allowed drift (5% of the rows) also lets sums and counts drift that much
    (repo / "bulwark.yml").write_text("dialect: duckdb\nbaselines:\n  row_count_tolerance: 0.05\n")
    ok = bulwark(repo, "baseline", "check", "orders")
    assert ok.returncode == 0, ok.stdout


def test_source_fed_models_have_no_data_on_embedded_duckdb(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    shutil.copy(FIXTURES / "events_source.yml", repo / "models/staging/_events.yml")
    shutil.copy(FIXTURES / "stg_events.sql", repo / "models/staging/stg_events.sql")
    proc = bulwark(repo, "ci", "--layers", "build-empty,data-quality", "--format", "json")
    layers = _layers(proc)
    # the source's table is created empty from its typed columns: the model builds
    assert layers["build-empty"]["status"] == "passed", layers["build-empty"]
    dq = layers["data-quality"]
    # the critical models still run; the source-fed one is named, with the reason
    assert dq["status"] == "passed", dq
    assert "1 model(s) without data skipped" in dq["summary"]
    assert any("stg_events: reads source 'shop.events'" in d for d in dq["details"]), dq
    assert proc.returncode == 0
    # when nothing selected has data, the layer is skipped, which is not a pass
    (repo / "bulwark.yml").write_text("dialect: duckdb\ndata_quality:\n  select: stg_events\n")
    proc = bulwark(repo, "ci", "--layers", "data-quality", "--all-files", "-q")
    assert proc.returncode == 1, proc.stdout
    assert "== data-quality: SKIPPED" in proc.stdout
    assert "data-quality  SKIP" in proc.stdout
    allowed = bulwark(repo, "ci", "--layers", "data-quality", "--allow-skipped", "-q")
    assert allowed.returncode == 0, allowed.stdout


def test_not_a_git_repository(tmp_path: Path) -> None:
    proj = tmp_path / "plain"
    shutil.copytree(SAMPLE, proj, ignore=shutil.ignore_patterns(".bulwark-cache"))
    proc = bulwark(proj, "ci", "--full", "--no-cache", "--repo-root", str(proj))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "base: no base (not a git repository); all files" in proc.stdout
    assert not (proj / ".bulwark-cache").exists()
