"""Without dbt in the environment, the dbt layers say in one line what to install (exit 2)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "jaffle_bulwark"

# hides every dbt.* module (dbt-core and the adapters), as in an environment without them
HIDE_DBT = """
import sys
class _NoDbt:
    def find_spec(self, name, path=None, target=None):
        if name == "dbt" or name.startswith("dbt."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _NoDbt())
from dbt_bulwark.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOME=str(cwd.parent), PYTHONPATH=str(ROOT / "src"))
    env.pop("DBT_PROFILES_DIR", None)
    return subprocess.run([sys.executable, "-c", HIDE_DBT, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _project(tmp_path: Path, adapter: str | None) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(SAMPLE, repo)
    if adapter:
        (repo / "profiles.yml").write_text(yaml.safe_dump({"jaffle_bulwark": {
            "target": "prod", "outputs": {"prod": {"type": adapter, "schema": "x"}}}}))
    return repo


def test_ci_full_without_dbt_names_the_adapter_package(tmp_path: Path) -> None:
    repo = _project(tmp_path, "snowflake")
    proc = _run(repo, "ci", "--full", "--all-files")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["bulwark ci: the dbt layers need dbt: dbt-core is not installed in this "
                     "environment: pip install 'dbt-bulwark[dbt]' dbt-snowflake"], lines


def test_baseline_without_dbt_one_line_exit_2(tmp_path: Path) -> None:
    repo = _project(tmp_path, None)        # no profile: the embedded DuckDB default
    proc = _run(repo, "baseline", "check")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["bulwark baseline: dbt-core is not installed in this environment: "
                     "pip install 'dbt-bulwark[dbt]'"], lines


def test_static_layers_need_no_dbt(tmp_path: Path) -> None:
    proc = _run(_project(tmp_path, "snowflake"), "ci", "--fast", "--all-files", "-q")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_baseline_dry_run_prints_the_sql_without_dbt(tmp_path: Path) -> None:
    proc = _run(_project(tmp_path, "postgres"), "baseline", "check", "orders", "--dry-run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "-- jaffle_bulwark.orders on postgres" in proc.stdout
    assert "::bit(60)::bigint::numeric" in proc.stdout      # the Postgres content hash
