"""The test suite's own helpers (conftest.py) can fail: a skip under CI is a failure, and the
import probe sees imports and refuses to probe what is not installed."""

from __future__ import annotations

import pytest
from conftest import imported_by, in_ci, skip_or_fail


@pytest.mark.parametrize("value, ci", [("true", True), ("1", True), ("YES", True),
                                       ("", False), ("false", False), ("0", False)])
def test_in_ci(monkeypatch: pytest.MonkeyPatch, value: str, ci: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_skip_or_fail_skips_on_a_developer_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no dbt here"):
        skip_or_fail("no dbt here")


def test_skip_or_fail_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no dbt here.*CI is set"):
        skip_or_fail("no dbt here")


def test_require_dbt_fails_under_ci_without_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    import dbt_oracle

    monkeypatch.setattr(dbt_oracle, "dbt_available", lambda: False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        dbt_oracle.require_dbt()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        dbt_oracle.require_dbt()


def test_imported_by_sees_imports_and_refuses_missing_modules() -> None:
    assert imported_by("import sqlglot.expressions", ["sqlglot", "duckdb"]) == ["sqlglot"]
    assert imported_by("pass", ["sqlglot", "duckdb"]) == []
    with pytest.raises(AssertionError, match="not installed"):
        imported_by("pass", ["no_such_module_bulwark"])
