"""Effective node config, merged the way dbt-core merges it.

Order (dbt-core ``ContextConfig.calculate_node_config``): defaults, the node's own
package ``dbt_project.yml`` hierarchy (``fqn_search``), the YAML ``config:`` patch,
the SQL ``{{ config(...) }}`` calls, and for package nodes the root project's
hierarchy last. Merge behaviour per key follows dbt's ``MergeBehavior``:
``tags``/hooks append, ``meta``/``docs``/``contract``/``quoting``/``column_types``
update key by key, ``grants`` appends per key, everything else is replaced.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

APPEND_KEYS = frozenset({"tags", "pre-hook", "post-hook", "packages"})
UPDATE_KEYS = frozenset({"meta", "docs", "contract", "quoting", "column_types"})
DICT_KEY_APPEND_KEYS = frozenset({"grants"})

# dbt_project.yml section per resource type (dbt-core RenderedConfig.get_config_dict)
PROJECT_SECTION = {
    "seed": "seeds",
    "snapshot": "snapshots",
    "source": "sources",
    "test": "data_tests",
    "exposure": "exposures",
    "unit_test": "unit_tests",
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "model": {"enabled": True, "tags": [], "meta": {}, "materialized": "view",
              "on_schema_change": "ignore", "contract": {"enforced": False, "alias_types": True},
              "access": "protected", "group": None, "docs": {"show": True, "node_color": None}},
    "analysis": {"enabled": True, "tags": [], "meta": {}, "materialized": "view"},
    "seed": {"enabled": True, "tags": [], "meta": {}, "materialized": "seed"},
    "snapshot": {"enabled": True, "tags": [], "meta": {}, "materialized": "snapshot"},
    "test": {"enabled": True, "tags": [], "meta": {}, "materialized": "test",
             "severity": "ERROR"},
    "source": {"enabled": True, "tags": [], "meta": {}},
    "exposure": {"enabled": True, "tags": [], "meta": {}},
    "unit_test": {"enabled": True, "tags": [], "meta": {}},
}


def fresh_defaults(resource_type: str) -> dict[str, Any]:
    """A private copy of the defaults of a resource type (containers copied one level)."""
    base = DEFAULTS.get(resource_type, DEFAULTS["model"])
    return {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
            for k, v in base.items()}


def _copy(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return _deep(value, {})


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _deep(value: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy`` for the YAML data of configs (lists, dicts, line-numbered dicts of
    scalars), without its per-object dispatch; shared sub-objects (YAML aliases) stay
    shared, as with deepcopy. Anything else goes to ``copy.deepcopy``."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    done = memo.get(id(value))
    if done is not None:
        return done
    out: Any
    if kind is list:
        out = memo[id(value)] = []
        out.extend(_deep(v, memo) for v in value)
    elif kind is dict:
        out = memo[id(value)] = {}
        for k, v in value.items():
            out[k if type(k) in _SCALARS else copy.deepcopy(k)] = _deep(v, memo)
    elif kind.__name__ == "LineDict" and kind.__module__ == "dbt_bulwark.project.yamlio":
        out = memo[id(value)] = kind()
        for k, v in value.items():
            out[k if type(k) in _SCALARS else copy.deepcopy(k)] = _deep(v, memo)
        out.line = value.line
        out.key_lines = _deep(value.key_lines, memo)
    else:
        out = memo[id(value)] = copy.deepcopy(value)
    return out


def listify(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _canonical_key(key: str) -> str:
    return {"pre_hook": "pre-hook", "post_hook": "post-hook"}.get(key, key)


def merge_into(result: dict[str, Any], partial: Mapping[str, Any]) -> dict[str, Any]:
    """Merge one config layer into ``result`` in place (dbt's ``update_from``)."""
    for raw_key, value in partial.items():
        key = _canonical_key(str(raw_key))
        value = _copy(value)
        if key not in result or result[key] is None and key not in APPEND_KEYS:
            result[key] = listify(value) if key in APPEND_KEYS else value
        elif key in APPEND_KEYS:
            result[key] = listify(result[key]) + listify(value)
        elif key in UPDATE_KEYS and isinstance(result[key], dict) and isinstance(value, dict):
            merged = dict(result[key])
            merged.update(value)
            result[key] = merged
        elif key in DICT_KEY_APPEND_KEYS and isinstance(result[key], dict) and isinstance(value, dict):
            merged = {k: listify(v) for k, v in result[key].items()}
            for k, v in value.items():
                if isinstance(k, str) and k.startswith("+"):
                    k = k[1:]
                    merged[k] = merged.get(k, []) + listify(v)
                else:
                    merged[k] = listify(v)
            result[key] = merged
        else:
            result[key] = value
    return result


def merge_config_calls(calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Several ``config()`` calls in one file, merged as dbt's ``merge_config_dicts``."""
    out: dict[str, Any] = {}
    for call in calls:
        merge_into(out, call)
    return out


def fqn_search(root: Any, fqn: list[str]) -> Iterator[Mapping[str, Any]]:
    """Each level of a dbt_project.yml section along ``fqn`` (dbt-core ``fqn_search``)."""
    if not isinstance(root, Mapping):
        return
    yield root
    for level in fqn:
        level_config = root.get(level)
        if not isinstance(level_config, Mapping):
            break
        yield level_config
        root = level_config


def level_configs(level: Mapping[str, Any]) -> dict[str, Any]:
    """Config keys of one hierarchy level: ``+key`` always, un-prefixed keys unless dicts."""
    out: dict[str, Any] = {}
    for key, value in level.items():
        if not isinstance(key, str):
            continue
        if key.startswith("+"):
            out[key[1:].strip()] = value
        elif not isinstance(value, Mapping):
            out[key] = value
    return out


def project_layers(section: Any, fqn: list[str]) -> list[dict[str, Any]]:
    return [level_configs(level) for level in fqn_search(section, fqn)]


def resolve(resource_type: str, fqn: list[str], own_section: Any,
            patch: Mapping[str, Any] | None, calls: Mapping[str, Any] | None,
            root_section: Any = None) -> dict[str, Any]:
    """The effective config of one node.

    ``own_section``: the node's package ``dbt_project.yml`` section for its type;
    ``root_section``: the root project's section when the node is in a package.
    """
    result = fresh_defaults(resource_type)
    for layer in project_layers(own_section, fqn):
        merge_into(result, layer)
    if patch:
        merge_into(result, patch)
    if calls:
        merge_into(result, calls)
    if root_section is not None:
        for layer in project_layers(root_section, fqn):
            merge_into(result, layer)
    return finalize(result)


def finalize(config: dict[str, Any]) -> dict[str, Any]:
    """Normalise types the way dbt's config dataclasses do on validation."""
    tags = config.get("tags")
    if tags is None:
        config["tags"] = []
    elif not isinstance(tags, list):
        config["tags"] = [tags]
    if isinstance(config.get("contract"), Mapping):
        contract = dict(config["contract"])
        contract.setdefault("enforced", False)
        contract.setdefault("alias_types", True)
        config["contract"] = contract
    if "meta" in config and config["meta"] is None:
        config["meta"] = {}
    return config


def truthy(value: Any) -> bool:
    """dbt-style boolean coercion for config values (``enabled: 'false'`` is false)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "off", "")
    return bool(value)


def deep_merge(*dicts: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge, later wins; lists concatenate later-first (dbt's ``deep_merge``)."""
    out: dict[str, Any] = {}
    for d in dicts:
        for key, value in (d or {}).items():
            if isinstance(value, Mapping):
                base = out.get(key)
                out[key] = deep_merge(base if isinstance(base, dict) else {}, value)
            elif isinstance(value, (list, tuple)) and key in out:
                existing = out[key]
                out[key] = list(value) + (list(existing) if isinstance(existing, (list, tuple))
                                          else list(existing) if isinstance(existing, dict)
                                          else [existing])
            else:
                out[key] = copy.deepcopy(value)
    return out
