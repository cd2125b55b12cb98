"""Data test nodes named exactly as dbt names them (``test.<pkg>.<name>.<hash>``).

Generic tests declared in YAML become ``Node(resource_type="test")`` with dbt's
synthesized name (``unique_orders_order_id``, ``source_not_null_src_tbl_id``,
namespaced ``dbt_utils_...``), the same 10-character hash of the test metadata,
and ``depends_on`` on the tested model/source plus any ``ref()``/``source()`` in
the test's arguments. Unit tests become ``unit_test.<pkg>.<model>.<name>``.
This is what makes ``bulwark ls`` and indirect test selection match ``dbt ls``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from dbt_bulwark.project.model import Column, DataTest, Node, RefCall

TEST_NAME_RE = re.compile(r"^(?:(?P<ns>[A-Za-z_][0-9A-Za-z_]*)\.)?(?P<name>[A-Za-z_][0-9A-Za-z_]*)$")
CONFIG_ARGS = ("severity", "tags", "enabled", "where", "limit", "warn_if", "error_if",
               "fail_calc", "store_failures", "store_failures_as", "meta", "database",
               "schema", "alias")


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    """LineDict/tuples to plain dicts/lists, as dbt's YAML loader produces."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _hashable(data: Any) -> Any:
    if type(data) is dict:
        return {k: _hashable(data[k]) for k in sorted(data)}
    if type(data) is list:
        return [_hashable(v) for v in data]
    return str(data)


def synthesize_names(test_type: str, target_name: str, args: Mapping[str, Any]) -> tuple[str, str]:
    """(short name, full name) the way dbt synthesizes generic test names."""
    flat: list[str] = []
    for arg in sorted(args):
        if arg == "model":
            continue
        value = args[arg]
        parts = list(value.values()) if isinstance(value, dict) else \
            list(value) if isinstance(value, (list, tuple)) else [value]
        flat.extend(str(p) for p in parts)
    unique = "__".join(re.sub("[^0-9a-zA-Z_]+", "_", a) for a in flat)
    identifier = f"{test_type}_{target_name}"
    full = f"{identifier}_{unique}"
    short = f"{identifier[:30]}_{_md5(full)}" if len(full) >= 64 else full
    return short, full


def build_test_node(test: DataTest, *, package: str, target_kind: str, target_name: str,
                    version: Any, source_table: str | None, column: Column | None,
                    yaml_rel: str, repo_path: str, original_file_path: str,
                    unpack_arguments: bool = True) -> Node | None:
    """One generic test as dbt would create it; None when the entry is malformed.

    ``unpack_arguments``: dbt >= 1.10 merges ``arguments:`` into the test's kwargs;
    dbt 1.9 (or the behaviour flag off) keeps ``arguments`` as one kwarg (dbt_rules.py)."""
    m = TEST_NAME_RE.match(test.test_name)
    if not m:
        return None
    ns, name = m.group("ns"), m.group("name")
    args: dict[str, Any] = _plain(test.kwargs)  # a fresh copy
    if unpack_arguments and isinstance(args.get("arguments"), dict):
        arguments = args.pop("arguments")
        args = {**args, **arguments}
    if column is not None:
        col = column.name
        args["column_name"] = f'"{col}"' if column.quote is True else col
    test_config: dict[str, Any] = {}
    nested = args.get("config") if isinstance(args.get("config"), dict) else {}
    for key in CONFIG_ARGS:
        value = args.pop(key, None)
        if not value and nested:
            value = nested.pop(key, None)
        if value is not None:
            test_config[key] = value
    if "config" in args:
        extra = args.pop("config")
        if isinstance(extra, dict):
            test_config.update(extra)
    args.pop("description", None)
    custom_name = args.pop("name", None)
    if target_kind == "source":
        src, tbl = target_name, source_table or ""
        target_str = f"source('{src}', '{tbl}')"
        synth_target = f"{src}_{tbl}"
        test_type = f"source_{name}"
    else:
        target_str = f"ref('{target_name}', version='{version}')" if version is not None \
            else f"ref('{target_name}')"
        synth_target = f"{target_name}_v{version}" if version is not None else target_name
        test_type = name
    if ns:
        test_type = f"{ns}_{test_type}"
    args["model"] = "{{ get_where_subquery(" + target_str + ") }}"
    if custom_name:
        fqn_name = str(custom_name)
    else:
        _short, fqn_name = synthesize_names(test_type, synth_target, args)
    metadata = {"namespace": ns, "name": name, "kwargs": args}
    test_hash = _md5(fqn_name + repr(_hashable(metadata)))[-10:]
    dirs = yaml_rel.split("/")[:-1]
    node = Node(unique_id=f"test.{package}.{fqn_name}.{test_hash}", resource_type="test",
                name=fqn_name, package_name=package, path=yaml_rel,
                original_file_path=original_file_path, repo_path=repo_path,
                fqn=[package, *dirs, fqn_name])
    node.calls = test_config
    node.patch_path, node.patch_line = repo_path, test.line
    # refs: the tested relation, then any ref()/source() in the arguments
    if target_kind == "source":
        node.sources.append((target_name, source_table or ""))
    else:
        node.refs.append(RefCall(target_name, None, version))
    extra_args = [v for k, v in args.items() if k not in ("model", "column_name")]
    for value in _strings(extra_args):
        for rm in re.finditer(r"\bref\(\s*['\"]([^'\"]+)['\"]\s*(?:,\s*['\"]([^'\"]+)['\"])?", value):
            if rm.group(2):
                node.refs.append(RefCall(rm.group(2), rm.group(1), None))
            else:
                node.refs.append(RefCall(rm.group(1), None, None))
        for sm in re.finditer(r"\bsource\(\s*['\"]([^'\"]+)['\"]\s*,\s*['\"]([^'\"]+)['\"]", value):
            node.sources.append((sm.group(1), sm.group(2)))
    node.config = {"test_metadata": metadata, "column_name": args.get("column_name")}
    return node


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
