"""Output schemas of models, resolved through the ref graph without a warehouse.

:class:`SchemaResolver` answers "which columns (and types, where knowable) does
this relation have?" for seeds (CSV header + ``column_types``/declared types),
sources (declared columns, when complete), and models (the enforced contract's
declared columns; otherwise inferred from the compiled SQL with
:mod:`dbt_bulwark.columns`, recursively through upstream models). ``None`` means
"unknown": callers must then stay silent, never guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbt_bulwark.compiler import Compiled, compile_node
from dbt_bulwark.project import Node, Project, Source

Columns = dict[str, str | None]


@dataclass
class ModelSchema:
    unique_id: str
    columns: Columns | None                 # None: unknown
    source: str                             # "contract" | "sql" | "seed" | "source" | "unknown"
    reason: str | None = None               # why unknown / incomplete
    compiled: Compiled | None = None
    upstream: dict[str, Columns | None] = field(default_factory=dict)


class SchemaResolver:
    """Columns of relations; compile and inference results are cached by content."""

    def __init__(self, project: Project, dialect: str, trust_declared_sources: bool = False):
        self.project = project
        self.dialect = dialect
        self.trust_declared_sources = trust_declared_sources
        self._memo: dict[str, ModelSchema] = {}
        self._busy: set[str] = set()
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, node: Node) -> Compiled:
        hit = self._compiled.get(node.unique_id)
        if hit is None:
            cache = self.project.cache
            key = _compile_key(self.project, node) if cache is not None else None
            if key is not None and cache is not None:
                hit = cache.get(key)
            if hit is None:
                hit = compile_node(self.project, node)
                if key is not None and cache is not None and not hit.env_missing:
                    cache.put(key, hit)
            self._compiled[node.unique_id] = hit
        return hit

    # -- relations
    def relation_columns(self, unique_id: str) -> Columns | None:
        return self.schema(unique_id).columns

    def schema(self, unique_id: str) -> ModelSchema:
        if unique_id in self._memo:
            return self._memo[unique_id]
        if unique_id in self._busy:   # a ref cycle: unknown
            return ModelSchema(unique_id, None, "unknown", "ref cycle")
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
            if cols and (self.trust_declared_sources or all(c.data_type for c in cols)):
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

    def _infer_cached(self, sql: str, upstream: dict[str, Columns | None]) -> Any:
        from dbt_bulwark.columns import infer_output_columns

        cache = self.project.cache
        key = _infer_key(self.dialect, sql, upstream) if cache is not None else None
        if key is not None and cache is not None:
            hit = cache.get(key)
            if hit is not None:
                return hit
        out = infer_output_columns(sql, self.dialect, upstream)
        if key is not None and cache is not None:
            cache.put(key, out)
        return out

    def infer(self, node: Node) -> ModelSchema:
        """Columns the node's SQL produces (types where knowable)."""

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
        out = self._infer_cached(compiled.sql, upstream)
        if not out.complete:
            return ModelSchema(node.unique_id, None, "unknown", out.reason, compiled, upstream)
        return ModelSchema(node.unique_id, {c.name: c.data_type for c in out.columns}, "sql",
                           None, compiled, upstream)


def _infer_key(self_dialect: str, sql: str, upstream: dict[str, Columns | None]) -> tuple:
    import hashlib

    blob = repr((sql, sorted((k, sorted(v.items()) if v else v) for k, v in upstream.items())))
    return ("infer", self_dialect, hashlib.sha1(blob.encode("utf-8", "surrogatepass")).hexdigest())


def _compile_key(project: Project, node: Node) -> tuple | None:
    """Content key of a compile: the node's code, its resolved parents, macros and vars."""
    import hashlib

    if node.language != "sql" or "env_var" in node.raw_code:
        return None
    blob = repr((node.checksum, node.raw_code, node.package_name, tuple(node.depends_on),
                 project.macros_hash, sorted(project.vars.items(), key=lambda kv: str(kv[0])),
                 sorted((k, str(v)) for k, v in node.config.items()), project.adapter_type))
    return ("compile", hashlib.sha1(blob.encode("utf-8", "surrogatepass")).hexdigest())


def project_dialect(project: Project, policy_dialect: str | None = None) -> tuple[str, str]:
    """(sqlglot dialect, how it was chosen) for a project: policy, profile, else a guess."""
    from dbt_bulwark.columns import dialect_for_adapter

    if policy_dialect:
        return dialect_for_adapter(policy_dialect), "bulwark.yml"
    adapter = project.adapter_type or detect_adapter(project)
    if adapter:
        project.adapter_type = adapter
        return dialect_for_adapter(adapter), "profile"
    return dialect_for_adapter("duckdb"), "guess"


def detect_adapter(project: Project) -> str | None:
    """The adapter type of the project's profile target, from profiles.yml if readable."""
    import os
    from pathlib import Path

    from dbt_bulwark import yamlio

    profile = project.project_yml.get("profile")
    candidates = []
    if os.environ.get("DBT_PROFILES_DIR"):
        candidates.append(Path(os.environ["DBT_PROFILES_DIR"]) / "profiles.yml")
    candidates.append(Path(project.abs_root or project.root or ".") / "profiles.yml")
    candidates.append(Path.home() / ".dbt" / "profiles.yml")
    for path in candidates:
        try:
            data: Any = yamlio.load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yamlio.YamlError):
            continue
        if not isinstance(data, dict) or not isinstance(profile, str):
            continue
        prof = data.get(profile)
        if not isinstance(prof, dict):
            continue
        outputs = prof.get("outputs") or {}
        target = prof.get("target")
        out = outputs.get(target) if isinstance(outputs, dict) and isinstance(target, str) else None
        if out is None and isinstance(outputs, dict) and outputs:
            out = next(iter(outputs.values()))
        if isinstance(out, dict) and isinstance(out.get("type"), str):
            return out["type"]
    return None
