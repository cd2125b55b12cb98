"""Oracle: `bulwark ls --select X` must select exactly the unique_ids `dbt ls --select X` does.

NB dbt ls applies *indirect selection* (eager by default): a test or unit test is
listed when the model(s) it tests are selected, e.g. ``tag:critical`` also lists the
generic/singular tests and unit tests of critical models.

All selectors of one project go to dbt in ONE process (parsed once, then ``dbt ls``
per selector on the parsed manifest: ``dbt_oracle.run_dbt_ls_many``) so the suite
stays fast.  Plain ``dbt ls`` lists enabled models, seeds, snapshots, tests,
sources, exposures, unit tests (and metrics, semantic models, saved queries) but
NOT analyses; bulwark must do the same.
"""

from __future__ import annotations

from typing import Any

import pytest
from dbt_oracle import OracleSession, register_ls_selections

pytestmark = pytest.mark.oracle

# selection -> why it is here.  A selection is a selector string, None (plain `ls`),
# or (select, exclude).
SELECTIONS: dict[str, dict[Any, str]] = {
    "basic": {
        None: "plain ls: default resource types, enabled only",
        "tag:critical": "tag from legacy un-prefixed `tags:` in dbt_project.yml and from YAML",
        "tag:project_tag,tag:staging": "intersection",
        "tag:stripe tag:marts": "union",
        "path:models/marts": "path selector (folder, recursive)",
        "config.materialized:table": "resolved materialization (SQL > YAML > project, macros)",
        "config.contract.enforced:true": "resolved contract",
        "+customer_orders": "all ancestors (models, seeds, sources)",
        "stg_orders+": "all descendants incl. tests, unit tests, snapshots, exposures",
        "1+finance_summary": "one generation of parents",
        "access:public": "access from folder +access, YAML config and top-level access",
        "resource_type:seed": "resource type method",
        "+exposure:weekly_report": "exposure with its ancestors",
        "group:finance": "group from folder +group and YAML config",
        ("tag:staging", "stg_customers"): "--exclude",
    },
    "versions": {
        None: "plain ls over versioned models",
        "dim_accounts": "a versioned model name selects every version",
        "dim_accounts.v2": "one version",
        "version:latest": "latest_version pins v1 although v2 exists",
        "+consumer_events": "ancestors through ref('m', v='2') and an unpinned ref",
        "fct_events+": "descendants of every version",
        "tag:legacy_version tag:v2_tag": "per-version config tags",
        "config.contract.enforced:true": "per-version contract",
    },
    "with_packages": {
        "tag:everywhere": "`+tags` directly under `models:` reaches package models too",
        "+mixed": "ancestors across packages (two-argument refs)",
        "package:shared_utils": "package selector (root-disabled su_deprecated excluded)",
    },
}


def _label(sel: Any) -> str:
    if sel is None:
        return "<all>"
    if isinstance(sel, tuple):
        return f"{sel[0]} --exclude {sel[1]}"
    return sel


CASES = [(key, sel) for key, sels in SELECTIONS.items() for sel in sels]

# At collection time: the session's single dbt process runs these `dbt ls` right after
# parsing each project (see dbt_oracle.OracleSession).
for _key, _sels in SELECTIONS.items():
    register_ls_selections(_key, list(_sels))


@pytest.fixture(scope="session")
def dbt_ls_results(oracle: OracleSession) -> dict[str, dict[Any, set[str]]]:
    """dbt's answer for every selection."""
    return {key: {s: oracle.dbt_ls(key, s) for s in sels} for key, sels in SELECTIONS.items()}


@pytest.mark.parametrize(
    ("key", "selection"), CASES, ids=[f"{k}:{_label(s)}" for k, s in CASES]
)
def test_select_matches_dbt_ls(
    oracle: OracleSession, dbt_ls_results: dict[str, dict[Any, set[str]]], key: str,
    selection: Any,
) -> None:
    expected = dbt_ls_results[key][selection]
    select, exclude = selection if isinstance(selection, tuple) else (selection, None)
    rows = oracle.bulwark_ls(key, select=select, exclude=exclude)
    got = {row["unique_id"] for row in rows}
    missing, extra = sorted(expected - got), sorted(got - expected)
    assert not missing and not extra, (
        f"[{key}] --select {_label(selection)!r} ({SELECTIONS[key][selection]})\n"
        f"  dbt ls selected {len(expected)}, bulwark ls {len(got)}\n"
        f"  in dbt, not in bulwark: {missing}\n"
        f"  in bulwark, not in dbt: {extra}"
    )


def test_selectors_are_not_vacuous(dbt_ls_results: dict[str, dict[Any, set[str]]]) -> None:
    """Guard the fixtures: every selector must select something in dbt (else it proves nothing)."""
    empty = [f"{k}:{_label(s)}" for k, res in dbt_ls_results.items() for s, ids in res.items()
             if not ids]
    assert not empty, f"selectors that select nothing in dbt: {empty}"
