"""Shared pytest setup.

* makes ``tests/`` importable so test modules can ``import dbt_oracle``;
* ``oracle`` (session scope): a ``dbt_oracle.OracleSession`` that copies every fixture
  project to a temporary directory and parses each with real dbt exactly once.
  Tests using it skip cleanly when dbt-core/dbt-duckdb are not installed.
* ``skip_or_fail(reason)``: how a test gives up on a missing dependency of the [dev] extra
  (dbt, pre-commit, git, jsonschema...): a skip on a developer's machine, a failure when the
  environment variable ``CI`` is set (``true``/``1``/``yes``), so CI never goes green on
  tests that did not run.
* ``expected_exit(findings)``: the exact exit code a hook owes its JSON findings.
* ``imported_by(code, watch)``: which of the ``watch`` modules a fresh interpreter has
  imported after running ``code``; every watched module must be installed, so a check
  that a hook path stays light can fail (a module that cannot be imported never shows up).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

import dbt_oracle  # noqa: E402


def in_ci() -> bool:
    """True when the environment variable CI says so (CI=true on our runner)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the calling test for a missing dependency; fail it instead under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: a test that cannot run fails)", pytrace=False)
    pytest.skip(reason)


def expected_exit(findings: Iterable[Mapping[str, Any]], fail_on: str = "error") -> int:
    """The exit code a hook owes the findings of its ``--format json`` output under the
    default policy: 1 when a new finding (not ``existing`` at the base) is at or above
    ``fail_on``, else 0 (findings.exit_code, restated here so a test can catch it)."""
    order = ("error", "warning", "info")
    limit = order.index(fail_on)
    return int(any(order.index(f["severity"]) <= limit and not f.get("existing")
                   for f in findings))


def imported_by(code: str, watch: Sequence[str], cwd: str | Path | None = None) -> list[str]:
    """The modules of ``watch`` (or their submodules) in ``sys.modules`` after ``code`` runs
    in a new interpreter. Every watched module must be importable here: otherwise its
    absence would prove nothing."""
    missing = [m for m in watch if importlib.util.find_spec(m.split(".")[0]) is None
               or importlib.util.find_spec(m) is None]
    assert not missing, f"cannot probe modules that are not installed: {missing}"
    probe = (f"{code}\nimport json as _j, sys as _s\n"
             f"print('IMPORTED', _j.dumps(sorted(w for w in {list(watch)!r} "
             "if any(m == w or m.startswith(w + '.') for m in _s.modules))))")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=cwd, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORTED ")][-1]
    return [str(m) for m in json.loads(line[len("IMPORTED "):])]


@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> dbt_oracle.OracleSession:
    dbt_oracle.require_dbt()
    return dbt_oracle.OracleSession(tmp_path_factory.mktemp("oracle"))
