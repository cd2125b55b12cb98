"""Properties YAML shapes that dbt's schema validation rejects (checked with `dbt parse`),
beside the loader's own BLK030-036 shape checks; fast-compile reports them."""

from __future__ import annotations

from typing import Any

from dbt_bulwark.findings import Finding

# What dbt's schema validation of a properties file rejects (verified with `dbt parse`):
# a known key with the wrong type, a list element that is not a mapping, a column
# without `name`, a version without `v`, a latest_version that is not a version.
# Shapes the loader already reports (BLK030/032/033) are not repeated.

_STR, _DICT, _LIST, _BOOL = "a string", "a mapping", "a list", "true/false"
_TAGS = "a string or a list of strings"
_CONFIG_KEYS = {"enabled": _BOOL, "tags": _TAGS, "meta": _DICT, "docs": _DICT,
                "contract": _DICT, "materialized": _STR}
_COLUMN_KEYS = {"name": _STR, "description": _STR, "data_type": _STR, "meta": _DICT,
                "quote": _BOOL, "constraints": _LIST, "data_tests": _LIST, "tests": _LIST,
                "config": _DICT, "granularity": _STR}
_NODE_KEYS = {"name": _STR, "description": _STR, "meta": _DICT, "docs": _DICT, "config": _DICT,
              "data_tests": _LIST, "tests": _LIST, "constraints": _LIST, "versions": _LIST}
_VERSION_KEYS = {"description": _STR, "meta": _DICT, "docs": _DICT, "config": _DICT,
                 "data_tests": _LIST, "tests": _LIST, "constraints": _LIST, "defined_in": _STR}
_SOURCE_KEYS = {"name": _STR, "description": _STR, "meta": _DICT, "config": _DICT,
                "schema": _STR, "database": _STR, "loader": _STR, "quoting": _DICT,
                "tables": _LIST}
_TABLE_KEYS = {"name": _STR, "description": _STR, "meta": _DICT, "config": _DICT,
               "identifier": _STR, "data_tests": _LIST, "tests": _LIST, "quoting": _DICT,
               "external": _DICT}


def _type_ok(value: Any, kind: str) -> bool:
    if value is None:
        return True   # dbt treats an empty key as absent
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return True   # rendered by dbt before validation
    if kind == _STR:
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if kind == _DICT:
        return isinstance(value, dict)
    if kind == _LIST:
        return isinstance(value, list)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _TAGS:
        return isinstance(value, str) or (isinstance(value, list)
                                          and all(isinstance(t, str) for t in value))
    return True


def check_properties(path: str, data: Any) -> list[Finding]:
    """dbt-rejected shapes in one parsed properties file (BLK150-BLK153)."""
    from dbt_bulwark.project import yamlio

    out: list[Finding] = []
    if not isinstance(data, dict):
        return out

    def bad(obj: Any, key: str, what: str, owner: str, kind: str) -> None:
        out.append(Finding(path, yamlio.line_of(obj, key) or yamlio.line_of(obj), 0, "BLK150",
                           f"`{key}` of {owner} must be {kind}; dbt parse rejects this file",
                           hint=f"write `{key}:` as {kind}" + (f" ({what})" if what else "")))

    def keys(obj: dict, spec: dict[str, str], owner: str) -> None:
        for key, kind in spec.items():
            if key in obj and not _type_ok(obj[key], kind):
                bad(obj, key, "", owner, kind)
        conf = obj.get("config")
        if isinstance(conf, dict):
            for key, kind in _CONFIG_KEYS.items():
                if key in conf and not _type_ok(conf[key], kind):
                    bad(conf, key, "", f"{owner} (config)", kind)

    def items(parent: dict, key: str, owner: str) -> list[dict]:
        value = parent.get(key)
        if not isinstance(value, list):
            return []
        good = []
        for item in value:
            if isinstance(item, dict):
                good.append(item)
            else:
                out.append(Finding(path, yamlio.line_of(parent, key) or yamlio.line_of(parent),
                                   0, "BLK151",
                                   f"an element of `{key}` of {owner} is not a mapping "
                                   f"({str(item)[:40]!r}); dbt parse rejects this file",
                                   hint="write each element as `- name: ...`"))
        return good

    def columns(obj: dict, owner: str, allow_include: bool = False) -> None:
        if not isinstance(obj.get("columns"), list):
            return   # not a list: the loader reports BLK032
        for col in items(obj, "columns", owner):
            if allow_include and ("include" in col or "exclude" in col) and "name" not in col:
                continue
            if "name" not in col:
                out.append(Finding(path, yamlio.line_of(col), 0, "BLK152",
                                   f"a column of {owner} has no `name`; dbt parse rejects "
                                   "this file", hint="add `name:` to the column"))
                continue
            keys(col, _COLUMN_KEYS, f"column '{col.get('name')}' of {owner}")

    for section, label in (("models", "model"), ("seeds", "seed"), ("snapshots", "snapshot"),
                           ("analyses", "analysis")):
        for entry in items(data, section, f"`{section}:`"):
            if not isinstance(entry.get("name"), str):
                continue   # the loader reports BLK033
            owner = f"{label} '{entry['name']}'"
            keys(entry, _NODE_KEYS, owner)
            columns(entry, owner)
            versions = items(entry, "versions", owner) if section == "models" else []
            seen_v = []
            for ventry in versions:
                if "v" not in ventry:
                    out.append(Finding(path, yamlio.line_of(ventry), 0, "BLK152",
                                       f"a version of {owner} has no `v`; dbt parse rejects "
                                       "this file", hint="add `v: <number>` to the version"))
                    continue
                seen_v.append(ventry["v"])
                keys(ventry, _VERSION_KEYS, f"version {ventry['v']} of {owner}")
                columns(ventry, f"version {ventry['v']} of {owner}", allow_include=True)
            latest = entry.get("latest_version")
            if seen_v and latest is not None and \
                    str(latest) not in {str(v) for v in seen_v}:
                out.append(Finding(path, yamlio.line_of(entry, "latest_version"), 0, "BLK153",
                                   f"latest_version {latest} of {owner} is not one of its "
                                   f"versions ({', '.join(str(v) for v in seen_v)})",
                                   hint="set latest_version to a declared `v:`"))
    for src in items(data, "sources", "`sources:`"):
        if not isinstance(src.get("name"), str):
            continue
        owner = f"source '{src['name']}'"
        keys(src, _SOURCE_KEYS, owner)
        for table in items(src, "tables", owner):
            if not isinstance(table.get("name"), str):
                continue
            towner = f"source table '{src['name']}.{table['name']}'"
            keys(table, _TABLE_KEYS, towner)
            columns(table, towner)
    return out
