"""The execution layers on every supported dbt-core minor release (issue 16's matrix).

For each venv .ci/matrix-venvs made (dbt-core 1.9, 1.10 with their dbt-duckdb; 1.11 is
the main venv, where the whole suite runs), run the end-to-end layer tests of
tests/test_ci_e2e.py there: dbtRunner calls, the embedded DuckDB profile,
`build --empty`, the data-quality gate and baselines on the sample project. Under
CI=true a missing venv fails; elsewhere it skips (run `bash .ci/matrix-venvs`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import skip_or_fail

pytestmark = [pytest.mark.matrix, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
VENVS = Path(os.environ.get("BULWARK_MATRIX_VENVS")
             or Path.home() / ".cache" / "dbt-bulwark" / "ci-venvs")
VERSIONS = os.environ.get("BULWARK_MATRIX_VERSIONS", "1.9 1.10").split()
LAYER_TESTS = ["test_full_passes_on_the_clean_sample",
               "test_error_test_failure_fails_the_data_quality_gate",
               "test_contract_the_database_rejects_fails_build_empty",
               "test_baselines_capture_change_check_recapture"]


@pytest.mark.parametrize("version", VERSIONS)
def test_layers_on_dbt_version(version: str) -> None:
    py = VENVS / f"dbt-{version}" / "bin" / "python"
    if not py.exists():
        msg = f"no venv for dbt-core {version} at {py.parent.parent} (bash .ci/matrix-venvs)"
        skip_or_fail(msg)
    got = subprocess.run([str(py), "-c", "import dbt.version as v; print(v.__version__)"],
                         capture_output=True, text=True, timeout=120)
    assert got.stdout.strip().startswith(version + "."), got.stdout + got.stderr
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/test_ci_e2e.py", "-k", " or ".join(LAYER_TESTS)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, f"dbt-core {got.stdout.strip()}:\n{tail}"
    assert f"{len(LAYER_TESTS)} passed" in proc.stdout, tail
