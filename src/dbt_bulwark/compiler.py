"""Warehouse-free compile of one node: its SQL as dbt would compile it, without a database.

``ref()``/``source()`` render as stable placeholder identifiers
(:func:`relation_identifier`) that the SQL layer (:mod:`dbt_bulwark.columns`) sees as
table names; :attr:`Compiled.relations` maps them back to unique_ids. ``execute``
is True, warehouse calls (``run_query``, ``adapter.get_columns_in_relation``...)
return empty stand-ins and are listed in :attr:`Compiled.warehouse_calls`.
Names that resolve to nothing (an unknown macro, a package that is not
installed) are listed in :attr:`Compiled.undefined`: the SQL is then not trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dbt_bulwark.jinja_env import EnvVarMissing, RenderContext, VarMissing, record_undefined, render
from dbt_bulwark.loader import node_vars
from dbt_bulwark.project import Node, Project, Source

_IDENT_SAFE = re.compile(r"[^A-Za-z0-9_]")


def relation_identifier(project: Project, res: Node | Source) -> str:
    """The placeholder table name a ref/source to ``res`` compiles to."""
    if isinstance(res, Source):
        raw = f"__src__{res.source_name}__{res.name}"
        if res.package_name != project.name:
            raw = f"__src__{res.package_name}__{res.source_name}__{res.name}"
    else:
        raw = f"__ref__{res.name}"
        if res.package_name != project.name:
            raw = f"__ref__{res.package_name}__{res.name}"
        if res.version is not None:
            raw += f"__v{res.version}"
    return _IDENT_SAFE.sub("_", raw)


@dataclass
class Compiled:
    unique_id: str
    sql: str | None                       # None when rendering failed
    error: tuple[int, str] | None = None  # (line in the source file, message)
    relations: dict[str, str] = field(default_factory=dict)   # identifier -> unique_id
    undefined: list[str] = field(default_factory=list)
    warehouse_calls: list[str] = field(default_factory=list)
    missing_refs: list[tuple[str, str | None, Any]] = field(default_factory=list)
    missing_sources: list[tuple[str, str]] = field(default_factory=list)
    vars_missing: list[str] = field(default_factory=list)
    env_missing: list[str] = field(default_factory=list)

    @property
    def trusted(self) -> bool:
        """True when the SQL is what dbt would compile (nothing unknown was rendered)."""
        return self.sql is not None and not self.undefined and not self.missing_refs \
            and not self.missing_sources


def _line_of_exc(exc: Exception) -> int:
    line = getattr(exc, "lineno", None)
    if isinstance(line, int) and line > 0:
        return line
    import traceback

    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == "<template>" and frame.lineno:
            return frame.lineno
    return 1


def compile_node(project: Project, node: Node, is_incremental: bool = False,
                 adapter_type: str | None = None, env: dict[str, str] | None = None) -> Compiled:
    """Render ``node`` in compile mode. Never raises."""
    import os

    out = Compiled(node.unique_id, None)
    if node.language != "sql" or project.macros is None:
        return out
    pkg = project.packages.get(node.package_name)
    if pkg is None:
        return out
    by_id: dict[str, Any] = {}
    lookups: dict[tuple[str, str | None, str | None], str] = {}
    parents = set(node.depends_on)

    def ref_name(name: str, package: str | None, version: Any) -> str:
        # resolve against the node's resolved parents first (same search as the loader)
        for uid in node.depends_on:
            target = project.get(uid)
            if isinstance(target, Node) and target.name == name and \
                    (package is None or target.package_name == package) and \
                    (version is None or str(target.version) == str(version)):
                ident = relation_identifier(project, target)
                out.relations[ident] = uid
                return ident
        out.missing_refs.append((name, package, version))
        return f"__missing__{_IDENT_SAFE.sub('_', name)}"

    def source_name(src: str, tbl: str) -> str:
        for uid in parents:
            target = project.get(uid)
            if isinstance(target, Source) and target.source_name == src and target.name == tbl:
                ident = relation_identifier(project, target)
                out.relations[ident] = uid
                return ident
        out.missing_sources.append((src, tbl))
        return f"__missing__{_IDENT_SAFE.sub('_', src)}__{_IDENT_SAFE.sub('_', tbl)}"

    del by_id, lookups
    ctx = RenderContext(
        package=node.package_name, macros=project.macros,
        vars=node_vars(project.packages[project.name], pkg, project.cli_vars),
        adapter_type=adapter_type or project.adapter_type or "duckdb", execute=True,
        is_incremental=is_incremental, env=env if env is not None else os.environ,
        ref_name=ref_name, source_name=source_name,
        this_name=relation_identifier(project, node),
    )
    ctx.config.known = dict(node.config)
    with record_undefined() as names:
        try:
            out.sql = render(node.raw_code, ctx)
        except (VarMissing, EnvVarMissing) as exc:
            out.error = (_find(node.raw_code, exc.name), str(exc))
        except Exception as exc:  # noqa: BLE001 - any template failure is reported, not raised
            out.error = (_line_of_exc(exc), f"{exc.__class__.__name__}: {exc}")
    out.undefined = sorted(set(names))
    out.warehouse_calls = sorted(set(ctx.warehouse_calls))
    out.vars_missing = ctx.vars_missing
    out.env_missing = ctx.env_missing
    return out


def _find(text: str, needle: str) -> int:
    idx = text.find(needle) if needle else -1
    return text.count("\n", 0, idx) + 1 if idx >= 0 else 1
