"""Shared pytest setup.

* makes ``tests/`` importable so test modules can ``import dbt_oracle``;
* ``oracle`` (session scope): a ``dbt_oracle.OracleSession`` that copies every fixture
  project to a temporary directory and parses each with real dbt exactly once.
  Tests using it skip cleanly when dbt-core/dbt-duckdb are not installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

import dbt_oracle  # noqa: E402


@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> dbt_oracle.OracleSession:
    dbt_oracle.require_dbt()
    return dbt_oracle.OracleSession(tmp_path_factory.mktemp("oracle"))
