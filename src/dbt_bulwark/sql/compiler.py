"""Warehouse-free compile of one node: its SQL as dbt would compile it, without a database.

``ref()``/``source()`` render as stable placeholder identifiers
(:func:`relation_identifier`) that the SQL layer (:mod:`dbt_bulwark.sql.columns`) sees as
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

from dbt_bulwark.project.loader import node_vars
from dbt_bulwark.project.model import Node, Project, Source

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
    error_code: str | None = None         # BLK021 sandbox refusal, BLK022 time limit
    raw: str = ""                         # the template the SQL was rendered from
    _map: TemplateMap | None = field(default=None, repr=False)

    @property
    def trusted(self) -> bool:
        """True when the SQL is what dbt would compile (nothing unknown was rendered)."""
        return self.sql is not None and not self.undefined and not self.missing_refs \
            and not self.missing_sources

    def source_position(self, rendered_offset: int) -> tuple[int, int]:
        """(line, col), 1-based, in the raw template of an offset in the rendered SQL.

        A position inside literal SQL maps exactly; one inside the output of an
        expression (a ref, a macro call) maps to the start of its ``{{ ... }}``.
        """
        if self._map is None:
            self._map = TemplateMap(self.raw, self.sql or "")
        return self._map.position(rendered_offset)

    def rendered_offset(self, line: int, col: int) -> int:
        """Offset in the rendered SQL of a 1-based (line, col) of that SQL."""
        return line_col_to_offset(self.sql or "", line, col)


def compile_node(project: Project, node: Node, is_incremental: bool = False,
                 adapter_type: str | None = None, env: dict[str, str] | None = None,
                 standins: bool = False) -> Compiled:
    """Render ``node`` in compile mode. Never raises.

    ``standins``: an unknown name (a macro of a package that is not installed) renders as
    :data:`dbt_bulwark.sql.STANDIN` instead of nothing (see standins.py)."""
    import contextlib
    import os

    out = Compiled(node.unique_id, None)
    if node.language != "sql" or project.macros is None:
        return out
    pkg = project.packages.get(node.package_name)
    if pkg is None:
        return out
    raw = node.raw_code
    if "{" not in raw and "\r" not in raw:
        # no template tag and no newline Jinja would normalise: the text renders as itself
        # (keep_trailing_newline); no context, sandbox or watchdog needed
        out.raw = out.sql = raw
        return out
    # Jinja only when there is a template (a project of plain SQL never imports it)
    from dbt_bulwark.sql.jinja_env import (
        EnvVarMissing,
        RenderContext,
        RenderTimeout,
        SandboxError,
        VarMissing,
        error_line,
        record_undefined,
        render,
        standin_mode,
    )

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
    ctx.model = {"name": node.name, "unique_id": node.unique_id, "resource_type":
                 node.resource_type, "package_name": node.package_name,
                 "original_file_path": node.repo_path, "config": dict(node.config)}
    from dbt_bulwark.sql.builtins import make_builtins

    ctx.fallback = make_builtins(ctx)
    out.raw = node.raw_code
    with record_undefined() as names, \
            (standin_mode() if standins else contextlib.nullcontext()):
        try:
            out.sql = render(node.raw_code, ctx)
        except (VarMissing, EnvVarMissing) as exc:
            out.error = (_find(node.raw_code, exc.name), str(exc))
        except (SandboxError, RenderTimeout) as exc:
            out.error = (error_line(exc), str(exc))
            out.error_code = "BLK021" if isinstance(exc, SandboxError) else "BLK022"
        except Exception as exc:  # noqa: BLE001 - any template failure is reported, not raised
            out.error = (error_line(exc), f"{exc.__class__.__name__}: {exc}")
    out.undefined = sorted(set(names))
    out.warehouse_calls = sorted(set(ctx.warehouse_calls))
    out.vars_missing = ctx.vars_missing
    out.env_missing = ctx.env_missing
    return out


_ENV_VAR_RE = re.compile(r"""env_var\(\s*['"]([^'"]+)['"]""")


def _env_names(project: Project, node: Node) -> list[str] | None:
    """Environment variables the node's template (or any macro) reads; None: unknowable."""
    names = set(_ENV_VAR_RE.findall(node.raw_code))
    macro_names = getattr(project, "_macro_env_names", None)
    if macro_names is None:
        macro_names = set()
        if project.macros is not None:
            for macros in project.macros.by_package.values():
                for m in macros.values():
                    macro_names.update(_ENV_VAR_RE.findall(m.text))
        project._macro_env_names = macro_names  # type: ignore[attr-defined]
    names |= macro_names
    if "env_var" in node.raw_code and not names:
        return None   # env_var() with a computed name
    return sorted(names)


def compile_key(project: Project, node: Node, is_incremental: bool = False,
                env: Any = None) -> tuple | None:
    """Content key of a compile: the node's code, its resolved parents, macros, vars,
    config, and the values of the environment variables it can read."""
    import os

    from dbt_bulwark.cache import content_hash

    if node.language != "sql":
        return None
    names = _env_names(project, node)
    if names is None:
        return None
    environ = env if env is not None else os.environ
    blob = repr((node.checksum, node.raw_code, node.package_name, node.unique_id,
                 tuple(node.depends_on), project.macros_hash,
                 sorted(project.vars.items(), key=lambda kv: str(kv[0])),
                 sorted((k, str(v)) for k, v in node.config.items()), project.adapter_type,
                 is_incremental, [(n, environ.get(n)) for n in names]))
    return ("compile", content_hash(blob))


def compile_cached(project: Project, node: Node, is_incremental: bool = False,
                   env: dict[str, str] | None = None) -> Compiled:
    """:func:`compile_node` through the project's content-hash cache (when it has one).

    ``env`` replaces ``os.environ`` for ``env_var()``; the key holds the values of the
    variables the template and macros read.
    """
    cache = getattr(project, "cache", None)
    key = compile_key(project, node, is_incremental, env) if cache is not None else None
    if key is not None and cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit
    out = compile_node(project, node, is_incremental=is_incremental, env=env)
    if key is not None and cache is not None and not out.env_missing:
        cache.put(key, out)
    return out


def _find(text: str, needle: str) -> int:
    idx = text.find(needle) if needle else -1
    return text.count("\n", 0, idx) + 1 if idx >= 0 else 1


# ----------------------------------------------------------------------------- positions


def line_col_to_offset(text: str, line: int, col: int) -> int:
    """Offset of a 1-based (line, col) in ``text`` (clamped to the text)."""
    offset = 0
    for _ in range(max(0, line - 1)):
        nxt = text.find("\n", offset)
        if nxt < 0:
            return len(text)
        offset = nxt + 1
    return min(len(text), offset + max(0, col - 1))


def offset_to_line_col(text: str, offset: int) -> tuple[int, int]:
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


_TAG_START = re.compile(r"\{[{%#]")
_TAG_NAME = re.compile(r"\{%[-+]?\s*(\w+)")


@dataclass
class _Segment:
    raw_start: int
    text: str
    loop_start: int | None   # index of the first segment of the innermost enclosing for loop


def template_segments(raw: str) -> tuple[list[_Segment], list[tuple[int, str]]]:
    """Literal data segments of a Jinja template (after whitespace control) and the
    constructs between them as (raw offset, kind) with kind one of ``{{``, ``{%``, ``{#``."""
    pieces: list[tuple[int, int]] = []       # data (start, end) in raw
    constructs: list[tuple[int, str, str | None, bool, bool]] = []
    pos = 0
    n = len(raw)
    while pos < n:
        m = _TAG_START.search(raw, pos)
        if m is None:
            pieces.append((pos, n))
            break
        start = m.start()
        kind = m.group(0)
        close = {"{{": "}}", "{%": "%}", "{#": "#}"}[kind]
        end = _tag_end(raw, start + 2, close, kind != "{#")
        tag = None
        if kind == "{%":
            tm = _TAG_NAME.match(raw, start)
            tag = tm.group(1) if tm else None
        pieces.append((pos, start))
        lstrip_prev = raw.startswith("-", start + 2)
        rstrip_next = end - len(close) - 1 >= start + 2 and raw[end - len(close) - 1] == "-"
        constructs.append((start, kind, tag, lstrip_prev, rstrip_next))
        pos = end
        if tag == "raw":   # {% raw %}...{% endraw %}: the body is data
            em = re.compile(r"\{%-?\s*endraw\s*-?%\}").search(raw, pos)
            stop = em.start() if em else n
            pieces.append((pos, stop))
            constructs.append((stop, "{%", "endraw", False, False))
            pos = em.end() if em else n
    # pieces[i] precedes constructs[i]; apply whitespace control
    segments: list[_Segment] = []
    loops: list[int] = []
    out_constructs: list[tuple[int, str]] = []
    for i, (a, b) in enumerate(pieces):
        if i > 0 and constructs[i - 1][4]:   # the construct before ends with -}}
            while a < b and raw[a].isspace():
                a += 1
        if i < len(constructs) and constructs[i][3]:   # the construct after starts with {{-
            while b > a and raw[b - 1].isspace():
                b -= 1
        if b > a:
            segments.append(_Segment(a, raw[a:b], loops[-1] if loops else None))
        if i < len(constructs):
            start, kind, tag, _l, _r = constructs[i]
            out_constructs.append((start, kind))
            if tag == "for":
                loops.append(len(segments))
            elif tag == "endfor" and loops:
                loops.pop()
    return segments, out_constructs


def _tag_end(raw: str, pos: int, close: str, strings: bool) -> int:
    n = len(raw)
    quote: str | None = None
    while pos < n:
        ch = raw[pos]
        if quote:
            if ch == "\\":
                pos += 2
                continue
            if ch == quote:
                quote = None
        elif strings and ch in "'\"":
            quote = ch
        elif raw.startswith(close, pos):
            return pos + len(close)
        pos += 1
    return n


class TemplateMap:
    """Aligns a template's literal segments with its rendered text (greedy, in order)."""

    WINDOW = 8

    def __init__(self, raw: str, rendered: str):
        self.raw = raw
        self.rendered = rendered
        segments, self.constructs = template_segments(raw)
        self.spans: list[tuple[int, int, int]] = []    # (rendered start, end, raw start)
        cursor, idx, n = 0, -1, len(segments)
        while idx + 1 < n:
            cands = list(range(idx + 1, min(n, idx + 1 + self.WINDOW)))
            loop_start = segments[idx].loop_start if idx >= 0 else None
            if loop_start is not None:   # the loop body again
                cands.extend(range(loop_start, idx + 1))
            best: tuple[int, int] | None = None
            for j in cands:
                text = segments[j].text
                if j != idx + 1 and len(text.strip()) < 3:
                    continue
                p = rendered.find(text, cursor)
                if p >= 0 and (best is None or p < best[0]):
                    best = (p, j)
            if best is None:
                idx = cands[-1] if cands[-1] > idx else idx + self.WINDOW
                continue
            p, j = best
            self.spans.append((p, p + len(segments[j].text), segments[j].raw_start))
            cursor = p + len(segments[j].text)
            idx = j
        self._starts = [s[0] for s in self.spans]

    def raw_offset(self, offset: int) -> int:
        import bisect

        i = bisect.bisect_right(self._starts, offset) - 1
        if i >= 0:
            start, end, raw_start = self.spans[i]
            if offset < end or (offset == end and (i + 1 == len(self.spans)
                                                   or self.spans[i + 1][0] > end)
                                and offset == len(self.rendered)):
                return raw_start + (offset - start)
            after = raw_start + (end - start)
        else:
            after = 0
        limit = self.spans[i + 1][2] if i + 1 < len(self.spans) else len(self.raw)
        between = [(s, k) for s, k in self.constructs if after <= s < limit]
        exprs = [s for s, k in between if k == "{{"]
        if exprs:
            return exprs[0]
        if between:
            return between[0][0]
        return min(after, len(self.raw))

    def position(self, offset: int) -> tuple[int, int]:
        return offset_to_line_col(self.raw, self.raw_offset(offset))
