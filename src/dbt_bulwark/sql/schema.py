"""Output schemas of models, resolved through the ref graph without a warehouse.

:class:`SchemaResolver` answers "which columns (and types, where knowable) does
this relation have?" for seeds (CSV header + ``column_types``/declared types),
sources (declared columns, when complete), and models (the enforced contract's
declared columns; otherwise inferred from the compiled SQL with
:mod:`dbt_bulwark.sql.columns`, recursively through upstream models). ``None`` means
"unknown": callers must then stay silent, never guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbt_bulwark.project.model import Node, Project, Source
from dbt_bulwark.sql.compiler import Compiled, compile_cached

Columns = dict[str, str | None]


@dataclass
class ModelSchema:
    unique_id: str
    columns: Columns | None                 # None: unknown
    source: str                             # "contract" | "sql" | "seed" | "source" | "unknown"
    reason: str | None = None               # why unknown / incomplete
    compiled: Compiled | None = None
    upstream: dict[str, Columns | None] = field(default_factory=dict)
    # lower-cased column name -> the (qualified) SQL expression producing it (inferred only,
    # by SchemaResolver.expressions)
    expressions: dict[str, str] = field(default_factory=dict)


class SchemaResolver:
    """Columns of relations; compile and inference results are cached by content.

    ``sources``: when a source's declared columns count as its real columns —
    ``"typed"`` (every column has a data_type: a deliberate, complete declaration),
    ``"always"`` or ``"never"`` (documentation often lists only part of a raw table).
    ``max_depth``: relations further up the DAG than this are unknown (a pre-commit
    run need not infer the whole project to check what changed).
    ``types=False``: column names only (every type unknown), for checks that need no types.
    """

    def __init__(self, project: Project, dialect: str, trust_declared_sources: bool = False,
                 sources: str | None = None, max_depth: int | None = None,
                 types: bool = True):
        self.project = project
        self.dialect = dialect
        self.types = types           # False: column names only (types unknown), faster
        self.sources = sources or ("always" if trust_declared_sources else "typed")
        self.max_depth = max_depth
        self._memo: dict[str, ModelSchema] = {}
        self._busy: set[str] = set()
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, node: Node) -> Compiled:
        hit = self._compiled.get(node.unique_id)
        if hit is None:
            hit = self._compiled[node.unique_id] = compile_cached(self.project, node)
        return hit

    # -- relations
    def relation_columns(self, unique_id: str) -> Columns | None:
        return self.schema(unique_id).columns

    def schema(self, unique_id: str) -> ModelSchema:
        if unique_id in self._memo:
            return self._memo[unique_id]
        if unique_id in self._busy:   # a ref cycle: unknown
            return ModelSchema(unique_id, None, "unknown", "ref cycle")
        if self.max_depth is not None and len(self._busy) >= self.max_depth:
            return ModelSchema(unique_id, None, "unknown", "beyond the depth checked")
        self._busy.add(unique_id)
        try:
            result = self._schema(unique_id)
        finally:
            self._busy.discard(unique_id)
        self._memo[unique_id] = result
        return result

    def _schema(self, unique_id: str) -> ModelSchema:
        res = self.project.get(unique_id)
        if isinstance(res, Source):
            cols = res.columns
            trusted = self.sources == "always" or \
                self.sources == "typed" and all(c.data_type for c in cols)
            if cols and trusted:
                return ModelSchema(unique_id, {c.name: c.data_type for c in cols}, "source")
            return ModelSchema(unique_id, None, "unknown",
                               "source columns are not fully declared (with data_type)")
        if not isinstance(res, Node):
            return ModelSchema(unique_id, None, "unknown", "not a model")
        if res.resource_type == "seed":
            types = res.config.get("column_types") or {}
            declared = {c.name.lower(): c.data_type for c in res.columns}
            seed_cols: Columns = {name: (types.get(name) if isinstance(types, dict) else None)
                                  or declared.get(name.lower()) for name in res.seed_columns}
            return ModelSchema(unique_id, seed_cols or None, "seed")
        if res.resource_type not in ("model", "snapshot"):
            return ModelSchema(unique_id, None, "unknown", f"{res.resource_type}")
        if res.contract_enforced and res.columns:
            return ModelSchema(unique_id, {c.name: c.data_type for c in res.columns}, "contract")
        if res.language == "python":
            names = python_model_columns(res.raw_code)
            if names is None:
                return ModelSchema(unique_id, None, "unknown",
                                   "a Python model whose columns its code does not spell out")
            return ModelSchema(unique_id, dict.fromkeys(names), "python")
        inferred = self.infer(res)
        if res.resource_type == "snapshot" and inferred.columns is not None:
            snap_cols: Columns = dict(inferred.columns)
            for extra in ("dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to"):
                snap_cols.setdefault(extra, None)
            inferred.columns = snap_cols
        return inferred

    def upstream_for(self, node: Node) -> tuple[Compiled, dict[str, Columns | None]]:
        compiled = self.compiled(node)
        upstream: dict[str, Columns | None] = {}
        for ident, uid in compiled.relations.items():
            upstream[ident] = self.relation_columns(uid)
        return compiled, upstream

    def _infer_cached(self, sql: str, upstream: dict[str, Columns | None],
                      expressions: bool = False) -> Any:
        from dbt_bulwark.sql.columns import infer_output_columns

        cache = self.project.cache
        key = _infer_key(self.dialect, sql, upstream) + (self.types, expressions) \
            if cache is not None else None
        if key is not None and cache is not None:
            hit = cache.get(key)
            if hit is not None:
                return hit
        out = infer_output_columns(sql, self.dialect, upstream, self.types, expressions)
        if key is not None and cache is not None:
            cache.put(key, out)
        return out

    def infer(self, node: Node, expressions: bool = False) -> ModelSchema:
        """Columns the node's SQL produces (types where knowable); with ``expressions``, the
        SQL producing each too."""

        compiled, upstream = self.upstream_for(node)
        if compiled.sql is None:
            return ModelSchema(node.unique_id, None, "unknown",
                               compiled.error[1] if compiled.error else "not SQL", compiled,
                               upstream)
        if not compiled.trusted:
            what = ", ".join(compiled.undefined) or "unresolved refs"
            return ModelSchema(node.unique_id, None, "unknown",
                               f"the SQL uses something bulwark cannot render ({what})",
                               compiled, upstream)
        out = self._infer_cached(compiled.sql, upstream, expressions)
        exprs = {c.name.lower(): c.expression_sql for c in out.columns} if expressions else {}
        if not out.complete:
            return ModelSchema(node.unique_id, None, "unknown", out.reason, compiled, upstream,
                               exprs)
        return ModelSchema(node.unique_id, {c.name: c.data_type for c in out.columns}, "sql",
                           None, compiled, upstream, exprs)

    def expressions(self, node: Node) -> dict[str, str]:
        """Lower-cased output column name -> the SQL producing it, as inferred from the
        node's SQL (a contract's columns too); {} when that cannot be inferred."""
        return self.infer(node, expressions=True).expressions


def _infer_key(self_dialect: str, sql: str, upstream: dict[str, Columns | None]) -> tuple:
    from dbt_bulwark.cache import content_hash

    blob = repr((sql, sorted((k, sorted(v.items()) if v else v) for k, v in upstream.items())))
    return ("infer", self_dialect, content_hash(blob))


def project_dialect(project: Project, policy_dialect: str | None = None) -> tuple[str, str]:
    """(sqlglot dialect, how it was chosen) for a project: policy, profile, else a guess."""
    from dbt_bulwark.sql.columns import dialect_for_adapter

    if policy_dialect:
        return dialect_for_adapter(policy_dialect), "bulwark.yml"
    adapter = project.adapter_type or detect_adapter(project)
    if adapter:
        project.adapter_type = adapter
        return dialect_for_adapter(adapter), "profile"
    # still a guess (judged leniently), but a better one than DuckDB: the adapter of a
    # profiles.yml checked in below the project (e.g. `profile/`, passed by CI)
    return dialect_for_adapter(checked_in_adapter(project) or "duckdb"), "guess"


def detect_adapter(project: Project) -> str | None:
    """The adapter type of the project's profile target, from profiles.yml if readable."""
    from pathlib import Path

    from dbt_bulwark.project.profiles import project_adapter

    return project_adapter(project.project_yml.get("profile"),
                           Path(project.abs_root or project.root or "."))


def checked_in_adapter(project: Project) -> str | None:
    """The adapter type of the project's profile in a profiles.yml checked in below it."""
    from pathlib import Path

    from dbt_bulwark.project.profiles import checked_in_adapter as find

    if not project.abs_root:
        return None
    try:
        return find(project.project_yml.get("profile"), Path(project.abs_root))
    except Exception:  # noqa: BLE001 - an unreadable folder or profile is "no profile"
        return None


def python_model_columns(code: str) -> list[str] | None:
    """The columns of a Python model whose every ``return`` in ``def model`` is a pandas
    ``DataFrame(columns=[...])`` with the same literal names (directly, or through one
    variable of ``model`` assigned that list once); None for anything else."""
    import ast

    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    model = next((n for n in tree.body if isinstance(n, ast.FunctionDef)
                  and n.name == "model"), None)
    if model is None:
        return None
    lists: dict[str, list[str] | None] = {}

    def names_of(node: ast.AST) -> list[str] | None:
        if isinstance(node, ast.List) and node.elts and all(
                isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
            return [e.value for e in node.elts]   # type: ignore[attr-defined]
        if isinstance(node, ast.Name):
            return lists.get(node.id)
        return None

    returns: list[ast.Return] = []
    stack: list[ast.AST] = list(model.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue   # their returns are not the model's
        if isinstance(node, ast.Return):
            returns.append(node)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for name in ast.walk(t):
                    if isinstance(name, ast.Name):   # assigned more than once: not known
                        lists[name.id] = None if name.id in lists or \
                            not isinstance(node, ast.Assign) or len(targets) != 1 or \
                            not isinstance(t, ast.Name) else names_of(node.value)
        stack.extend(ast.iter_child_nodes(node))
    # a list read anywhere but in columns= could be changed on the way (c.append(...))
    reads: dict[str, int] = {}
    for node in ast.walk(model):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and \
                lists.get(node.id) is not None:
            reads[node.id] = reads.get(node.id, 0) + 1
    found: list[str] | None = None
    for ret in returns:
        call = ret.value
        if not (isinstance(call, ast.Call) and (
                isinstance(call.func, ast.Attribute) and call.func.attr == "DataFrame"
                or isinstance(call.func, ast.Name) and call.func.id == "DataFrame")):
            return None
        given = next((k.value for k in call.keywords if k.arg == "columns"), None)
        cols = names_of(given) if given is not None else None
        if isinstance(given, ast.Name) and given.id in reads:
            reads[given.id] -= 1
        if cols is None or len(set(cols)) != len(cols) or found not in (None, cols):
            return None
        found = cols
    return found if not any(reads.values()) else None
