"""What a change does to each model's output schema, compared with a git base, and who it breaks.

The base revision is loaded with the ordinary loader over a :class:`~dbt_bulwark.project.gitfs.GitTree`
(its own dbt_project.yml, YAML and macros); the head is the working tree (the staged state
during a pre-commit run) or, at pre-push, the pushed revision. Only models whose inputs changed
(file checksum, schema-relevant config, contract columns, versions; every model when macros or
vars changed and its rendered SQL differs) have their output schemas resolved at both sides, with
:class:`~dbt_bulwark.sql.schema.SchemaResolver` (declared columns of an enforced contract, else the
columns inferred from the compiled SQL).

Classification follows dbt's contract rules (``same_contract``, dbt >= 1.11), extended to every
model: breaking = column removed / renamed / base type changed, enforcement turned off, enforced
constraint removed, materialization changed away from table/incremental while constraints exist,
model deleted / renamed / disabled while something refers to it, version removed. Additive =
column added, constraint added, contract turned on. Everything else is a logic change.

For every removed, renamed or retyped column the downstream uses are found by column-level
lineage (:func:`dbt_bulwark.sql.columns.column_uses`) on each child's compiled SQL, following
``select *`` passthrough to grandchildren, plus generic tests, exposures and unit tests.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dbt_bulwark.cache import content_hash
from dbt_bulwark.project.model import Node, Project
from dbt_bulwark.sql.schema import SchemaResolver

RELATION_TYPES = ("model", "seed", "snapshot")

# code -> (kind, short meaning); documented in docs/hooks/check-schema-diff.md
CODES: dict[str, tuple[str, str]] = {
    "BLK401": ("breaking", "column removed"),
    "BLK402": ("breaking", "column renamed"),
    "BLK403": ("breaking", "column type changed"),
    "BLK404": ("breaking", "contract enforcement turned off"),
    "BLK405": ("breaking", "enforced constraint removed"),
    "BLK406": ("breaking", "materialization changed away from table/incremental with constraints"),
    "BLK407": ("breaking", "model deleted or renamed"),
    "BLK408": ("breaking", "model disabled"),
    "BLK409": ("breaking", "model version removed"),
    "BLK410": ("impact", "downstream use of a removed, renamed or retyped column"),
    "BLK411": ("impact", "downstream reference to a removed model or version"),
    "BLK420": ("additive", "column added"),
    "BLK421": ("additive", "contract enforcement turned on"),
    "BLK422": ("additive", "constraint added"),
    "BLK423": ("additive", "new model or version"),
    "BLK430": ("none", "logic changed, output schema unchanged"),
    "BLK431": ("unknown", "output schema could not be determined"),
    "BLK432": ("impact", "downstream node not analysed for uses of a changed column"),
}
NOT_ANALYSED = "not-analysed"   # Use.kind of a child whose SQL could not be read

# dbt-adapters CONSTRAINT_SUPPORT: which constraint types the warehouse enforces
_ENFORCED_CONSTRAINTS: dict[str, frozenset[str]] = {
    "duckdb": frozenset({"check", "not_null", "unique", "primary_key", "foreign_key"}),
    "postgres": frozenset({"check", "not_null", "unique", "primary_key", "foreign_key"}),
    "snowflake": frozenset({"not_null"}),
    "bigquery": frozenset({"not_null"}),
    "redshift": frozenset({"not_null"}),
    "databricks": frozenset({"not_null", "check"}),
    "spark": frozenset({"not_null", "check"}),
}
_DEFAULT_ENFORCED = frozenset({"not_null", "foreign_key"})
_IGNORED_CONFIG = frozenset({"docs", "meta", "persist_docs", "grants", "description", "group",
                             "access", "pre-hook", "post-hook", "labels", "event_time"})


# ----------------------------------------------------------------------------- results


@dataclass
class Use:
    """One downstream place that uses a changed column or a removed model (or, with kind
    ``not-analysed``, that may: its SQL could not be read, so its uses are unknown)."""

    unique_id: str
    resource_type: str
    name: str
    path: str
    line: int
    col: int
    kind: str            # select | star | test | exposure | unit_test | ref
    certain: bool        # True: it fails for sure (a removed column selected by name)
    column: str = ""     # the column as this place sees it
    via: str = ""        # the relation it reads the column from
    reason: str = ""     # not-analysed: why its uses are unknown

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def label(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass
class Change:
    code: str
    message: str
    path: str
    line: int
    breaking: bool
    additive: bool = False
    column: str | None = None
    before: str | None = None
    after: str | None = None
    kind: str = ""                    # removed | renamed | retyped | added | model-level kinds
    uses: list[Use] = field(default_factory=list)
    severity: str = "info"

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "uses"}
        d["uses"] = [u.to_dict() for u in self.uses]
        return d


@dataclass
class ModelDiff:
    unique_id: str                    # head unique_id (base one when removed)
    name: str
    resource_type: str
    status: str                       # modified | added | removed | renamed | disabled | version_removed
    path: str
    base_unique_id: str | None = None
    version: Any = None
    classification: str = "none"      # breaking | additive | none | unknown
    changes: list[Change] = field(default_factory=list)
    before: dict[str, str | None] | None = None
    after: dict[str, str | None] | None = None
    protected: bool = False
    locked: bool = False
    exempt: str = ""                  # why protection does not apply (new version, deprecated)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "changes"}
        d["changes"] = [c.to_dict() for c in self.changes]
        return d


# ----------------------------------------------------------------------------- facts


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def _contract_columns(node: Node) -> list[tuple[str, str | None, Any]]:
    return [(c.name, c.data_type, _jsonable(c.constraints)) for c in node.columns]


def fingerprint(node: Node) -> str:
    """A hash of everything that can change ``node``'s output schema or its contract
    (:func:`_fingerprinted`)."""
    kind, checksum, conf, columns, constraints, version, latest, deprecation, seed = \
        _fingerprinted(node)
    parts = [kind, checksum, _jsonable(conf), columns,
             _jsonable(constraints) if constraints is not None else None,
             str(version), str(latest), deprecation, seed]
    return content_hash(json.dumps(parts, default=str, sort_keys=True))


def _fingerprinted(node: Node) -> tuple[Any, ...]:
    """What :func:`fingerprint` hashes: equal for two nodes, their fingerprints are equal
    (no JSON, no hash: most nodes of a commit's head and base compare so)."""
    contract = node.contract_enforced
    return (node.resource_type, node.checksum,
            {k: v for k, v in node.config.items() if k not in _IGNORED_CONFIG},
            _contract_columns(node) if contract else None,
            node.constraints if contract else None,
            node.version, node.latest_version, node.deprecation_date, node.seed_columns)


def _same_fingerprint(hn: Node, bn: Node, head: _Side, base: _Side) -> bool:
    """Do head node ``hn`` and base node ``bn`` (relations) have the same fingerprint?"""
    return _fingerprinted(hn) == _fingerprinted(bn) or \
        head.fp(hn.unique_id) == base.fp(bn.unique_id)


def _macro_signature(project: Project) -> str:
    parts: list[str] = []
    if project.macros is not None:
        for pkg in sorted(project.macros.by_package):
            for name, m in sorted(project.macros.by_package[pkg].items()):
                parts.append(f"{pkg}.{name}:{getattr(m, 'path', '')}:")
                parts.append(content_hash(str(getattr(m, "text", ""))))   # a file's: once
    parts.append(json.dumps(_jsonable(project.vars), sort_keys=True))
    return content_hash("".join(parts))


def _normalize_dbt_type(data_type: str | None) -> str | None:
    """dbt >= 1.11 ``_normalize_data_type_for_comparison``: lower-cased, cut at ``(``."""
    if not data_type:
        return data_type
    return data_type.partition("(")[0].strip().lower()


def _enforces(materialized: str) -> bool:
    return materialized in ("table", "incremental")


def _ctype(constraint: Any) -> str:
    return str(constraint.get("type", "")).lower() if isinstance(constraint, dict) else ""


def _past(date_text: str | None, today: _dt.date | None = None) -> bool:
    if not date_text:
        return False
    today = today or _dt.date.today()
    m = re.match(r"(\d{4})-(\d{2})-(\d{2})", str(date_text))
    if not m:
        return False
    try:
        return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))) < today
    except ValueError:
        return False


# ----------------------------------------------------------------------------- source lines


_WORD = r"(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"


def find_in_source(raw: str, rendered: str | None, line: int, col: int,
                   name: str) -> tuple[int, int]:
    """Map a position in rendered SQL back to the ``.sql`` file (best effort).

    When the rendered line still holds ``name`` at ``line`` of the source, that is it;
    otherwise the occurrence of ``name`` (as a word) in the source nearest to ``line``.
    """
    lines = raw.splitlines()
    pat = re.compile(_WORD.format(re.escape(name)), re.I) if name != "*" else re.compile(r"\*")
    if 0 < line <= len(lines):
        hits = [m.start() for m in pat.finditer(lines[line - 1])]
        if hits:
            best = min(hits, key=lambda h: abs(h + 1 - col))
            return line, best + 1
    found: list[tuple[int, int]] = []
    for i, text in enumerate(lines, 1):
        m = pat.search(text)
        if m:
            found.append((i, m.start() + 1))
    if found:
        return min(found, key=lambda p: abs(p[0] - line))
    return (min(max(line, 1), max(len(lines), 1)), 0)


def _in_source(compiled: Any, node: Node, line: int, col: int, name: str) -> tuple[int, int]:
    """The .sql (line, col) of a rendered position: the compiler's template map when the
    position is in literal SQL of the node's own file, else a search for ``name``."""
    if compiled.raw and node.raw_code and compiled.raw == node.raw_code and \
            node.resource_type != "snapshot":
        return compiled.source_position(compiled.rendered_offset(line, col))
    return find_in_source(node.raw_code, compiled.sql, line, col, name)


def _line_of_name(raw: str, name: str) -> int:
    for i, text in enumerate(raw.splitlines(), 1):
        if re.search(_WORD.format(re.escape(name)), text, re.I):
            return i
    return 1


# ----------------------------------------------------------------------------- engine


@dataclass
class _Side:
    project: Project
    resolver: Any
    _fps: dict[str, str | None] = field(default_factory=dict)

    def fp(self, uid: str) -> str | None:
        """The :func:`fingerprint` of relation ``uid`` (None: no such relation), once."""
        if uid not in self._fps:
            node = self.project.nodes.get(uid)
            self._fps[uid] = fingerprint(node) if node is not None and \
                node.resource_type in RELATION_TYPES else None
        return self._fps[uid]


class SchemaDiff:
    """Compare one project at ``base`` (None: did not exist) with ``head``."""

    def __init__(self, head: Project, base: Project | None, dialect: str,
                 protected: str | list[str] | None = None, locked_tag: str = "locked",
                 adapter: str | None = None, today: _dt.date | None = None,
                 cache: Any = None, dbt_version: str | None = None,
                 dialect_how: str = "guess"):
        from dbt_bulwark.project.dbt_rules import contract_base_types

        self.dialect = dialect
        # how the dialect was chosen (sql.schema.project_dialect): a guess is judged leniently
        self.dialect_how = dialect_how
        # dbt >= 1.11: contract types compare by base type; before: the exact type text
        self.contract_base_types = contract_base_types(head.project_yml, dbt_version)
        self.adapter = (adapter or head.adapter_type or "duckdb").lower()
        self.protected_sel = protected
        self.locked_tag = locked_tag
        self.today = today
        self.cache = cache
        # Jinja in a column's data_type is rendered as dbt does, on both sides alike: a
        # template compared with its own rendering is no type change
        from dbt_bulwark.project.loader import render_data_types

        render_as = adapter or head.adapter_type or dialect
        for side in (head, base):
            if side is not None:
                render_data_types(side, render_as)
        self.head = _Side(head, SchemaResolver(head, dialect))
        self.base = _Side(base, SchemaResolver(base, dialect)) if base is not None else None
        if self.base is not None:
            self._share_unchanged()
        self.diffs: list[ModelDiff] = []

    def _share_unchanged(self) -> None:
        """Base schemas of nodes unchanged with all their ancestors are the head's: reuse them."""
        assert self.base is not None
        head, base = self.head, self.base
        if _macro_signature(head.project) != _macro_signature(base.project):
            self.render_all = True
            return
        self.render_all = False
        clean: dict[str, bool] = {}

        def is_clean(uid: str, depth: int = 0) -> bool:
            if uid in clean:
                return clean[uid]
            clean[uid] = False  # cycle guard
            hn, bn = head.project.get(uid), base.project.get(uid)
            ok = hn is not None and bn is not None and depth < 200
            if ok and isinstance(hn, Node) and isinstance(bn, Node):
                ok = _same_fingerprint(hn, bn, head, base) and \
                    list(hn.depends_on) == list(bn.depends_on)
            elif ok:
                ok = _source_key(hn) == _source_key(bn)
            if ok:
                ok = all(is_clean(p, depth + 1) for p in base.project.parents(uid))
            clean[uid] = ok
            return ok

        head_resolver = head.resolver
        base_schema = base.resolver.schema

        def schema(uid: str) -> Any:
            if is_clean(uid):
                return head_resolver.schema(uid)
            return base_schema(uid)

        base.resolver.schema = schema
        self._is_clean = is_clean

    # -- matching
    def run(self) -> list[ModelDiff]:
        head = self.head.project
        base_nodes = {uid: n for uid, n in (self.base.project.nodes.items() if self.base else [])
                      if n.resource_type in RELATION_TYPES}
        head_nodes = {uid: n for uid, n in head.nodes.items() if n.resource_type in RELATION_TYPES}
        matched_head: set[str] = set()
        removed: list[Node] = []
        pairs: list[tuple[Node, Node]] = []
        for uid, bn in base_nodes.items():
            hn = head_nodes.get(uid)
            if hn is not None:
                pairs.append((bn, hn))
                matched_head.add(uid)
                continue
            if bn.resource_type == "model" and bn.version is None:
                latest = [n for n in head_nodes.values() if n.name == bn.name
                          and n.package_name == bn.package_name and n.version is not None
                          and str(n.version) == str(n.latest_version)]
                if latest:
                    pairs.append((bn, latest[0]))
                    matched_head.add(latest[0].unique_id)
                    continue
            removed.append(bn)
        new = [n for uid, n in head_nodes.items() if uid not in matched_head]
        for bn, hn in pairs:
            self._compare_pair(bn, hn)
        for bn in removed:
            self._removed(bn, new)
        for hn in new:
            if any(d.unique_id == hn.unique_id for d in self.diffs):
                continue
            if hn.package_name != head.name:
                continue
            what = "new version" if hn.version is not None else f"new {hn.resource_type}"
            diff = ModelDiff(hn.unique_id, hn.name, hn.resource_type, "added", hn.repo_path,
                             version=hn.version, classification="additive")
            diff.after = self._head_columns(hn)
            diff.changes.append(Change("BLK423", f"{what} '{hn.label}'", hn.repo_path, 1,
                                       False, True, kind="added"))
            self.diffs.append(diff)
        for diff in self.diffs:
            self._verdict(diff)
        self.diffs.sort(key=lambda d: (d.path, d.unique_id))
        return self.diffs

    def _head_columns(self, node: Node) -> dict[str, str | None] | None:
        # the resolver never raises: what it cannot infer is "unknown" (columns None)
        return self.head.resolver.schema(node.unique_id).columns

    # -- a model present at both sides
    def _compare_pair(self, bn: Node, hn: Node) -> None:
        assert self.base is not None
        same_fp = bn.unique_id == hn.unique_id and \
            _same_fingerprint(hn, bn, self.head, self.base)
        if same_fp and not getattr(self, "render_all", False):
            return
        if same_fp:
            bc = self.base.resolver.compiled(bn)
            hc = self.head.resolver.compiled(hn)
            if bc.sql == hc.sql:
                return
        if bn.package_name != self.head.project.name:
            return
        diff = ModelDiff(hn.unique_id, hn.name, hn.resource_type, "modified", hn.repo_path,
                         base_unique_id=bn.unique_id, version=hn.version)
        self._schema_changes(diff, bn, hn)
        self.diffs.append(diff)

    def _schema(self, side: _Side, node: Node) -> tuple[Any, dict[str, str]]:
        """(ModelSchema, {column: expression sql}) for ``node``."""
        ms = side.resolver.schema(node.unique_id)
        exprs: dict[str, str] = {}
        if node.resource_type in ("model", "snapshot"):
            with contextlib.suppress(Exception):  # (a contract: inferred for them too)
                exprs = side.resolver.expressions(node)
        return ms, exprs

    def _schema_changes(self, diff: ModelDiff, bn: Node, hn: Node) -> None:
        assert self.base is not None
        from dbt_bulwark.sql.columns import base_type

        head_yaml = hn.patch_path or hn.repo_path
        head_yaml_line = hn.patch_line if hn.patch_path else 1
        # contract-level changes (dbt's same_contract)
        if bn.contract_enforced and not hn.contract_enforced:
            path, line = hn.where("contract")
            diff.changes.append(Change("BLK404", f"contract enforcement of '{hn.label}' was "
                                       "turned off", path, line, True, kind="contract_off"))
        elif hn.contract_enforced and not bn.contract_enforced:
            path, line = hn.where("contract")
            diff.changes.append(Change("BLK421", f"contract enforcement of '{hn.label}' was "
                                       "turned on", path, line, False, True, kind="contract_on"))
        if bn.contract_enforced:
            self._constraint_changes(diff, bn, hn, head_yaml, head_yaml_line)
        elif hn.contract_enforced:
            pass
        bms, bexpr = self._schema(self.base, bn)
        hms, hexpr = self._schema(self.head, hn)
        before, after = bms.columns, hms.columns
        if (before is None or after is None) and _unrendered(bms, before) and \
                _unrendered(hms, after):
            # it cannot be rendered: its stand-in renders may still say which columns it has
            found = self._standin_schemas(bn, hn)
            if found is not None:
                before, after = found.before, found.after
                bexpr, hexpr = found.expressions_before, found.expressions_after
        diff.before, diff.after = before, after
        if before is None or after is None:
            which = "base" if before is None else "working tree"
            reason = (bms if before is None else hms).reason or "unknown"
            diff.note = f"output schema unknown at {which}: {reason}"
            if not any(c.breaking for c in diff.changes):
                diff.changes.append(Change("BLK431", f"cannot compare the output schema of "
                                           f"'{hn.label}': unknown at {which} ({reason})",
                                           hn.repo_path, 1, False, kind="unknown"))
            return
        contract_types = bms.source == "contract" and hms.source == "contract"
        bkeys = {k.lower(): k for k in before}
        hkeys = {k.lower(): k for k in after}
        removed = [bkeys[k] for k in bkeys if k not in hkeys]
        added = [hkeys[k] for k in hkeys if k not in bkeys]
        # renames: the same expression under a new name
        renamed: dict[str, str] = {}
        for old in list(removed):
            expr = bexpr.get(old.lower())
            if not expr:
                continue
            for new in added:
                if new not in renamed.values() and hexpr.get(new.lower()) == expr and \
                        not _is_literal(expr):
                    renamed[old] = new
                    break
        for old, new in renamed.items():
            removed.remove(old)
            added.remove(new)
            path, line = self._column_place(hn, hms.source, new)
            diff.changes.append(Change("BLK402", f"column '{old}' of '{hn.label}' was renamed "
                                       f"to '{new}'", path, line, True, column=old,
                                       before=before[old], after=after[new], kind="renamed"))
        for old in removed:
            path, line = (head_yaml, head_yaml_line) if hms.source == "contract" else \
                (hn.repo_path, 1)
            diff.changes.append(Change("BLK401", f"column '{old}' was removed from "
                                       f"'{hn.label}'", path, line, True, column=old,
                                       before=before[old], kind="removed"))
        for key, bname in bkeys.items():
            hname = hkeys.get(key)
            if hname is None:
                continue
            bt, ht = before[bname], after[hname]
            if not bt or not ht:
                continue
            if contract_types and not self.contract_base_types:
                changed = bt != ht
            elif contract_types:
                changed = _normalize_dbt_type(bt) != _normalize_dbt_type(ht)
            else:
                changed = bt != ht and base_type(bt, self.dialect) != base_type(ht, self.dialect)
            if changed:
                path, line = self._column_place(hn, hms.source, hname)
                diff.changes.append(Change("BLK403", f"column '{hname}' of '{hn.label}' "
                                           f"changed type from {bt} to {ht}", path, line, True,
                                           column=bname, before=bt, after=ht, kind="retyped"))
        for new in added:
            path, line = self._column_place(hn, hms.source, new)
            diff.changes.append(Change("BLK420", f"column '{new}' was added to '{hn.label}'",
                                       path, line, False, True, column=new, after=after[new],
                                       kind="added"))
        if not diff.changes:
            diff.changes.append(Change("BLK430", f"'{hn.label}' changed; its output schema "
                                       "did not", hn.repo_path, 1, False, kind="logic"))
        # downstream impact of every broken column
        for ch in diff.changes:
            if ch.kind in ("removed", "renamed", "retyped") and ch.column:
                ch.uses = self.column_impact(hn, before, ch.column, ch.kind)

    def _standin_schemas(self, bn: Node, hn: Node) -> Any:
        """The output columns of both revisions of a model that cannot be rendered, from
        its stand-in renders (:func:`dbt_bulwark.checks.standins.output_columns`), or None."""
        assert self.base is not None
        from dbt_bulwark.checks.standins import Parser, marked_render, output_columns

        if hn.resource_type != "model" or hn.language != "sql" or bn.language != "sql" or \
                hn.unique_id != bn.unique_id or not hn.raw_code or not bn.raw_code:
            return None
        try:
            head = marked_render(self.head.project, hn)
            base = marked_render(self.base.project, bn)
            if head is None or base is None or not head.marks:
                return None
            parser = Parser(self.dialect, self.dialect_how, self.cache)
            up_head = {i: self.head.resolver.relation_columns(u)
                       for i, u in head.relations.items()}
            up_base = {i: self.base.resolver.relation_columns(u)
                       for i, u in base.relations.items()}
            return output_columns(head, base, parser, up_head, up_base)
        except Exception:  # noqa: BLE001 - an extra opinion: "unknown" (BLK431) stands
            return None

    def _column_place(self, node: Node, source: str, column: str) -> tuple[str, int]:
        col = node.column(column)
        if source == "contract" and col is not None and node.patch_path:
            return node.patch_path, col.line or node.patch_line
        if node.resource_type == "seed":
            return node.repo_path, 1
        return node.repo_path, _line_of_name(node.raw_code, column)

    def _constraint_changes(self, diff: ModelDiff, bn: Node, hn: Node, path: str,
                            line: int) -> None:
        enforced = _ENFORCED_CONSTRAINTS.get(self.adapter, _DEFAULT_ENFORCED)
        old_enforces = _enforces(bn.materialized)
        col_constraints = False
        for bc in bn.columns:
            if bc.constraints:
                col_constraints = True
            hc = hn.column(bc.name)
            if hc is None or not old_enforces:
                continue
            for con in bc.constraints:
                if con not in hc.constraints and _ctype(con) in enforced:
                    diff.changes.append(Change(
                        "BLK405", f"enforced {_ctype(con)} constraint on column '{bc.name}' of "
                        f"'{hn.label}' was removed", hn.patch_path or path,
                        hc.line or line, True, column=bc.name, kind="constraint_removed"))
            for con in hc.constraints:
                if con not in bc.constraints:
                    diff.changes.append(Change(
                        "BLK422", f"{_ctype(con)} constraint added on column '{hc.name}' of "
                        f"'{hn.label}'", hn.patch_path or path, hc.line or line, False, True,
                        column=hc.name, kind="constraint_added"))
        if old_enforces:
            for con in bn.constraints:
                if con not in hn.constraints and _ctype(con) in enforced:
                    diff.changes.append(Change(
                        "BLK405", f"enforced model-level {_ctype(con)} constraint of "
                        f"'{hn.label}' was removed", path, line, True,
                        kind="constraint_removed"))
        for con in hn.constraints:
            if con not in bn.constraints:
                diff.changes.append(Change("BLK422", f"model-level {_ctype(con)} constraint "
                                           f"added to '{hn.label}'", path, line, False, True,
                                           kind="constraint_added"))
        if old_enforces and not _enforces(hn.materialized) and (bn.constraints or
                                                                 col_constraints):
            p, ln = hn.where("materialized")
            diff.changes.append(Change(
                "BLK406", f"'{hn.label}' changed materialization from {bn.materialized} to "
                f"{hn.materialized} while it has constraints (no longer enforced)", p, ln, True,
                before=bn.materialized, after=hn.materialized, kind="materialization"))

    # -- a model gone from the head
    def _removed(self, bn: Node, new: list[Node]) -> None:
        head = self.head.project
        if bn.package_name != head.name:
            return
        disabled = head.disabled.get(bn.unique_id)
        same_name = [n for n in head.nodes.values() if n.resource_type == bn.resource_type
                     and n.name == bn.name and n.package_name == bn.package_name]
        renamed_to = next((n for n in new if n.checksum == bn.checksum and
                           n.resource_type == bn.resource_type and n.name != bn.name), None)
        if disabled:
            status, code = "disabled", "BLK408"
            dn = disabled[0]
            path, line = dn.where("enabled")
            msg = f"'{bn.label}' was disabled"
        elif bn.version is not None and same_name:
            status, code = "version_removed", "BLK409"
            path = same_name[0].patch_path or same_name[0].repo_path
            line = same_name[0].patch_line if same_name[0].patch_path else 1
            msg = f"version {bn.version} of '{bn.name}' was removed"
        elif renamed_to is not None:
            status, code = "renamed", "BLK407"
            path, line = renamed_to.repo_path, 1
            msg = f"'{bn.label}' was renamed to '{renamed_to.label}'"
        else:
            status, code = "removed", "BLK407"
            path, line = bn.repo_path, 0
            msg = f"'{bn.label}' was deleted"
        diff = ModelDiff(bn.unique_id, bn.name, bn.resource_type, status, path,
                         base_unique_id=bn.unique_id, version=bn.version,
                         classification="breaking")
        assert self.base is not None
        diff.before = self.base.resolver.schema(bn.unique_id).columns
        uses = self.model_referrers(bn)
        change = Change(code, msg, path, line, True, kind=status, uses=uses)
        diff.changes.append(change)
        self.diffs.append(diff)

    # -- downstream impact
    def model_referrers(self, bn: Node) -> list[Use]:
        """Head resources whose ref()/exposure/unit test points at the removed ``bn``."""
        head = self.head.project
        out: list[Use] = []
        for uid, ref, _reason in head.unresolved:
            if isinstance(ref, tuple) or getattr(ref, "name", None) != bn.name:
                continue
            if ref.version is not None and (bn.version is None or
                                            str(ref.version) != str(bn.version)):
                continue
            res = head.get(uid)
            if res is None:
                for nodes in head.disabled.values():
                    res = next((n for n in nodes if n.unique_id == uid), None)
                    if res is not None:
                        break
                if res is None:
                    continue
            if isinstance(res, Node):
                line, col = find_in_source(res.raw_code, None, 1, 0, bn.name)
                out.append(Use(uid, res.resource_type, res.name, res.repo_path, line, col,
                               "ref", True))
            else:
                out.append(Use(uid, res.resource_type, res.name, res.repo_path,
                               getattr(res, "line", 1), 0, "ref", True))
        for ut in head.unit_tests:
            if ut.model == bn.name and ut.package_name == bn.package_name and \
                    head.model_by_name(bn.name) is None:
                out.append(Use(f"unit_test.{ut.package_name}.{ut.model}.{ut.name}", "unit_test",
                               ut.name, ut.repo_path, ut.line, 0, "unit_test", True))
        return _dedupe(out)

    def column_impact(self, parent: Node, parent_columns: dict[str, str | None] | None,
                      column: str, kind: str, depth: int = 0,
                      seen: set[tuple[str, str]] | None = None) -> list[Use]:
        """Every downstream use of ``parent.column`` (as the children were written)."""
        from dbt_bulwark.sql.columns import analysis_error, column_uses

        seen = seen if seen is not None else set()
        key = (parent.unique_id, column.lower())
        if key in seen or depth > 25:
            return []
        seen.add(key)
        head = self.head.project
        out: list[Use] = []
        out.extend(self._test_uses(parent, column, kind))
        certain = kind in ("removed", "renamed")
        for child_uid in sorted(head.children(parent.unique_id)):
            child = head.get(child_uid)
            if child is None:
                continue
            if not isinstance(child, Node):
                if child.resource_type == "exposure":
                    out.append(Use(child_uid, "exposure", child.name, child.repo_path,
                                   getattr(child, "line", 1), 0, "exposure", False,
                                   column, parent.name))
                continue
            if child.resource_type not in ("model", "snapshot", "test", "analysis"):
                continue
            compiled, upstream = self.head.resolver.upstream_for(child)
            if compiled.sql is None:
                # it does not render: its uses are unknown, and that is said (BLK432)
                why = compiled.error[1] if compiled.error else "it does not render"
                out.append(_not_analysed(child, parent, column, f"does not render: {why}"))
                continue
            idents = [i for i, u in compiled.relations.items() if u == parent.unique_id]
            if not idents:
                continue
            ups = dict(upstream)
            for ident in idents:
                ups[ident] = dict(parent_columns) if parent_columns is not None else None
            star_outputs: set[str] = set()
            explicit = False
            for ident in idents:
                uses = column_uses(compiled.sql, self.dialect, ups, ident, column)
                if not uses:
                    problem = analysis_error(compiled.sql, self.dialect, ups, column)
                    if problem and compiled.undefined and kind in ("removed", "renamed"):
                        # it calls what bulwark cannot render: its stand-in render may
                        # still name the column
                        found = self._standin_uses(child, parent, parent_columns, column)
                        if found:
                            out.extend(Use(child_uid, child.resource_type, child.name,
                                           child.repo_path, line, col, "select", certain,
                                           column, parent.name) for line, col in found)
                            explicit = True
                            continue
                    if problem:   # no use found because the SQL could not be read
                        out.append(_not_analysed(child, parent, column, problem))
                for u in uses:
                    if u.shadowed and kind in ("removed", "renamed"):
                        continue   # without the column the name is the select alias there
                    is_star = _char_at(compiled.sql, u.line, u.col) == "*"
                    if is_star:
                        star_outputs.update(o for o in u.output_columns
                                            if o.lower() == column.lower())
                        line, col = _in_source(compiled, child, u.line, u.col, "*")
                        if u.output_columns and child.resource_type in ("model", "snapshot"):
                            out.append(Use(child_uid, child.resource_type, child.name,
                                           child.repo_path, line, col, "star", False, column,
                                           parent.name))
                        continue
                    explicit = True
                    line, col = _in_source(compiled, child, u.line, u.col, column)
                    out.append(Use(child_uid, child.resource_type, child.name, child.repo_path,
                                   line, col, "select", certain, column, parent.name))
                    if kind == "retyped" and child.resource_type in ("model", "snapshot"):
                        star_outputs.update(o for o in u.output_columns
                                            if o.lower() == column.lower())
            if child.resource_type not in ("model", "snapshot"):
                continue
            if explicit and kind != "retyped":
                continue  # the child itself fails: its own children are blocked, not broken
            for out_col in sorted(star_outputs):
                child_before = self._base_columns_of(child)
                out.extend(self.column_impact(child, child_before, out_col, kind, depth + 1,
                                              seen))
        return _dedupe(out)

    def _standin_uses(self, child: Node, parent: Node,
                      parent_columns: dict[str, str | None] | None,
                      column: str) -> list[tuple[int, int]]:
        """(line, col) in ``child``'s file of each qualified reference (``alias.column``)
        to ``parent.column`` in its stand-in render, when that render parses and reads
        cleanly (:mod:`dbt_bulwark.checks.standins`); [] otherwise."""
        from dbt_bulwark.checks.standins import Parser, choose, marked_render
        from dbt_bulwark.sql.columns import analysis_error, column_uses
        from dbt_bulwark.sql.compiler import TemplateMap, line_col_to_offset

        if child.resource_type not in ("model", "snapshot") or child.language != "sql":
            return []
        memo: dict[str, Any] = self.__dict__.setdefault("_standin_fills", {})
        try:
            if child.unique_id not in memo:
                memo[child.unique_id] = None
                marked = marked_render(self.head.project, child)
                if marked is not None and marked.marks:
                    choice = choose(marked, Parser(self.dialect, self.dialect_how, self.cache))
                    if choice is not None:
                        memo[child.unique_id] = (marked, marked.fill(choice)[0])
            if memo[child.unique_id] is None:
                return []
            marked, sql = memo[child.unique_id]
            ups: dict[str, Any] = {}
            idents = []
            for ident, uid in marked.relations.items():
                if uid == parent.unique_id:
                    idents.append(ident)
                    ups[ident] = dict(parent_columns) if parent_columns is not None else None
                else:
                    ups[ident] = self.head.resolver.relation_columns(uid)
            if not idents or analysis_error(sql, self.dialect, ups, column):
                return []
            tmap = TemplateMap(child.raw_code, sql)
            found: list[tuple[int, int]] = []
            for ident in idents:
                for u in column_uses(sql, self.dialect, ups, ident, column):
                    if u.shadowed:
                        continue
                    offset = line_col_to_offset(sql, u.line, u.col)
                    if not _qualified_at(sql, offset, column):
                        continue    # an unqualified name could be a stand-in's column
                    found.append(tmap.position(offset))
            return sorted(set(found))
        except Exception:  # noqa: BLE001 - an extra opinion: "not analysed" (BLK432) stands
            return []

    def _base_columns_of(self, node: Node) -> dict[str, str | None] | None:
        if self.base is None or node.unique_id not in self.base.project.nodes:
            return None
        return self.base.resolver.schema(node.unique_id).columns

    def _test_uses(self, parent: Node, column: str, kind: str) -> list[Use]:
        """Generic tests on ``parent.column`` still declared, relationships tests pointing at it,
        and unit tests whose rows name it."""
        head = self.head.project
        out: list[Use] = []
        certain = kind in ("removed", "renamed")
        low = column.lower()
        if kind != "retyped":
            col = parent.column(column)
            if col is not None:
                for t in col.tests:
                    out.append(Use(f"test.{parent.package_name}.{t.short_name}_{parent.name}_"
                                   f"{column}", "test", t.short_name, t.repo_path, t.line, 0,
                                   "test", certain, column, parent.name))
            for t in parent.tests:
                if _mentions(t.kwargs, low):
                    out.append(Use(f"test.{parent.package_name}.{t.short_name}_{parent.name}",
                                   "test", t.short_name, t.repo_path, t.line, 0, "test",
                                   certain, column, parent.name))
        ref_pat = re.compile(r"ref\(\s*['\"]" + re.escape(parent.name) + r"['\"]")
        for res in list(head.nodes.values()) + list(head.sources.values()):
            for c in getattr(res, "columns", []) or []:
                for t in c.tests:
                    if t.short_name != "relationships":
                        continue
                    to = str(t.kwargs.get("to", ""))
                    fld = str(t.kwargs.get("field", "")).lower()
                    if fld == low and ref_pat.search(to):
                        out.append(Use(f"test.{res.package_name}.relationships_{res.name}_"
                                       f"{c.name}", "test", "relationships", t.repo_path,
                                       t.line, 0, "test", certain and kind != "retyped", column,
                                       parent.name))
        for ut in head.unit_tests:
            entry = _unit_test_entry(head, ut)
            if entry is None:
                continue
            from dbt_bulwark.project import yamlio

            if ut.model == parent.name:
                exp_rows = (entry.get("expect") or {}).get("rows") \
                    if isinstance(entry.get("expect"), dict) else None
                if _rows_mention(exp_rows, low):
                    out.append(Use(f"unit_test.{ut.package_name}.{ut.model}.{ut.name}",
                                   "unit_test", ut.name, ut.repo_path,
                                   yamlio.line_of(entry, "expect", ut.line), 0, "unit_test",
                                   certain, column, parent.name))
            for given in entry.get("given") or [] if isinstance(entry.get("given"), list) else []:
                if not isinstance(given, dict):
                    continue
                if ref_pat.search(str(given.get("input", ""))) and \
                        _rows_mention(given.get("rows"), low):
                    out.append(Use(f"unit_test.{ut.package_name}.{ut.model}.{ut.name}",
                                   "unit_test", ut.name, ut.repo_path,
                                   yamlio.line_of(given, None, ut.line), 0, "unit_test",
                                   certain, column, parent.name))
        return out

    # -- verdict
    def _verdict(self, diff: ModelDiff) -> None:
        head = self.head.project
        base = self.base.project if self.base else None
        hn = head.nodes.get(diff.unique_id)
        bn = base.nodes.get(diff.base_unique_id or "") if base and diff.base_unique_id else None
        diff.protected = bool((hn is not None and hn.unique_id in self._protected(head)) or
                              (bn is not None and base is not None
                               and bn.unique_id in self._protected(base)))
        diff.locked = any(n is not None and self.locked_tag in n.tags for n in (hn, bn))
        if bn is not None and _past(bn.deprecation_date, self.today):
            diff.exempt = f"deprecation_date {bn.deprecation_date} has passed"
        elif hn is not None and hn.version is not None and \
                (bn is None or bn.unique_id != hn.unique_id) and \
                any(n.name == hn.name and n.unique_id != hn.unique_id and n.version is not None
                    for n in head.models()):
            diff.exempt = "a new version was added and the old one kept"
        protected = diff.protected and not diff.exempt
        for c in diff.changes:
            if c.code in ("BLK407", "BLK408", "BLK409") and not c.uses and not protected \
                    and not diff.locked:
                c.breaking = False  # nothing refers to it: a clean-up, not a break
        if any(c.breaking for c in diff.changes):
            diff.classification = "breaking"
        elif any(c.additive for c in diff.changes):
            diff.classification = "additive"
        elif any(c.code == "BLK431" for c in diff.changes):
            diff.classification = "unknown"
        else:
            diff.classification = "none"
        for c in diff.changes:
            if c.breaking:
                hits = [u for u in c.uses if u.kind != "star"]  # a passthrough breaks nothing
                c.severity = "error" if (hits or diff.locked or protected) else "warning"
            elif c.additive and c.code == "BLK421" and diff.locked:
                # a contract that declares the output as it is changes nothing for consumers
                # (check-contracts asks for it on locked models): only what else changed counts
                others = [o for o in diff.changes if o.code not in ("BLK421", "BLK430", "BLK431")]
                known = diff.before is not None and diff.after is not None
                c.severity = "error" if others else ("info" if known else "warning")
            elif c.additive:
                c.severity = "error" if diff.locked and c.code != "BLK423" else "info"
            else:
                c.severity = "info"

    _prot_cache: dict[int, set[str]]

    def _protected(self, project: Project) -> set[str]:
        if not hasattr(self, "_prot_cache"):
            self._prot_cache = {}
        key = id(project)
        if key not in self._prot_cache:
            from dbt_bulwark.project.selector import select

            chosen: set[str] = set()
            if self.protected_sel:
                chosen = {r.unique_id for r in select(project, self.protected_sel)}
            chosen |= {n.unique_id for n in project.nodes.values()
                       if self.locked_tag in n.tags}
            self._prot_cache[key] = chosen
        return self._prot_cache[key]


# ----------------------------------------------------------------------------- helpers


def _unrendered(ms: Any, columns: Any) -> bool:
    """Known columns, or unknown only because the SQL calls what bulwark cannot render
    (a macro of a package not installed, a warehouse call)."""
    if columns is not None:
        return True
    compiled = ms.compiled
    return ms.source == "unknown" and compiled is not None and compiled.sql is not None \
        and compiled.error is None and bool(compiled.undefined) \
        and not compiled.missing_refs and not compiled.missing_sources


def _qualified_at(sql: str, offset: int, column: str) -> bool:
    """``column`` is written at ``offset`` as ``qualifier.column``."""
    word = re.match(r'"?([A-Za-z_][A-Za-z0-9_$]*)"?', sql[offset:])
    if word is None or word.group(1).lower() != column.lower():
        return False
    before = sql[:offset].rstrip()
    return before.endswith(".") and bool(re.search(r'[A-Za-z0-9_"`\]]\.$', before))


def _source_key(res: Any) -> Any:
    return [(c.name, c.data_type) for c in getattr(res, "columns", []) or []]


def _is_literal(expr: str) -> bool:
    return not re.search(r"[A-Za-z_][A-Za-z0-9_]*\.", expr) and \
        not re.search(r"^[A-Za-z_\"]", expr.strip())


def _char_at(sql: str, line: int, col: int) -> str:
    lines = sql.splitlines()
    if 0 < line <= len(lines) and 0 < col <= len(lines[line - 1]):
        return lines[line - 1][col - 1]
    return ""


def _mentions(kwargs: Any, low: str) -> bool:
    for key in ("column_name", "field", "combination_of_columns", "columns"):
        value = kwargs.get(key) if isinstance(kwargs, dict) else None
        if isinstance(value, str) and value.lower() == low:
            return True
        if isinstance(value, list) and any(str(v).lower() == low for v in value):
            return True
    return False


def _rows_mention(rows: Any, low: str) -> bool:
    if not isinstance(rows, list):
        return False
    return any(isinstance(r, dict) and any(str(k).lower() == low for k in r) for r in rows)


def _unit_test_entry(project: Project, ut: Any) -> dict[str, Any] | None:
    data = project.yaml_files.get(ut.repo_path)
    items = data.get("unit_tests") if isinstance(data, dict) else None
    for entry in items if isinstance(items, list) else []:
        if isinstance(entry, dict) and entry.get("name") == ut.name and \
                str(entry.get("model")) == ut.model:
            return entry
    return None


def _not_analysed(child: Node, parent: Node, column: str, reason: str) -> Use:
    """A downstream node whose uses of ``parent.column`` could not be read (BLK432)."""
    return Use(child.unique_id, child.resource_type, child.name, child.repo_path, 1, 0,
               NOT_ANALYSED, False, column, parent.name, reason)


def _dedupe(uses: Iterable[Use]) -> list[Use]:
    seen: dict[tuple[Any, ...], Use] = {}
    for u in uses:
        k = (u.unique_id, u.path, u.line, u.col, u.kind, u.column.lower())
        seen.setdefault(k, u)
    return sorted(seen.values(), key=lambda u: (u.path, u.line, u.col, u.unique_id))
