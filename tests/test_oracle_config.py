"""Oracle: config that `bulwark ls` resolves without dbt must equal what `dbt parse` resolves.

For every fixture project (each of the monorepo's two projects too) this runs
``bulwark ls --output json --include-disabled --project-dir <copy>`` once and
``dbt parse --no-partial-parse`` once, then compares node by node, one test per
(project, field) so a failure names exactly what differs:

    model.basic.stg_orders  tags  bulwark=[...]  dbt=[...]

Enabled nodes come from the manifest's ``nodes``, disabled ones from ``disabled``.
Run alone with ``pytest -m oracle``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from dbt_oracle import ORACLE_PROJECTS, OracleSession, manifest_nodes

pytestmark = pytest.mark.oracle

PROJECT_KEYS = list(ORACLE_PROJECTS)

MISSING = "<missing>"


def _cfg(node: dict[str, Any]) -> dict[str, Any]:
    return node.get("config") or {}


def _bulwark_tags(node: dict[str, Any]) -> Any:
    tags = _cfg(node).get("tags", MISSING)
    if isinstance(tags, str):  # keep a bare string visible as a mismatch, do not sort its letters
        return tags
    return sorted(tags) if isinstance(tags, list) else tags  # duplicates stay visible


def _dbt_tags(node: dict[str, Any]) -> Any:
    # dbt's config.tags may hold DUPLICATES (a tag from the folder and again from YAML
    # appears twice); node.tags, which `tag:` selection uses, is the de-duplicated set.
    # bulwark must print the de-duplicated set.
    tags = _cfg(node).get("tags", MISSING)
    return sorted(set(tags)) if isinstance(tags, list) else tags


def _contract(node: dict[str, Any]) -> Any:
    contract = _cfg(node).get("contract", MISSING)
    return contract.get("enforced", MISSING) if isinstance(contract, dict) else contract


def _deps(node: dict[str, Any]) -> Any:
    nodes = (node.get("depends_on") or {}).get("nodes", MISSING)
    return sorted(nodes) if isinstance(nodes, list) else nodes


def _config_key(key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda node: _cfg(node).get(key, MISSING)


def _dbt_access(node: dict[str, Any]) -> Any:
    # dbt keeps the resolved access on the node (config.access mirrors it for models).
    return node.get("access", MISSING)


def _identity(node: dict[str, Any]) -> Any:
    return {
        "name": node.get("name", MISSING),
        "resource_type": node.get("resource_type", MISSING),
        "package_name": node.get("package_name", MISSING),
        "original_file_path": node.get("original_file_path", MISSING),
        "version": node.get("version"),
    }


# field -> (bulwark getter, dbt getter, resource types compared, enabled nodes only?)
FIELDS: dict[str, tuple[Callable, Callable, tuple[str, ...], bool]] = {
    "tags": (_bulwark_tags, _dbt_tags, ("model", "seed", "snapshot"), False),
    "enabled": (_config_key("enabled"), _config_key("enabled"), ("model", "seed", "snapshot"), False),
    "materialized": (_config_key("materialized"), _config_key("materialized"), ("model",), False),
    "contract.enforced": (_contract, _contract, ("model",), False),
    "access": (_config_key("access"), _dbt_access, ("model",), False),
    "meta": (_config_key("meta"), _config_key("meta"), ("model",), False),
    "group": (_config_key("group"), _config_key("group"), ("model",), False),
    "on_schema_change": (
        _config_key("on_schema_change"), _config_key("on_schema_change"), ("model",), False
    ),
    # dbt leaves depends_on.nodes EMPTY on disabled nodes (refs are never resolved for
    # them); `bulwark ls` prints the same, so disabled nodes are compared too.
    "depends_on": (_deps, _deps, ("model", "snapshot"), False),
    "identity": (_identity, _identity, ("model", "seed", "snapshot"), False),
}

# Every resource type whose unique_id set is compared (models, seeds, snapshots are the core).
ID_TYPES = ["model", "seed", "snapshot", "source", "exposure", "test", "unit_test", "analysis"]
# What plain `dbt ls` lists (of ID_TYPES): everything but analyses.
DEFAULT_LS_TYPES = set(ID_TYPES) - {"analysis"}


def _fmt(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _bulwark_by_id(oracle: OracleSession, key: str) -> dict[str, dict[str, Any]]:
    rows = oracle.bulwark_ls(key, include_disabled=True)
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        out.setdefault(row["unique_id"], row)
    return out


def _dbt_ids(manifest: dict[str, Any], rtype: str) -> set[str]:
    # enabled + disabled.  NB: a test on a disabled model stays in `nodes` with
    # config.enabled false (not in `disabled`); it is expected here all the same.
    return set(manifest_nodes(manifest, (rtype,)))


@pytest.mark.parametrize("rtype", ID_TYPES)
@pytest.mark.parametrize("key", PROJECT_KEYS)
def test_unique_ids(oracle: OracleSession, key: str, rtype: str) -> None:
    manifest = oracle.manifest(key)
    expected = _dbt_ids(manifest, rtype)
    if rtype in DEFAULT_LS_TYPES:
        rows: Iterable[dict[str, Any]] = _bulwark_by_id(oracle, key).values()
    else:  # like `dbt ls`, bulwark lists analyses only when asked for them
        rows = oracle.bulwark_ls(key, include_disabled=True, resource_types=[rtype])
    got = {row["unique_id"] for row in rows if row.get("resource_type") == rtype}
    missing, extra = sorted(expected - got), sorted(got - expected)
    assert not missing and not extra, (
        f"[{key}] {rtype} unique_ids differ\n"
        f"  in dbt, not in bulwark: {missing}\n"
        f"  in bulwark, not in dbt: {extra}"
    )


@pytest.mark.parametrize("field", list(FIELDS))
@pytest.mark.parametrize("key", PROJECT_KEYS)
def test_resolved_field(oracle: OracleSession, key: str, field: str) -> None:
    bulwark_get, dbt_get, rtypes, enabled_only = FIELDS[field]
    manifest = oracle.manifest(key)
    dbt_nodes = manifest_nodes(manifest, rtypes)
    if enabled_only:
        dbt_nodes = {u: n for u, n in dbt_nodes.items() if u in manifest["nodes"]}
    if not dbt_nodes:
        pytest.skip(f"[{key}] no {'/'.join(rtypes)} nodes for {field}")
    bulwark = _bulwark_by_id(oracle, key)
    compared = sorted(set(dbt_nodes) & set(bulwark))
    assert compared, (
        f"[{key}] bulwark listed none of dbt's {len(dbt_nodes)} {'/'.join(rtypes)} nodes "
        f"(e.g. {sorted(dbt_nodes)[:3]}); bulwark ids: {sorted(bulwark)[:10]}"
    )
    problems = []
    for uid in compared:
        got, want = bulwark_get(bulwark[uid]), dbt_get(dbt_nodes[uid])
        if got != want:
            problems.append(f"  {uid}  {field}  bulwark={_fmt(got)}  dbt={_fmt(want)}")
    assert not problems, f"[{key}] {len(problems)} node(s) differ on {field}:\n" + "\n".join(
        problems
    )


@pytest.mark.parametrize("key", PROJECT_KEYS)
def test_disabled_nodes_are_flagged(oracle: OracleSession, key: str) -> None:
    """Every node dbt put under `disabled` is listed by --include-disabled with enabled false,
    and every node dbt has enabled is listed with enabled true."""
    manifest = oracle.manifest(key)
    bulwark = _bulwark_by_id(oracle, key)
    problems = []
    for uid in manifest.get("disabled", {}):
        row = bulwark.get(uid)
        if row is None or _cfg(row).get("enabled") is not False:
            problems.append(f"  {uid}  enabled  bulwark={_fmt(None if row is None else _cfg(row).get('enabled'))}  dbt=false (in manifest.disabled)")
    for uid, _node in manifest_nodes(manifest).items():
        if uid in manifest["nodes"] and uid in bulwark and _cfg(bulwark[uid]).get("enabled") is not True:
            problems.append(f"  {uid}  enabled  bulwark={_fmt(_cfg(bulwark[uid]).get('enabled'))}  dbt=true")
    assert not problems, f"[{key}] enabled/disabled differs:\n" + "\n".join(problems)


@pytest.mark.parametrize("key", PROJECT_KEYS)
def test_without_include_disabled_lists_only_enabled(oracle: OracleSession, key: str) -> None:
    manifest = oracle.manifest(key)
    rows = oracle.bulwark_ls(key)
    listed_disabled = sorted(
        r["unique_id"] for r in rows if r["unique_id"] in manifest.get("disabled", {})
    )
    assert not listed_disabled, f"[{key}] bulwark ls without --include-disabled listed disabled nodes: {listed_disabled}"
