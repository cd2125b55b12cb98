"""fast-compile: what ``dbt parse`` / ``dbt compile`` would reject, without dbt or a warehouse.

Checks (codes BLK1xx; the loader's BLK0xx findings are attached by the runner):

* project-wide graph checks, cheap, always run: refs/sources that do not resolve
  (missing, disabled, wrong version, unknown package), ref cycles, two relations
  with the same database.schema.alias;
* per node (the changed ones and their children, or all with ``--all-files``):
  compile-mode render (:func:`dbt_bulwark.sql.compiler.compile_node`), unknown macros,
  missing vars / env vars, SQL syntax (DuckDB's parser or a two-opinion sqlglot
  verdict, see :func:`sql_syntax_error`), columns that no upstream relation provides;
* Jinja syntax of macro files; properties YAML shapes dbt's schema validation rejects.

Positions in rendered SQL are mapped back to the ``.sql`` file with
:meth:`dbt_bulwark.sql.compiler.Compiled.source_position`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dbt_bulwark.cache import content_hash
from dbt_bulwark.findings import Finding
from dbt_bulwark.policy import Policy
from dbt_bulwark.project.model import Node, Project, RefCall
from dbt_bulwark.project.property_shapes import check_properties
from dbt_bulwark.spelling import close_match, did_you_mean
from dbt_bulwark.sql.compiler import Compiled, compile_cached, offset_to_line_col
from dbt_bulwark.sql.dbt_names import BUILTIN_NAMES, GLOBAL_MACROS
from dbt_bulwark.sql.sql_verdicts import SyntaxVerdict, sql_syntax_error

CHECKED_TYPES = ("model", "snapshot", "analysis", "test")
# pre-commit mode: how many levels of ancestors are inferred for the column check (beyond
# that an upstream is "unknown" and the check stays silent); --all-files infers everything
UPSTREAM_DEPTH = 3


# ----------------------------------------------------------------------------- helpers


def find_call(text: str, func: str, args: Iterable[str] = ()) -> tuple[int, int]:
    """1-based (line, col) of the first ``func(`` call in ``text`` whose arguments
    mention every string of ``args`` (quoted); else of any ``func(``; else (1, 0)."""
    pattern = re.compile(rf"\b{re.escape(func)}\s*\(")
    first: int | None = None
    for m in pattern.finditer(text):
        first = m.start() if first is None else first
        end = text.find(")", m.end())
        inner = text[m.end():end if end >= 0 else len(text)]
        if all(re.search(rf"""['"]{re.escape(a)}['"]""", inner) for a in args):
            return offset_to_line_col(text, m.start())
    if first is not None:
        return offset_to_line_col(text, first)
    return 1, 0


_CALLED: dict[str, dict[str, int]] = {}
_CALLED_MAX = 20_000


def called_names(text: str, cache: Any = None) -> dict[str, int]:
    """Names called in a Jinja template (``foo(...)``, ``pkg.foo(...)`` -> ``pkg``,
    ``pkg.foo``) with the line of their first call; parsed once per text and process (the
    head and the base read the same unchanged files), and with ``cache`` (the analysis
    cache) once per text. The result is shared: do not modify."""
    hit = _CALLED.get(text)
    if hit is not None:
        return hit
    key = ("called-names", content_hash(text)) if cache is not None else None
    stored: Any = cache.get(key) if cache is not None else None
    calls: dict[str, int] = stored if _is_calls(stored) else _called_names(text)
    if cache is not None and calls is not stored:
        cache.put(key, calls)
    if len(_CALLED) >= _CALLED_MAX:
        _CALLED.clear()
    _CALLED[text] = calls
    return calls


def _is_calls(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, int) for k, v in value.items())


def _called_names(text: str) -> dict[str, int]:
    import jinja2
    import jinja2.nodes as jn

    from dbt_bulwark.sql.jinja_env import environment

    try:
        tree = environment().parse(text)
    except (jinja2.TemplateError, RecursionError):   # reported elsewhere
        return {}
    out: dict[str, int] = {}
    for call in tree.find_all(jn.Call):
        target = call.node
        if isinstance(target, jn.Name):
            out.setdefault(target.name, call.lineno)
        elif isinstance(target, jn.Getattr) and isinstance(target.node, jn.Name):
            out.setdefault(target.node.name, call.lineno)
            out.setdefault(f"{target.node.name}.{target.attr}", call.lineno)
    return out


# ----------------------------------------------------------------------------- the check


@dataclass
class FastCompile:
    ctx: Any                   # runner.HookContext (or None in tests)
    project: Project
    policy: Policy | None
    targets: set[str] | None
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        from dbt_bulwark.sql.schema import project_dialect

        pol = self.policy
        self.check_sql = pol.fast_compile.check_sql if pol else True
        self.check_columns = pol.fast_compile.check_columns if pol else True
        self.trust_sources = pol.fast_compile.trust_source_columns if pol else False
        env_extra = pol.fast_compile.env_vars if pol else None
        import os

        self.env = dict(os.environ)
        if isinstance(env_extra, dict):
            for k, v in env_extra.items():
                self.env.setdefault(str(k), str(v))
        self.dialect, self.how = project_dialect(self.project,
                                                 pol.dialect if pol else None)
        from dbt_bulwark.project.loader import render_data_types

        render_data_types(self.project, self.project.adapter_type
                          or (pol.dialect if pol else None) or None)
        fs = self.ctx.ws.fs if self.ctx is not None else None
        self.fs = fs
        declared = self.project.declared_packages
        installed = {p.lower() for p in self.project.packages}
        self.missing_packages = sorted({d for d in declared if d.lower() not in installed})
        self._resolver: Any = None
        self._macro_calls: dict[str, dict[str, int]] | None = None
        self._reported_macro_sites: set[tuple[str, str]] = set()
        self.column_nodes: set[str] | None = None   # None: every checked node
        self.has_cycles = False

    # -- helpers
    def add(self, path: str, line: int, col: int, code: str, message: str,
            severity: str = "error", hint: str = "", node: str = "") -> None:
        self.findings.append(Finding(path, line, col, code, message, severity, hint, node))

    def add_at(self, path: str, pos: tuple[int, int], code: str, message: str,
               severity: str = "error", hint: str = "", node: str = "") -> None:
        self.add(path, pos[0], pos[1], code, message, severity, hint, node)

    def own(self, node: Node) -> bool:
        return node.package_name == self.project.name

    @property
    def resolver(self) -> Any:
        if self._resolver is None:
            self._resolver = _resolver(self.project, self.dialect, self.trust_sources,
                                       None if self.targets is None else UPSTREAM_DEPTH)
        return self._resolver

    @property
    def cache(self) -> Any:
        """The analysis cache (compiled SQL, verdicts), read only by checks that need it."""
        return self.project.cache

    # -- entry point
    def run(self) -> list[Finding]:
        self.check_references()
        self.check_cycles()
        self.check_aliases()
        self.check_yaml()
        if self.targets is None:
            self.check_macro_files()
        nodes = self.nodes_to_check()
        self.check_nodes_parallel(nodes)
        return self.findings

    def check_nodes(self, nodes: list[Node]) -> None:
        for node in nodes:
            try:
                self.check_node(node)
            except Exception as exc:  # noqa: BLE001 - one odd node must not stop the hook
                from dbt_bulwark.cache import log_exception

                log = log_exception(exc, f"fast-compile: {node.unique_id}",
                                    self.ctx.ws.repo_root if self.ctx is not None else None)
                self.add(node.repo_path, 1, 0, "BLK199",
                         f"internal error while checking {node.unique_id}: "
                         f"{exc.__class__.__name__}: {exc} (traceback in {log})", "info",
                         node=node.unique_id)

    def check_nodes_parallel(self, nodes: list[Node]) -> None:
        """Check many nodes (``--all-files``) on every core. Along the ref graph
        (:func:`dbt_bulwark.parallel.map_graph`): a node is checked once its parents are,
        their compiled SQL and inferred columns in the cache of the process that checks
        it, so no two processes compile or infer the same upstream. A graph with ref
        cycles: contiguous chunks (:func:`dbt_bulwark.parallel.map_shares`), parents
        first."""
        from dbt_bulwark.parallel import map_graph, map_shares

        def share(chunk: Sequence[Node]) -> list[Finding]:
            before = len(self.findings)
            self.check_nodes(list(chunk))
            found = self.findings[before:]
            del self.findings[before:]
            return found

        def cost(node: Node) -> int:   # grows with the SQL (wide, many-CTE models)
            return 200 + len(node.raw_code)

        done: list[list[Finding]] | None = None
        if not self.has_cycles:
            index = {n.unique_id: i for i, n in enumerate(nodes)}
            parents = [[index[d] for d in n.depends_on if d in index] for n in nodes]
            done = map_graph(nodes, parents, share, [self.cache], PARALLEL_MIN_NODES, cost)
        if done is None:
            done = map_shares(nodes, share, [self.cache], PARALLEL_MIN_NODES, cost=cost)
        for found in done:
            self.findings.extend(found)

    def nodes_to_check(self) -> list[Node]:
        nodes = [n for n in self.project.nodes.values()
                 if self.own(n) and n.resource_type in CHECKED_TYPES]
        if self.targets is None:
            ordered = sorted(nodes, key=lambda n: n.unique_id)
            return ordered if self.has_cycles else _parents_first(ordered)
        changed = set(self.ctx.files) if self.ctx is not None else set()
        wanted = set(self.targets)
        self.column_nodes = set()
        for uid in self.targets:
            target = self.project.nodes.get(uid)
            if target is None:
                continue
            # the output of a node changes with its SQL/CSV, or with the YAML of a contract;
            # a description or a test in YAML changes nothing its children read
            if target.repo_path in changed or target.contract_enforced or \
                    target.resource_type == "seed":
                self.column_nodes.add(uid)
                kids = self.project.children(uid)
                wanted |= kids
                self.column_nodes |= kids
        return sorted((n for n in nodes if n.unique_id in wanted), key=lambda n: n.unique_id)

    # -- references
    def check_references(self) -> None:
        project = self.project
        refable: dict[str, list[Node]] = {}
        for n in project.nodes.values():
            if n.resource_type in ("model", "seed", "snapshot"):
                refable.setdefault(n.name, []).append(n)
        disabled = {n.name: n for ns in project.disabled.values() for n in ns}
        source_tables: dict[str, set[str]] = {}
        for s in project.sources.values():
            source_tables.setdefault(s.source_name, set()).add(s.name)
        changed = set(self.ctx.files) if self.ctx is not None else set()
        if self.targets is None or changed & project.yaml_with_refs:
            _ = project.data_tests   # generic tests: ref()/source() in their arguments
        disabled_uids = {n.unique_id for ns in project.disabled.values() for n in ns}
        for uid, what, reason in project.unresolved:
            if uid in disabled_uids and uid not in project.nodes:
                continue   # a disabled node (known without building every data test)
            res = project.get(uid)
            if res is None or getattr(res, "package_name", None) != project.name:
                continue   # disabled nodes are not checked by dbt; packages are not yours
            path = res.repo_path
            text = getattr(res, "raw_code", None)
            patch_line = int(getattr(res, "patch_line", 0) or 0)
            if text is None or (not text and patch_line):
                # a YAML resource, or a generic test declared in YAML: search from its line
                text = self.read(path)
                start = patch_line or int(getattr(res, "line", 0) or 0)
                if start > 1 and text:
                    offset = sum(len(x) for x in text.splitlines(keepends=True)[:start - 1])
                    tail_line, tail_col = self._find_in(text[offset:], what)
                    if tail_line:
                        self.ref_finding_at(res, what, reason, path, start + tail_line - 1,
                                            tail_col, refable, disabled, source_tables)
                        continue
            is_yaml = not hasattr(res, "raw_code") or not res.raw_code
            if isinstance(what, RefCall):
                args = [a for a in (what.package, what.name) if a]
                line, col = find_call(text or "", "ref", args)
                if is_yaml and line == 1 and col == 0:
                    line = getattr(res, "line", 1)
                self.ref_finding(res, what, reason, path, line, col, refable, disabled)
            else:
                src, tbl = what
                line, col = find_call(text or "", "source", [src, tbl])
                if is_yaml and line == 1 and col == 0:
                    line = getattr(res, "line", 1)
                label = f"source('{src}', '{tbl}')"
                if self.missing_packages and src not in source_tables:
                    self.add(path, line, col, "BLK103",
                             f"not checked: {label} may be declared by a package that is not "
                             f"installed ({', '.join(self.missing_packages)}); run dbt deps",
                             "info", node=uid)
                elif src in source_tables:
                    hint = did_you_mean(tbl, source_tables[src], self.cache) or \
                        f"declare table '{tbl}' under source '{src}' in a properties YAML"
                    self.add(path, line, col, "BLK115",
                             f"{label}: source '{src}' has no table '{tbl}'", hint=hint, node=uid)
                else:
                    hint = did_you_mean(src, source_tables, self.cache) or \
                        f"declare source '{src}' (with table '{tbl}') under `sources:` in YAML"
                    self.add(path, line, col, "BLK114",
                             f"{label}: no source named '{src}' is declared", hint=hint, node=uid)

    @staticmethod
    def _find_in(text: str, what: Any) -> tuple[int, int]:
        """(line, col) of the ref()/source() call ``what`` in ``text``; (0, 0) if absent."""
        if isinstance(what, RefCall):
            func, args = "ref", [a for a in (what.package, what.name) if a]
        else:
            func, args = "source", list(what)
        pattern = re.compile(rf"\b{func}\s*\(")
        for m in pattern.finditer(text):
            end = text.find(")", m.end())
            inner = text[m.end():end if end >= 0 else len(text)]
            if all(re.search(rf"""['"]{re.escape(a)}['"]""", inner) for a in args):
                return offset_to_line_col(text, m.start())
        return 0, 0

    def ref_finding_at(self, res: Any, what: Any, reason: str, path: str, line: int, col: int,
                       refable: dict[str, list[Node]], disabled: dict[str, Node],
                       source_tables: dict[str, set[str]]) -> None:
        """A finding for an unresolved ref()/source() in a generic test's arguments."""
        if isinstance(what, RefCall):
            self.ref_finding(res, what, reason, path, line, col, refable, disabled)
            return
        src, tbl = what
        label = f"source('{src}', '{tbl}')"
        known = source_tables.get(src)
        hint = (did_you_mean(tbl, known, self.cache) if known
                else did_you_mean(src, source_tables, self.cache)) or \
            "declare it under `sources:` in a properties YAML"
        self.add(path, line, col, "BLK115" if known else "BLK114",
                 f"{label}: " + (f"source '{src}' has no table '{tbl}'" if known else
                                 f"no source named '{src}' is declared")
                 + " (dbt warns and skips this test)", "warning", hint, res.unique_id)

    def ref_finding(self, res: Any, ref: RefCall, reason: str, path: str, line: int, col: int,
                    refable: dict[str, list[Node]], disabled: dict[str, Node]) -> None:
        if getattr(res, "resource_type", "") == "test":
            # dbt only warns for singular tests (and disables them when the target is disabled)
            add = self.add

            def as_test(path: str, line: int, col: int, code: str, message: str,
                        severity: str = "error", hint: str = "", node: str = "") -> None:
                sev = severity if severity == "info" else \
                    ("info" if code == "BLK111" else "warning")
                add(path, line, col, code, message + " (dbt warns and skips this test)", sev,
                    hint, node)
            self.add = as_test  # type: ignore[method-assign]
            try:
                self._ref_finding(res, ref, reason, path, line, col, refable, disabled)
            finally:
                del self.add
            return
        self._ref_finding(res, ref, reason, path, line, col, refable, disabled)

    def _ref_finding(self, res: Any, ref: RefCall, reason: str, path: str, line: int, col: int,
                     refable: dict[str, list[Node]], disabled: dict[str, Node]) -> None:
        uid = res.unique_id
        label = ref.label()
        cands = refable.get(ref.name, [])
        if ref.package and ref.package not in self.project.packages:
            if self.missing_packages:
                self.add(path, line, col, "BLK103",
                         f"not checked: {label} names package '{ref.package}', which is not "
                         f"installed; run dbt deps", "info", node=uid)
            else:
                hint = did_you_mean(ref.package, self.project.packages, self.cache) or \
                    "add the package to packages.yml, or drop the package argument"
                self.add(path, line, col, "BLK113",
                         f"{label}: there is no package named '{ref.package}'", hint=hint,
                         node=uid)
            return
        if ref.version is not None and cands:
            versions = sorted({str(c.version) for c in cands if c.version is not None})
            self.add(path, line, col, "BLK112",
                     f"{label}: model '{ref.name}' has no version {ref.version}"
                     + (f" (versions: {', '.join(versions)})" if versions else
                        " (it is not versioned)"),
                     hint="reference an existing version, or drop `v=` for the latest",
                     node=uid)
            return
        if reason == "disabled" or (not cands and ref.name in disabled):
            other = disabled.get(ref.name)
            where = f" ({other.repo_path})" if other else ""
            self.add(path, line, col, "BLK111",
                     f"{label}: '{ref.name}'{where} is disabled", node=uid,
                     hint="enable it, or disable this node too, or remove the ref")
            return
        providers = self.ref_providers(ref.name) if self.missing_packages else []
        close = close_match(ref.name, refable, self.cache) if not cands else None
        if providers and not (close and not any(p_exact for _p, p_exact in providers)):
            names = ", ".join(p for p, _e in providers)
            self.add(path, line, col, "BLK103",
                     f"not checked: {label} may come from a package that is not installed "
                     f"({names}); run dbt deps", "info", node=uid)
            return
        if cands and ref.package:
            pkgs = ", ".join(sorted({c.package_name for c in cands}))
            self.add(path, line, col, "BLK110",
                     f"{label}: package '{ref.package}' has no model '{ref.name}' "
                     f"(found in: {pkgs})", hint=f"use ref('{ref.name}')", node=uid)
            return
        hint = (f"did you mean '{close}'?" if close
                else did_you_mean(ref.name, refable, self.cache)) or \
            "create the model/seed/snapshot, or fix the name"
        extra = ""
        if self.missing_packages:
            extra = (" (no package declared in packages.yml provides it: "
                     f"{', '.join(self.missing_packages)} not installed)")
        self.add(path, line, col, "BLK110",
                 f"{label}: no model, seed or snapshot named '{ref.name}'{extra}", hint=hint,
                 node=uid)

    def ref_providers(self, name: str) -> list[tuple[str, bool]]:
        """Uninstalled packages that could provide ``ref(name)``: (package, known to ship
        that exact name). Well-known packages are looked up in the packages data (most
        ship no models: they cannot); any other package could provide anything."""
        from dbt_bulwark.project.known_packages import can_provide_ref, ships_ref

        return [(p, ships_ref(p, name)) for p in self.missing_packages
                if can_provide_ref(p, name)]

    def read(self, path: str) -> str:
        if self.fs is None:
            return ""
        from dbt_bulwark.project import yamlio

        try:
            return yamlio.decode(self.fs.read_bytes(path))
        except (OSError, UnicodeDecodeError):   # reported by the loader (BLK002/BLK003)
            return ""

    # -- cycles
    def check_cycles(self) -> None:
        project = self.project
        graph = {uid: [d for d in n.depends_on if d in project.nodes]
                 for uid, n in project.nodes.items()}
        for comp in _sccs(graph):
            if len(comp) == 1 and comp[0] not in graph.get(comp[0], []):
                continue
            self.has_cycles = True
            members = set(comp)
            start = min(comp)
            cycle = _cycle_path(graph, start, members)
            first = project.nodes[start]
            nxt = project.nodes[cycle[1]] if len(cycle) > 1 else first
            line, col = find_call(first.raw_code, "ref", [nxt.name])
            shown = " -> ".join(project.nodes[u].name for u in cycle)
            self.add(first.repo_path, line, col, "BLK116", f"ref cycle: {shown}",
                     hint="a model cannot (indirectly) select from itself; break one of "
                          "these refs", node=start)

    # -- relation names
    def check_aliases(self) -> None:
        """Two relational nodes building the same database.schema.alias (dbt rejects)."""
        project = self.project
        root_macros = project.macros.by_package.get(project.name, {}) if project.macros else {}
        if any(m in root_macros for m in ("generate_schema_name", "generate_alias_name",
                                          "generate_database_name")):
            return   # custom naming: needs the macros rendered with a real target
        seen: dict[tuple[str, str, str], Node] = {}
        for node in sorted(project.nodes.values(), key=lambda n: n.unique_id):
            if node.resource_type not in ("model", "seed", "snapshot"):
                continue
            if node.materialized == "ephemeral":
                continue
            conf = node.config
            if node.resource_type == "snapshot" and (conf.get("target_schema")
                                                     or conf.get("target_database")):
                schema = str(conf.get("target_schema") or "")
                database = str(conf.get("target_database") or "")
            else:
                custom = conf.get("schema")
                schema = f"<target>_{custom}" if custom else "<target>"
                database = str(conf.get("database") or "<target>")
            key = (database, schema, node.relation_name)
            other = seen.get(key)
            if other is None:
                seen[key] = node
                continue
            if not (self.own(node) or self.own(other)):
                continue
            mine = node if self.own(node) else other
            path, line = mine.where("alias") if "alias" in mine.config_origin else \
                (mine.repo_path, 1)
            self.add(path, line, 0, "BLK117",
                     f"{node.unique_id} and {other.unique_id} both build relation "
                     f"'{node.relation_name}' in the same schema; dbt rejects this",
                     hint="rename one of them, or give it another `alias` or `schema`",
                     node=mine.unique_id)

    # -- macro files
    def check_macro_files(self) -> None:
        from dbt_bulwark.sql.jinja_env import syntax_error

        macros = self.project.macros
        if macros is None:
            return
        paths = sorted({m.path: m.text for m in macros.by_package.get(self.project.name,
                                                                       {}).values()}.items())
        for path, text in paths:
            err = self.jinja_syntax(text, syntax_error)
            if err:
                line, msg = err
                self.add(path, line or 1, 0, "BLK101", f"Jinja syntax error: {msg}",
                         hint="fix the template; dbt cannot load any macro of this file")

    def jinja_syntax(self, text: str, syntax_error: Any) -> tuple[int, str] | None:
        """``syntax_error(text)``, kept in the analysis cache by content."""
        key = ("jinja-syntax", content_hash(text))
        hit = self.cache.get(key) if self.cache is not None else None
        if isinstance(hit, tuple) and hit[:1] == ("ok",):
            return None
        if isinstance(hit, tuple) and len(hit) == 3 and hit[0] == "err" and \
                isinstance(hit[1], int) and isinstance(hit[2], str):
            return hit[1], hit[2]
        err = syntax_error(text)
        if self.cache is not None:
            self.cache.put(key, ("ok",) if err is None else ("err", int(err[0]), str(err[1])))
        return err

    # -- properties YAML
    def check_yaml(self) -> None:
        project = self.project
        changed = set(self.ctx.files) if self.ctx is not None and self.targets is not None \
            else None
        root = project.root
        for path, data in sorted(project.yaml_files.items()):
            if root and not path.startswith(root + "/"):
                continue
            if _in_packages(path, project):
                continue
            if changed is not None and path not in changed:
                continue
            for f in check_properties(path, data):
                self.findings.append(f)

    # -- per node
    def compiled(self, node: Node, is_incremental: bool) -> Compiled:
        if not is_incremental:
            hit = self.resolver._compiled.get(node.unique_id)
            if hit is not None:
                return hit
        out = compile_cached(self.project, node, is_incremental=is_incremental, env=self.env)
        if not is_incremental:
            self.resolver._compiled[node.unique_id] = out
        return out

    def file_offset(self, node: Node) -> tuple[int, int]:
        """(line offset, first-line col offset) of the node's raw code inside its file."""
        if node.resource_type != "snapshot" or node.patch_path == node.repo_path:
            return 0, 0
        text = self.read(node.repo_path)
        idx = text.find(node.raw_code) if node.raw_code else -1
        if idx <= 0:
            return 0, 0
        line, col = offset_to_line_col(text, idx)
        return line - 1, col - 1

    def check_node(self, node: Node) -> None:
        if node.language != "sql" or node.jinja_error:
            return   # the loader reported BLK020 (or a Python syntax error)
        if node.resource_type == "snapshot" and node.patch_path == node.repo_path:
            return   # YAML-defined snapshot: no SQL of its own
        runs = [False]
        if "is_incremental" in node.raw_code:
            runs.append(True)
        seen: set[tuple[int, int, str]] = set()
        for incremental in runs:
            compiled = self.compiled(node, incremental)
            before = len(self.findings)
            self.check_compiled(node, compiled, incremental)
            kept: list[Finding] = self.findings[:before]
            for f in self.findings[before:]:
                key = (f.line, f.col, f.code)
                if key not in seen:
                    seen.add(key)
                    kept.append(f)
            self.findings[:] = kept

    def check_compiled(self, node: Node, compiled: Compiled, incremental: bool) -> None:
        path = node.repo_path
        uid = node.unique_id
        dl, dc = self.file_offset(node)

        def at(line: int, col: int) -> tuple[int, int]:
            return line + dl, col + (dc if line == 1 else 0)

        branch = " (is_incremental() branch)" if incremental else ""
        if compiled.error is not None:
            line, msg = compiled.error
            if compiled.error_code in ("BLK021", "BLK022"):
                what = "blocked by dbt's Jinja sandbox" if compiled.error_code == "BLK021" \
                    else "Jinja"
                self.add_at(path, at(line, 0), compiled.error_code, f"{what}{branch}: {msg}",
                            node=uid, hint="dbt refuses this too; remove it"
                            if compiled.error_code == "BLK021" else "look for a runaway loop")
                return
            for name in compiled.vars_missing:
                line_v, col_v = find_call(node.raw_code, "var", [name])
                self.add_at(path, at(line_v, col_v), "BLK120",
                         f"var('{name}') has no default and is not set in `vars:` of "
                         "dbt_project.yml", node=uid,
                         hint=f"add `{name}:` under `vars:` in dbt_project.yml, pass --vars, "
                              f"or give a default: var('{name}', ...)")
            for name in compiled.env_missing:
                line_e, col_e = find_call(node.raw_code, "env_var", [name])
                self.add_at(path, at(line_e, col_e), "BLK121",
                         f"env_var('{name}') has no default and is not set", node=uid,
                         hint=f"give a default: env_var('{name}', '...'), or set it in "
                              "bulwark.yml `fast_compile: env_vars:` for the check")
            if not compiled.vars_missing and not compiled.env_missing:
                self.add_at(path, at(line, 0), "BLK105",
                         f"not checked: cannot render in compile mode{branch}: {msg}", "info",
                         node=uid)
            return
        untrusted = self.check_names(node, compiled, at)
        if untrusted or compiled.sql is None:
            return
        if compiled.missing_refs or compiled.missing_sources:
            return   # reported by check_references
        if compiled.warehouse_calls:
            calls = ", ".join(compiled.warehouse_calls[:3])
            self.add_at(path, at(1, 0), "BLK104",
                     f"SQL not checked: uses warehouse calls ({calls}) whose result bulwark "
                     "cannot know", "info", node=uid)
            return
        sql = compiled.sql
        if not self.check_sql or not _has_sql(sql):
            return
        verdict = self.syntax_verdict(sql)
        if verdict is not None:
            line, col = compiled.source_position(verdict.offset)
            if verdict.certain:
                self.add_at(path, at(line, col), "BLK130",
                         f"SQL syntax error{branch}: {verdict.message}", node=uid,
                         hint=f"fix the SQL ({self.dialect} dialect)")
            else:
                self.add_at(path, at(line, col), "BLK131",
                         f"SQL not checked: the {self.dialect} parser used by bulwark cannot "
                         f"read it ({verdict.message})", "info", node=uid)
            return
        self.check_set_widths(node, compiled, at, branch)
        if self.check_columns and node.resource_type in ("model", "snapshot") and \
                (self.column_nodes is None or uid in self.column_nodes):
            self.check_node_columns(node, compiled, at, branch)

    def check_names(self, node: Node, compiled: Compiled, at: Any) -> bool:
        """Classify undefined names; True when the SQL cannot be trusted."""
        if not compiled.undefined:
            return False
        path, uid = node.repo_path, node.unique_id
        raw_calls = called_names(node.raw_code, self.cache)
        packages = self.project.packages
        missing_pkg_used: set[str] = set()
        builtins_used: list[str] = []
        for name in compiled.undefined:
            head = name.split(".", 1)[0]
            if "." in name:
                attr = name.split(".", 1)[1]
                if head == "dbt":
                    if attr in GLOBAL_MACROS:
                        builtins_used.append(name)
                        continue
                    self.unknown_macro(node, name, raw_calls, at,
                                       did_you_mean(attr, GLOBAL_MACROS, self.cache))
                    continue
                if head in packages and self.project.macros is not None:
                    names = self.project.macros.by_package.get(head, {})
                    self.unknown_macro(node, name, raw_calls, at, did_you_mean(attr, names, self.cache))
                    continue
            if head.replace("-", "_") in self.missing_packages:
                missing_pkg_used.add(head)
                continue
            if head in BUILTIN_NAMES:
                builtins_used.append(head)
                continue
            if head in packages:
                continue
            site = self.call_site(node, name, raw_calls)
            if site is None:
                continue   # used as a value, not called: dbt renders it empty too
            cands = set(self.project.macros.names()) if self.project.macros else set()
            if self.missing_packages:
                # a slip of one of the project's own macro names is a typo, packages or not
                own = self.project.macros.by_package.get(self.project.name, {}) \
                    if self.project.macros else {}
                close = close_match(name, own, self.cache)
                if close:
                    self.unknown_macro(node, name, raw_calls, at, f"did you mean '{close}'?")
                    continue
                missing_pkg_used.add(", ".join(self.missing_packages))
                continue
            self.unknown_macro(node, name, raw_calls, at,
                               did_you_mean(name, cands | set(GLOBAL_MACROS), self.cache))
        if missing_pkg_used:
            pkgs = ", ".join(sorted(missing_pkg_used))
            self.add_at(path, at(1, 0), "BLK103",
                     f"not checked: package {pkgs} not installed (run dbt deps)", "info",
                     node=uid)
        elif builtins_used:
            self.add_at(path, at(1, 0), "BLK104",
                     f"SQL not checked: uses dbt built-in(s) bulwark does not emulate "
                     f"({', '.join(sorted(set(builtins_used))[:3])})", "info", node=uid)
        return True

    def macro_calls(self) -> dict[str, dict[str, int]]:
        """repo path of each root-project macro file -> names it calls (with lines)."""
        if self._macro_calls is None:
            self._macro_calls = {}
            macros = self.project.macros
            if macros is not None:
                for m in macros.by_package.get(self.project.name, {}).values():
                    if m.path not in self._macro_calls:
                        self._macro_calls[m.path] = called_names(m.text, self.cache)
        return self._macro_calls

    def call_site(self, node: Node, name: str, raw_calls: dict[str, int]
                  ) -> tuple[str, int, int] | None:
        if name in raw_calls:
            line, col = find_call(node.raw_code, name.split(".")[-1])
            return node.repo_path, line, col
        for path, calls in sorted(self.macro_calls().items()):
            if name in calls:
                text = self.project.macros.by_package[self.project.name]  # type: ignore[union-attr]
                body = next((m.text for m in text.values() if m.path == path), "")
                line, col = find_call(body, name.split(".")[-1])
                return path, line, col
        return None

    def unknown_macro(self, node: Node, name: str, raw_calls: dict[str, int], at: Any,
                      hint: str) -> None:
        site = self.call_site(node, name, raw_calls)
        if site is None:
            return
        path, line, col = site
        if path == node.repo_path:
            line, col = at(line, col)
        elif (path, name) in self._reported_macro_sites:
            return
        self._reported_macro_sites.add((path, name))
        self.add(path, line, col, "BLK102",
                 f"unknown macro '{name}': not in the project, an installed package or dbt",
                 hint=hint or "define the macro, install its package, or fix the name",
                 node=node.unique_id)

    def syntax_verdict(self, sql: str) -> SyntaxVerdict | None:
        """:func:`sql_syntax_error`, cached by content (parsing 2,000 models takes seconds)."""
        key = ("fc-syntax", content_hash(sql), self.dialect, self.how)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            return cached[0]
        verdict = sql_syntax_error(sql, self.dialect, self.how)
        if self.cache is not None:
            self.cache.put(key, (verdict,))
        return verdict

    def check_set_widths(self, node: Node, compiled: Compiled, at: Any, branch: str) -> None:
        """UNION / INTERSECT / EXCEPT branches whose numbers of columns certainly differ
        (BLK132); a branch of unknown width (a star) is judged against the base instead
        (:func:`dbt_bulwark.checks.regression.set_width_regressions`)."""
        from dbt_bulwark.sql.columns import has_set_operation
        from dbt_bulwark.sql.sql_verdicts import set_width_mismatches

        sql = compiled.sql or ""
        if not has_set_operation(sql):
            return
        key = ("fc-set-widths", content_hash(sql), self.dialect, self.how)
        cached = self.cache.get(key) if self.cache is not None else None
        if isinstance(cached, list) and all(
                isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], int)
                and isinstance(c[1], str) for c in cached):
            found: list[tuple[int, str]] = cached
        else:
            found = set_width_mismatches(sql, self.dialect, self.how)
            if self.cache is not None:
                self.cache.put(key, found)
        for offset, message in found:
            line, col = compiled.source_position(offset)
            self.add_at(node.repo_path, at(line, col), "BLK132", message + branch,
                        node=node.unique_id,
                        hint="give every branch the same columns, in the same order")

    def check_node_columns(self, node: Node, compiled: Compiled, at: Any, branch: str) -> None:
        from dbt_bulwark.sql.columns import find_unknown_columns

        if not compiled.trusted:
            return
        upstream: dict[str, Any] = {}
        for ident, uid in compiled.relations.items():
            # None: a relation of unknown shape; the names that may be its columns are not
            # judged (an unqualified name beside it, `alias.name` of it), the others are
            upstream[ident] = self.resolver.relation_columns(uid)
        if all(cols is None for cols in upstream.values()):
            return
        sql = compiled.sql or ""
        key = ("fc-unknown-columns", content_hash(sql), self.dialect, self.how,
               content_hash(repr(sorted((k, None if v is None else sorted(v.items()))
                                        for k, v in upstream.items()))))
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            unknown = cached
        else:
            unknown = find_unknown_columns(sql, self.dialect, upstream)
            if unknown and self.how == "guess":
                # the dialect is a guess: keep only what every common dialect agrees on
                from dbt_bulwark.sql.sql_verdicts import GUESS_COLUMN_DIALECTS

                for other in GUESS_COLUMN_DIALECTS:
                    if not unknown:
                        break
                    if other == self.dialect:
                        continue
                    again = {(u.line, u.col, u.name) for u in
                             find_unknown_columns(sql, other, upstream)}
                    unknown = [u for u in unknown if (u.line, u.col, u.name) in again]
            if self.cache is not None:
                self.cache.put(key, unknown)
            if self.targets is None and any(
                    kid.startswith(("model.", "snapshot."))
                    for kid in self.project.children(node.unique_id)):
                # its children need its columns: infer them now, from the analysis just made
                # (nodes are checked parents first, so the in-memory analyses can be few)
                with contextlib.suppress(Exception):
                    self.resolver.schema(node.unique_id)
        for unk in unknown:
            offset = compiled.rendered_offset(unk.line, unk.col)
            line, col = compiled.source_position(offset)
            what = f"{unk.table}.{unk.name}" if unk.table else unk.name
            hint = f"did you mean '{unk.suggestion}'?" if unk.suggestion else \
                "check the upstream model's columns"
            self.add_at(node.repo_path, at(line, col), "BLK140",
                     f"column '{what}' is not provided by any relation this query "
                     f"reads{branch}", hint=hint, node=node.unique_id)


PARALLEL_MIN_NODES = 100     # fewer nodes to check: all in this process


def _parents_first(nodes: list[Node]) -> list[Node]:
    """``nodes`` reordered so that each comes after the nodes of the list it depends on
    (depth first from each node in the given order: a folder's models stay together).
    Only for a graph without ref cycles."""
    index = {n.unique_id: n for n in nodes}
    done: set[str] = set()
    out: list[Node] = []
    for start in nodes:
        if start.unique_id in done:
            continue
        done.add(start.unique_id)
        stack: list[tuple[Node, list[str]]] = [
            (start, sorted((d for d in start.depends_on if d in index), reverse=True))]
        while stack:
            node, todo = stack[-1]
            while todo and todo[-1] in done:
                todo.pop()
            if todo:
                nxt = index[todo.pop()]
                done.add(nxt.unique_id)
                stack.append((nxt, sorted((d for d in nxt.depends_on if d in index), reverse=True)))
                continue
            stack.pop()
            out.append(node)
    return out


def _resolver(project: Project, dialect: str, trust_sources: bool,
              max_depth: int | None = None) -> Any:
    """A SchemaResolver; declared source columns count only when trusted by policy
    (documentation often lists only part of a raw table's columns)."""
    from dbt_bulwark.sql.schema import SchemaResolver

    return SchemaResolver(project, dialect, sources="always" if trust_sources else "never",
                          max_depth=max_depth, types=False)   # names are all it checks


def _in_packages(path: str, project: Project) -> bool:
    for pkg in project.packages.values():
        if not pkg.is_root and pkg.root and (path == pkg.root or path.startswith(pkg.root + "/")):
            return True
    return False


def _has_sql(sql: str) -> bool:
    text = re.sub(r"--[^\n]*|/\*.*?\*/", "", sql, flags=re.S)
    return bool(text.strip().strip(";").strip())


def _sccs(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            succ = graph.get(v, [])
            if i < len(succ):
                work.append((v, i + 1))
                w = succ[i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def _cycle_path(graph: dict[str, list[str]], start: str, members: set[str]) -> list[str]:
    """start -> ... -> start inside one strongly connected component (BFS)."""
    from collections import deque

    prev: dict[str, str] = {}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        for w in sorted(graph.get(v, [])):
            if w not in members:
                continue
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [start, *reversed(path[:-1]), start] if v != start else [start, start]
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return [start, start]


def check(ctx: Any, project: Project, policy: Policy, targets: set[str] | None) -> list[Finding]:
    """The runner's hook function."""
    fc = FastCompile(ctx, project, policy, targets)
    findings = fc.run()
    if ctx is not None:
        ctx.notes.extend(fc.notes)
        if fc.how == "guess":
            _note_guessed_dialect(ctx, project.name)
    return findings


def _note_guessed_dialect(ctx: Any, name: str) -> None:
    """One note per run naming every project whose dialect is guessed (not one per project)."""
    names = ctx.state.setdefault("dialect_guessed", [])
    if name in names:
        return
    names.append(name)
    which = ", ".join(f"'{n}'" for n in names)
    note = (f"bulwark fast-compile: no profile or `dialect:` in bulwark.yml for project"
            f"{'s' if len(names) > 1 else ''} {which}; SQL is judged leniently against common "
            "dialects (set `dialect:` in bulwark.yml to be exact)")
    index = ctx.state.get("dialect_note_index")
    if index is not None and index < len(ctx.notes):
        ctx.notes[index] = note
    else:
        ctx.state["dialect_note_index"] = len(ctx.notes)
        ctx.notes.append(note)
