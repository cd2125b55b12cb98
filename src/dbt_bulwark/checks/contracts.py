"""`check-contracts`: contract presence, completeness, and agreement with the SQL.

dbt checks a model contract only when it builds the model, against a warehouse
(``assert_columns_equivalent``: a ``where false limit 0`` preflight of the SQL
compared with ``cast(null as <data_type>) as <name>`` for every declared
column). This module finds the same failures at commit time, from files alone:

* presence -- models picked by ``contracts.select`` (``bulwark.yml``, dbt
  selector syntax) resolve to ``contract: {enforced: true}``, from any config
  source; a contract on a materialization dbt cannot enforce; an incremental
  contracted model whose ``on_schema_change`` is not ``append_new_columns``/``fail``;
* completeness -- every declared column has a ``data_type`` the dialect accepts;
  constraints valid for the materialization; a primary key when the policy asks;
* agreement -- the SQL's output columns (inferred by :class:`~dbt_bulwark.sql.schema.
  SchemaResolver`, i.e. sqlglot over the compiled SQL with upstream models,
  ephemeral models, seeds and sources resolved) against the declared ones:
  names compared the way the warehouse reports them (what dbt's preflight
  compares), types on their base type where the SQL's type is knowable.

Unknowable is never an error: when the columns cannot be inferred the model
gets one ``info`` finding saying why.

``plan_fix`` / :func:`apply_fixes` implement ``--fix``: enforce the contract and
add missing columns with inferred types through :class:`~dbt_bulwark.yaml_edit.
PropertiesEditor` (only additions; atomic writes).

Nothing here imports sqlglot or ruamel at module level.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbt_bulwark.findings import Finding
from dbt_bulwark.project.model import Column, Node, Project, versioned_name

if TYPE_CHECKING:  # pragma: no cover
    from dbt_bulwark.policy import Policy
    from dbt_bulwark.runner import HookContext
    from dbt_bulwark.sql.schema import ModelSchema, SchemaResolver

# code -> (severity, one-line meaning); docs/hooks/check-contracts.md documents each.
CODES: dict[str, tuple[str, str]] = {
    "BLK201": ("error", "model selected by contracts.select has no enforced contract"),
    "BLK202": ("error", "contract on a model dbt cannot enforce it for"),
    "BLK203": ("error", "incremental contracted model without on_schema_change append_new_columns/fail"),
    "BLK204": ("error", "contract enforced but no columns declared"),
    "BLK205": ("error", "contracted column without data_type"),
    "BLK206": ("error", "data_type the dialect does not accept"),
    "BLK207": ("warning", "constraint dbt will not apply (materialization, no contract)"),
    "BLK208": ("error", "invalid constraint (type, primary key declared twice)"),
    "BLK209": ("error", "primary key required but not declared"),
    "BLK210": ("error", "the SQL produces a column the contract does not declare"),
    "BLK211": ("error", "a declared column the SQL does not produce"),
    "BLK212": ("error", "declared data_type differs from the SQL's type"),
    "BLK213": ("info", "the SQL's columns cannot be inferred; agreement not checked"),
    "BLK214": ("error", "contracted model whose SQL is empty (dbt build fails)"),
    "BLK220": ("error", "--fix could not edit a properties file"),
    "BLK221": ("warning", "--fix cannot complete this contract; edit it by hand"),
    "BLK222": ("error", "--fix refused: a properties file that could describe the model "
                        "failed to load"),
}

CONSTRAINT_TYPES = ("check", "not_null", "unique", "primary_key", "foreign_key", "custom")
# materializations whose DDL applies constraints (dbt's materialization_enforces_constraints)
ENFORCING_MATERIALIZATIONS = ("table", "incremental")
UNSUPPORTED_MATERIALIZATIONS = ("ephemeral", "materialized_view")
GOOD_ON_SCHEMA_CHANGE = ("append_new_columns", "fail")


@dataclass
class FixPlan:
    """What ``--fix`` will add for one model."""

    project_root: str
    unique_id: str
    name: str
    version: Any
    properties_path: str                    # repo-relative; may not exist yet
    enforce: bool                           # add config.contract.enforced: true
    columns: list[dict[str, Any]] = field(default_factory=list)   # name + data_type


@dataclass
class _Ctx:
    project: Project
    policy: Any
    dialect: str
    resolver: SchemaResolver
    selected: set[str]
    fix: bool
    plans: list[FixPlan]
    guessed: bool = False          # no dialect in bulwark.yml and no profile found
    repo_root: Any = None          # where --fix writes (None: no fixing context)
    findings: list[Finding] = field(default_factory=list)

    def dialect_severity(self, types: bool = False) -> str:
        """Findings that depend on the dialect are warnings while it is only a guess; a
        type mismatch is info then (a type is unknowable without the dialect)."""
        if not self.guessed:
            return "error"
        return "info" if types else "warning"

    def dialect_note(self) -> str:
        return (f" [dialect guessed as {self.dialect}: set `dialect:` in bulwark.yml]"
                if self.guessed else "")

    def add(self, node: Node, path: str, line: int, code: str, message: str, hint: str = "",
            severity: str | None = None, **extra: Any) -> None:
        self.findings.append(Finding(path, line, 0, code, message,
                                     severity or CODES[code][0], hint, node.unique_id,
                                     dict(extra)))


# --------------------------------------------------------------------------- entry point


def check(ctx: HookContext | None, project: Project, policy: Policy,
          targets: set[str] | None) -> list[Finding]:
    """The hook's check for one project (see :func:`dbt_bulwark.runner.run_hook`)."""
    from dbt_bulwark.project.selector import select
    from dbt_bulwark.sql.schema import SchemaResolver, project_dialect

    dialect, how = project_dialect(project, policy.dialect)
    from dbt_bulwark.project.loader import render_data_types

    render_data_types(project, project.adapter_type or policy.dialect or None)
    selected = {r.unique_id for r in select(project, policy.contracts.select,
                                             resource_types=["model"])}
    fix = bool(ctx is not None and getattr(ctx.args, "fix", False))
    plans: list[FixPlan] = ctx.state.setdefault("contract_fixes", []) if ctx is not None else []
    c = _Ctx(project, policy, dialect, SchemaResolver(project, dialect), selected, fix, plans,
             guessed=how == "guess", repo_root=ctx.ws.repo_root if ctx is not None else None)
    for node in nodes_to_check(project, targets):
        try:
            check_node(c, node)
        except Exception as exc:  # noqa: BLE001 - one odd model never stops the hook
            from dbt_bulwark.cache import log_exception

            log = log_exception(exc, f"check-contracts: {node.unique_id}", c.repo_root)
            path, line = node.patch_path or node.repo_path, node.patch_line or 1
            c.add(node, path, line, "BLK213",
                  f"model '{node.name}': internal error while checking the contract "
                  f"({exc.__class__.__name__}: {exc}; traceback in {log}); not checked",
                  severity="info")
    return c.findings


def nodes_to_check(project: Project, targets: set[str] | None) -> list[Node]:
    """Models of the root package to check: all, or the targets plus every contracted model
    whose inferred upstream schema they can change (children reached through models whose
    schema is inferred, i.e. not stopped by another contract)."""
    own = [n for n in project.models(include_packages=False)]
    if targets is None:
        return sorted(own, key=lambda n: n.unique_id)
    wanted: set[str] = set()
    frontier = list(targets)
    seen: set[str] = set()
    while frontier:
        uid = frontier.pop()
        if uid in seen:
            continue
        seen.add(uid)
        res = project.nodes.get(uid)
        is_model = isinstance(res, Node) and res.resource_type == "model"
        if uid in targets:
            if is_model:
                wanted.add(uid)
        elif is_model and isinstance(res, Node) and res.contract_enforced:
            wanted.add(uid)
            continue  # its children see its contract, not its SQL
        for child in project.children(uid):
            child_res = project.nodes.get(child)
            if isinstance(child_res, Node) and child_res.resource_type == "model":
                frontier.append(child)
    return sorted((n for n in own if n.unique_id in wanted), key=lambda n: n.unique_id)


# --------------------------------------------------------------------------- one model


def check_node(c: _Ctx, node: Node) -> None:
    required = node.unique_id in c.selected
    if required and c.policy.contracts.require_primary_key:
        _check_primary_key(c, node)
    if not node.contract_enforced:
        _check_constraints_without_contract(c, node)
        if required:
            _missing_contract(c, node)
        return
    contract_path, contract_line = node.where("contract")
    if node.language != "sql":
        c.add(node, contract_path, contract_line, "BLK202",
              f"model '{node.name}' is a {node.language} model: dbt enforces contracts on SQL "
              "models only (dbt parse fails)",
              hint="remove the contract, or rewrite the model in SQL")
        return
    if node.materialized in UNSUPPORTED_MATERIALIZATIONS:
        c.add(node, contract_path, contract_line, "BLK202",
              f"model '{node.name}' is materialized as {node.materialized}: dbt cannot "
              "enforce a contract on it",
              hint="materialize it as table, view or incremental, or remove the contract")
        return
    if node.materialized == "incremental":
        osc = str(node.config.get("on_schema_change") or "ignore")
        if osc not in GOOD_ON_SCHEMA_CHANGE:
            path, line = node.where("on_schema_change") if "on_schema_change" in \
                node.config_origin else node.where("materialized")
            c.add(node, path, line, "BLK203",
                  f"incremental model '{node.name}' has an enforced contract but "
                  f"on_schema_change is '{osc}'",
                  hint="set on_schema_change to 'append_new_columns' or 'fail'")
    if _empty_sql(node.raw_code):
        c.add(node, node.repo_path, 1, "BLK214",
              f"model '{node.name}' enforces a contract but its SQL is empty (dbt build "
              "fails: the contract's preflight query has nothing to select from)",
              hint="write the model's select, or remove the contract")
        return
    if not node.columns:
        c.add(node, contract_path, contract_line, "BLK204",
              f"model '{node.name}' enforces a contract but declares no columns "
              "(dbt build fails: the 'columns' specification is missing)",
              hint="declare every column with name and data_type in the model's YAML"
                   + (" (bulwark check-contracts --fix can add them)" if not c.fix else ""))
        if c.fix:
            _plan_columns(c, node, enforce=False)
        return
    yaml_path = node.patch_path or node.repo_path
    untyped: list[Column] = []
    for col in node.columns:
        if not col.data_type or not str(col.data_type).strip():
            untyped.append(col)
            c.add(node, yaml_path, col.line or node.patch_line, "BLK205",
                  f"column '{col.name}' of contracted model '{node.name}' has no data_type "
                  "(dbt build fails)", hint="add `data_type:` to the column",
                  column=col.name)
        elif not _valid_type(col.data_type, c.dialect):
            c.add(node, yaml_path, col.line or node.patch_line, "BLK206",
                  f"column '{col.name}' of model '{node.name}': data_type '{col.data_type}' "
                  f"is not a {c.dialect} type{c.dialect_note()}",
                  hint="use a type the warehouse knows, e.g. " + _type_examples(c.dialect),
                  severity=c.dialect_severity(), column=col.name)
    _check_constraints(c, node)
    _check_agreement(c, node)


def _missing_contract(c: _Ctx, node: Node) -> None:
    path, line = node.where("contract")
    why = _why_selected(c, node)
    cannot = ""
    if node.language != "sql":
        cannot = f" (a {node.language} model cannot have one: exclude it from contracts.select)"
    elif node.materialized in UNSUPPORTED_MATERIALIZATIONS:
        cannot = (f" (as {node.materialized} it cannot have one: change its materialization "
                  "or exclude it from contracts.select)")
    hint = "add `config: {contract: {enforced: true}}` and every column with its data_type"
    # only the default selection's `access:public` picks it: dbt accepts a public model
    # without a contract, and the project never opted in, so this is advice, not a block,
    # and --fix (which fixes what blocks) leaves the model alone
    advice = (node.access == "public" and not c.policy.is_set("contracts.select")
              and not {"critical", c.policy.locked.tag} & set(node.tags))
    if not cannot and (not c.fix or advice):
        hint += " (bulwark check-contracts --fix does it when the SQL's types are knowable"
        hint += ", once contracts.select selects the model)" if advice else ")"
    if advice:
        hint += " (set contracts.select in bulwark.yml to make this an error)"
    c.add(node, path, line, "BLK201",
          f"model '{node.name}' {why} but has no enforced contract{cannot}", hint=hint,
          severity="info" if advice else None)
    if c.fix and not cannot and not advice:
        _plan_columns(c, node, enforce=True)


def _why_selected(c: _Ctx, node: Node) -> str:
    sel = c.policy.contracts.select
    reasons = []
    if "critical" in node.tags:
        reasons.append("is tagged critical")
    if "locked" in node.tags:
        reasons.append("is tagged locked")
    if node.access == "public":
        reasons.append("has access: public")
    if reasons and not c.policy.is_set("contracts.select"):
        return " and ".join(reasons)
    text = sel if isinstance(sel, str) else " ".join(map(str, sel))
    return f"is selected by contracts.select ({text})"


def _valid_type(data_type: str, dialect: str) -> bool:
    from dbt_bulwark.sql.columns import is_valid_type

    return is_valid_type(str(data_type), dialect)


def _type_examples(dialect: str) -> str:
    return {
        "snowflake": "number, varchar, timestamp_ntz",
        "bigquery": "int64, string, timestamp",
        "databricks": "bigint, string, timestamp",
        "spark": "bigint, string, timestamp",
    }.get(dialect, "integer, bigint, varchar, timestamp")


# --------------------------------------------------------------------------- constraints


def _constraint_list(node: Node) -> list[tuple[Column | None, dict[str, Any]]]:
    out: list[tuple[Column | None, dict[str, Any]]] = []
    for col in node.columns:
        out.extend((col, con) for con in col.constraints)
    out.extend((None, con) for con in node.constraints if isinstance(con, dict))
    return out


def _check_constraints_without_contract(c: _Ctx, node: Node) -> None:
    cons = _constraint_list(node)
    if not cons:
        return
    col, _ = cons[0]
    path = node.patch_path or node.repo_path
    line = (col.line if col is not None else 0) or node.patch_line
    c.add(node, path, line, "BLK207",
          f"model '{node.name}' declares constraints but does not enforce a contract: dbt "
          "ignores them", hint="enforce the contract, or turn the constraints into data tests")


def _check_constraints(c: _Ctx, node: Node) -> None:
    path = node.patch_path or node.repo_path
    cons = _constraint_list(node)
    if not cons:
        return
    for col, con in cons:
        ctype = con.get("type")
        line = (col.line if col is not None else 0) or node.patch_line
        if ctype not in CONSTRAINT_TYPES:
            c.add(node, path, line, "BLK208",
                  f"model '{node.name}': constraint type {ctype!r} is not one of "
                  f"{', '.join(CONSTRAINT_TYPES)} (dbt parse fails)",
                  hint="fix the constraint's `type:`")
    pk_cols = [col for col, con in cons if col is not None and con.get("type") == "primary_key"]
    model_pk = any(col is None and con.get("type") == "primary_key" for col, con in cons)
    if len(pk_cols) > 1:
        c.add(node, path, pk_cols[1].line or node.patch_line, "BLK208",
              f"model '{node.name}': {len(pk_cols)} columns have a primary_key constraint "
              f"({', '.join(col.name for col in pk_cols)}); dbt parse fails",
              hint="declare a multi-column primary key as a model-level constraint "
                   "with `columns: [...]`")
    if pk_cols and model_pk:
        c.add(node, path, pk_cols[0].line or node.patch_line, "BLK208",
              f"model '{node.name}': primary key declared at the model and at the column "
              "level; dbt parse fails", hint="keep one of the two")
    if node.materialized not in ENFORCING_MATERIALIZATIONS:
        warned = [(col, con) for col, con in cons if con.get("warn_unsupported", True)]
        if warned:
            col, _ = warned[0]
            line = (col.line if col is not None else 0) or node.patch_line
            c.add(node, path, line, "BLK207",
                  f"model '{node.name}' is materialized as {node.materialized}: dbt does not "
                  "apply its constraints (only table and incremental models get them)",
                  hint="materialize it as a table, or test these properties with data tests")


def _check_primary_key(c: _Ctx, node: Node) -> None:
    if has_primary_key(node):
        return
    c.add(node, node.patch_path or node.repo_path, node.patch_line or 1, "BLK209",
          f"model '{node.name}' must declare its primary key (contracts.require_primary_key)",
          hint="add a primary_key constraint, or unique + not_null tests on the key column")


_NO_OUTPUT = re.compile(r"{#.*?#}|{%.*?%}|{{-?\s*config\s*\((?:[^{}]|{[^{}]*})*\)\s*-?}}|"
                        r"--[^\n]*|/\*.*?\*/", re.S)


def _empty_sql(raw: str) -> bool:
    """Nothing but whitespace, comments, tags and ``config()`` calls: no statement at all."""
    return not _NO_OUTPUT.sub("", raw or "").strip().strip(";").strip()


def has_primary_key(node: Node) -> bool:
    """A primary_key constraint, or a column both unique and not null (tests or constraints),
    or a model-level unique-combination test."""
    for _col, con in _constraint_list(node):
        if con.get("type") == "primary_key":
            return True
    for col in node.columns:
        kinds = {con.get("type") for con in col.constraints}
        kinds |= {t.short_name for t in col.tests}
        if "unique" in kinds and "not_null" in kinds:
            return True
    for test in node.tests:
        if test.short_name in ("unique_combination_of_columns", "expect_compound_columns_to_be_unique"):
            return True
    return False


# --------------------------------------------------------------------------- agreement


def _check_agreement(c: _Ctx, node: Node) -> None:
    from dbt_bulwark.sql.columns import display_name

    check_columns = c.policy.contracts.check_columns
    check_types = c.policy.contracts.check_types
    if not (check_columns or check_types):
        return
    inferred = c.resolver.infer(node)
    yaml_path = node.patch_path or node.repo_path
    if inferred.columns is None:
        c.add(node, yaml_path, node.patch_line or 1, "BLK213",
              f"model '{node.name}': cannot infer the SQL's columns ({_reason(inferred)}); "
              "the contract is checked by dbt at build time only",
              hint="nothing to do; bulwark stays silent rather than guess")
        return
    sql_cols = {display_name(n, c.dialect): (n, t) for n, t in inferred.columns.items()}
    declared: dict[str, Column] = {}
    for col in node.columns:
        declared.setdefault(display_name(col.name, c.dialect, bool(col.quote)), col)
    if check_columns:
        for key, col in declared.items():
            if key not in sql_cols:
                near = _near(key, sql_cols)
                extra = f" (the SQL has '{near}': names differ in case){c.dialect_note()}" \
                    if near else ""
                c.add(node, yaml_path, col.line or node.patch_line, "BLK211",
                      f"column '{col.name}' is declared in the contract of '{node.name}' but "
                      f"the SQL does not produce it{extra}",
                      hint="remove it from the YAML, or add it to the model's select"
                           if not near else f"spell it '{near}' in the YAML, or alias it in the SQL",
                      severity=c.dialect_severity() if near else None, column=col.name)
        missing = [(key, name) for key, (name, _t) in sql_cols.items() if key not in declared]
        for _key, name in missing:
            dtype = sql_cols[_key][1]
            typed = f" (type {show_type(dtype, c.dialect)})" if dtype else ""
            near = _near(_key, declared)
            case = f" (declared as '{near}': names differ in case){c.dialect_note()}" \
                if near else ""
            c.add(node, yaml_path, node.patch_line or 1, "BLK210",
                  f"the SQL of '{node.name}' produces column '{name}'{typed} that the contract "
                  f"does not declare{case}", severity=c.dialect_severity() if near else None,
                  hint="declare it in the YAML with its data_type"
                       + (" (bulwark check-contracts --fix does it)" if dtype and not c.fix else ""),
                  column=name)
        if c.fix and missing:
            _plan_columns(c, node, enforce=False, inferred=inferred)
    if check_types:
        from dbt_bulwark.sql.columns import types_compatible

        # DuckDB (known, not guessed): dbt-duckdb compares DuckDB's own type strings,
        # precision and scale included; elsewhere dbt compares base types
        precise = _duckdb_output_types(c, inferred) if c.dialect == "duckdb" \
            and not c.guessed else None
        for key, col in declared.items():
            if key not in sql_cols or not col.data_type:
                continue
            if precise is not None and key in precise and _valid_type(col.data_type, c.dialect):
                want = duckdb_type_of(col.data_type)
                got = precise[key]
                if want and got and want != got:
                    why = f" (DuckDB: {want} vs {got}; dbt-duckdb compares precision and " \
                        "scale)" if want.split("(")[0] == got.split("(")[0] else ""
                    c.add(node, yaml_path, col.line or node.patch_line, "BLK212",
                          f"column '{col.name}' of '{node.name}' is declared {col.data_type} "
                          f"but the SQL produces {got.lower()}{why}",
                          hint=f"change data_type to {got.lower()}, or cast the column in the "
                               f"SQL to {col.data_type}", column=col.name)
                if want and got:
                    continue
            sql_type = sql_cols[key][1]
            if not sql_type or not _valid_type(col.data_type, c.dialect):
                continue
            if not types_compatible(col.data_type, sql_type, c.dialect):
                shown = show_type(sql_type, c.dialect)
                c.add(node, yaml_path, col.line or node.patch_line, "BLK212",
                      f"column '{col.name}' of '{node.name}' is declared {col.data_type} but "
                      f"the SQL produces {shown}{c.dialect_note()}", severity=c.dialect_severity(types=True),
                      hint=f"change data_type to {shown}, or cast the column in the "
                           f"SQL to {col.data_type}", column=col.name)


_DUCK: dict[str, Any] = {}
_AUTHORITATIVE = ("contract", "source", "seed")


def _duck_con() -> Any:
    """An in-memory DuckDB that can read no file and reach no network (types only)."""
    if "con" not in _DUCK:
        try:
            import duckdb
        except ImportError:   # no DuckDB: the base-type comparison applies
            _DUCK["con"] = None
            return None
        _DUCK["con"] = duckdb.connect(":memory:", config={
            "enable_external_access": False, "autoinstall_known_extensions": False,
            "autoload_known_extensions": False})
    return _DUCK["con"]


def _describe(sql: str) -> list[tuple[str, str]] | None:
    """DuckDB's output columns and types of ``sql`` (memoized per text: a ``--fix`` checks
    every model again after writing)."""
    if sql in _DESCRIBED:
        return _DESCRIBED[sql]
    con = _duck_con()
    if con is None:
        return None
    import duckdb

    try:
        # a relation is bound, not run: its columns and types are DESCRIBE's, for less
        rel = con.sql(sql)
        rows: list[tuple[str, str]] | None = [
            (str(n), str(t)) for n, t in zip(rel.columns, rel.types, strict=True)]
    except duckdb.Error:   # DuckDB cannot bind it: not judged here
        rows = None
    _DESCRIBED[sql] = rows
    return rows


_DESCRIBED: dict[str, list[tuple[str, str]] | None] = {}


def duckdb_type_of(data_type: str) -> str | None:
    """DuckDB's name for a declared type (``numeric(38,3)`` -> ``DECIMAL(38,3)``); asked of
    DuckDB once per type text (a project declares a handful of types many times)."""
    if data_type not in _DUCK_TYPES:
        rows = _describe(f"select cast(null as {data_type}) as c")
        _DUCK_TYPES[data_type] = rows[0][1] if rows else None
    return _DUCK_TYPES[data_type]


_DUCK_TYPES: dict[str, str | None] = {}


def _duckdb_output_types(c: _Ctx, inferred: Any) -> dict[str, str] | None:
    """The SQL's output column types as DuckDB itself types them (display name -> type),
    when every relation it reads has an authoritative schema (a contract, typed source
    or seed column types): those are stood in for by empty typed views. None otherwise
    (then the base-type comparison applies)."""
    from dbt_bulwark.sql.columns import display_name

    compiled = getattr(inferred, "compiled", None)
    if compiled is None or not compiled.sql or not compiled.trusted:
        return None
    views: list[str] = []
    for ident, uid in compiled.relations.items():
        schema = c.resolver.schema(uid)
        if schema.source not in _AUTHORITATIVE or not schema.columns or \
                any(not t for t in schema.columns.values()):
            return None
        cols = ", ".join(f'cast(null as {t}) as "{n}"' for n, t in schema.columns.items())
        views.append(f'"{ident}" as (select {cols} where false)')
    body = compiled.sql.strip().rstrip(";")
    sql = (f"with {', '.join(views)} select * from ({body})" if views else
           f"select * from ({body})")
    rows = _describe(sql)
    if rows is None:
        return None
    return {display_name(n, c.dialect): t for n, t in rows}


def _near(key: str, names: dict[str, Any]) -> str | None:
    """The entry of ``names`` equal to ``key`` but for case."""
    low = key.lower()
    for other, value in names.items():
        if other.lower() == low and other != key:
            return str(value[0]) if isinstance(value, tuple) else other
    return None


def _reason(schema: ModelSchema) -> str:
    reason = schema.reason or "unknown"
    compiled = schema.compiled
    if compiled is not None and compiled.error:
        reason = f"the model does not render: {compiled.error[1]}"
    return reason.rstrip(".")


# --------------------------------------------------------------------------- --fix planning


def _plan_columns(c: _Ctx, node: Node, enforce: bool,
                  inferred: ModelSchema | None = None) -> None:
    """Record what --fix adds for ``node``; a finding (BLK221) when it cannot complete it."""
    from dbt_bulwark.sql.columns import display_name

    if node.version is not None and not node.patch_path:
        return
    if any(p.unique_id == node.unique_id for p in c.plans):
        return
    if enforce and "contract" in node.calls:
        c.add(node, *node.where("contract"), "BLK221",
              f"--fix: the contract of '{node.name}' is set in its SQL config() call, which "
              "wins over YAML; not changed", hint="set contract enforced in the SQL config()")
        return
    path = node.patch_path or node.repo_path
    line = node.patch_line or 1
    if c.repo_root is not None and _blocked(c, node):
        return
    if c.guessed:
        c.add(node, path, line, "BLK221",
              f"--fix does not write types for '{node.name}': the warehouse dialect is unknown "
              f"(guessed {c.dialect})", hint="set `dialect:` in bulwark.yml, or make the "
              "profile readable (DBT_PROFILES_DIR / ~/.dbt/profiles.yml)")
        return
    inferred = inferred or c.resolver.infer(node)
    if inferred.columns is None:
        c.add(node, path, line, "BLK221",
              f"--fix cannot write the contract of '{node.name}': its columns cannot be "
              f"inferred ({_reason(inferred)})", hint="declare the columns and types by hand")
        return
    sql_cols = {display_name(n, c.dialect): (n, t) for n, t in inferred.columns.items()}
    declared = {display_name(col.name, c.dialect, bool(col.quote)): col for col in node.columns}
    add: list[dict[str, Any]] = []
    unknown: list[str] = []
    exprs = c.resolver.expressions(node)   # what each column is: a cast says its type
    for key, (name, dtype) in sql_cols.items():
        col = declared.get(key)
        if col is not None and col.data_type:
            continue
        written = certain_type(dtype, exprs.get(str(name).lower()), c.dialect) if dtype else None
        if not written:
            unknown.append(name)
            continue
        add.append({"name": name, "data_type": written})
    if enforce:
        stray = [col.name for key, col in declared.items() if key not in sql_cols]
        mismatched = []
        if c.policy.contracts.check_types:
            from dbt_bulwark.sql.columns import types_compatible

            mismatched = [col.name for key, col in declared.items()
                          if key in sql_cols and col.data_type
                          and not types_compatible(col.data_type, sql_cols[key][1], c.dialect)]
        if unknown or stray or mismatched:
            why = []
            if unknown:
                why.append(f"the type of {_names(unknown)} is not certain from the SQL "
                           f"for {c.dialect} (see docs/hooks/check-contracts.md)")
            if stray:
                why.append(f"{_names(stray)} declared but not produced by the SQL")
            if mismatched:
                why.append(f"{_names(mismatched)} declared with another type than the SQL's")
            c.add(node, path, line, "BLK221",
                  f"--fix does not enforce the contract of '{node.name}': {'; '.join(why)}",
                  hint="declare these columns (with data_type) by hand, then enforce the contract")
            return
    elif unknown:
        c.add(node, path, line, "BLK221",
              f"--fix cannot add {_names(unknown)} to the contract of '{node.name}': the type "
              f"is not certain from the SQL for {c.dialect}",
              hint="add them with their data_type by hand")
    if not add and not enforce:
        return
    target = node.patch_path or default_properties_path(c.project, node)
    c.plans.append(FixPlan(c.project.root, node.unique_id, node.name, node.version, target,
                           enforce, add))


def _blocked(c: _Ctx, node: Node) -> bool:
    """A BLK222 (and True) when a properties file that could describe ``node`` failed to
    load: an entry written now would describe it twice once that file is repaired."""
    from dbt_bulwark.yaml_edit import unloaded_properties

    found = unloaded_properties(c.project, c.repo_root, node.name)
    if found is None:
        return False
    bad, bad_line, why = found
    c.add(node, bad, bad_line, "BLK222",
          f"--fix does not touch '{node.name}': {bad} {why} and may describe it; an entry "
          "written now would describe it twice (dbt parse fails) once that file is repaired",
          hint=f"repair {bad} first, then run --fix again")
    return True


def plan_contracts(project: Project, policy: Policy, nodes: Iterable[Node],
                   repo_root: Any) -> tuple[list[FixPlan], list[Finding]]:
    """What ``--fix`` would write to enforce a contract on each of ``nodes`` (whether or
    not ``contracts.select`` picks them), and a BLK221/BLK222 for each it cannot.
    Used by ``critical suggest --write --with-protections``."""
    from dbt_bulwark.sql.schema import SchemaResolver, project_dialect

    dialect, how = project_dialect(project, policy.dialect)
    todo = [n for n in nodes if not n.contract_enforced]
    c = _Ctx(project, policy, dialect, SchemaResolver(project, dialect),
             {n.unique_id for n in todo}, True, [], guessed=how == "guess", repo_root=repo_root)
    for node in todo:
        path, line = node.where("contract")
        if node.language != "sql" or node.materialized in UNSUPPORTED_MATERIALIZATIONS:
            what = node.language if node.language != "sql" else node.materialized
            c.add(node, path, line, "BLK221",
                  f"--fix cannot give '{node.name}' a contract: dbt does not enforce one on a "
                  f"{what} model", hint="exclude it from critical.require.contract, or "
                  "change how it is built")
            continue
        try:
            _plan_columns(c, node, enforce=True)
        except Exception as exc:  # noqa: BLE001 - one odd model never stops the others
            c.add(node, path, line, "BLK221",
                  f"--fix cannot write the contract of '{node.name}' ({exc.__class__.__name__})",
                  hint="declare the columns and types by hand")
    return c.plans, c.findings


def _names(names: Iterable[str]) -> str:
    items = [f"'{n}'" for n in names]
    return ("column " if len(items) == 1 else "columns ") + ", ".join(items)


def show_type(dtype: str, dialect: str) -> str:
    """A type as sqlglot renders it, spelled the way users of the dialect write it."""
    text = dtype.strip().lower()
    if text == "text":
        return "string" if dialect in ("bigquery", "spark", "databricks", "hive") else "varchar"
    return text


def _yaml_type(dtype: str, dialect: str) -> str:
    return show_type(dtype, dialect)


# Dialects whose warehouse the type oracle runs (tests/test_fix_types_oracle.py: --fix,
# then real `dbt build` checks every contract): there, sqlglot's type is written unless
# a rule below says the warehouse decides. Elsewhere only an explicit cast is certain.
ORACLE_DIALECTS = ("duckdb",)
_TZ_NOW = ("CurrentTimestamp",)


def certain_type(dtype: str | None, expression: str | None, dialect: str) -> str | None:
    """The ``data_type`` --fix writes for a column: the type the warehouse reports for
    it, or None when that is not certain (the column is then left to a human).

    * an expression that is a ``CAST``/``TRY_CAST``: the type it casts to (any dialect);
    * DuckDB (proven by the oracle): sqlglot's type, except ``current_timestamp`` (DuckDB
      reports ``timestamp with time zone``; ``now()``-like expressions combined with
      anything else are not certain) and a ``decimal`` computed by arithmetic,
      ``coalesce``, ``case`` or an aggregate (precision and scale are the warehouse's
      rules; dbt-duckdb compares them) -- a bare column or cast keeps its type;
    * any other dialect: nothing but casts (types there are not proven by an oracle).
    """
    if not dtype or not expression:
        return None
    key = (dtype, expression, dialect)
    if key not in _CERTAIN:   # a pure function of its text: parsed once per process
        _CERTAIN[key] = _certain_type(dtype, expression, dialect)
    return _CERTAIN[key]


_CERTAIN: dict[tuple[str, str, str], str | None] = {}


def _certain_type(dtype: str, expression: str, dialect: str) -> str | None:
    try:
        import sqlglot
        from sqlglot import exp

        tree = sqlglot.parse_one(expression, read=dialect)
    except Exception:  # noqa: BLE001 - unparseable: not certain
        return None
    while isinstance(tree, (exp.Alias, exp.Paren)):
        tree = tree.this
    if isinstance(tree, (exp.Cast, exp.TryCast)) and isinstance(tree.to, exp.DataType):
        to = tree.to
        if to.this == exp.DataType.Type.USERDEFINED:
            return None
        return show_type(to.sql(dialect), dialect)
    base = dtype.strip().lower()
    if dialect not in ORACLE_DIALECTS:
        return None
    now = [n for n in tree.walk() if type(n).__name__ in _TZ_NOW
           and not any(isinstance(a, (exp.Cast, exp.TryCast)) for a in _ancestors(n, tree))]
    if now:
        return "timestamp with time zone" if type(tree).__name__ in _TZ_NOW else None
    if base.startswith(("decimal", "numeric")) and not isinstance(tree, exp.Column):
        return None
    return show_type(dtype, dialect)


def _ancestors(node: Any, top: Any) -> list[Any]:
    out = []
    cur = node.parent
    while cur is not None and cur is not top:
        out.append(cur)
        cur = cur.parent
    if cur is top:
        out.append(top)
    return out


def default_properties_path(project: Project, node: Node) -> str:
    """Where --fix describes a model that has no YAML entry yet.

    The one properties file in the model's folder that already lists models, when
    there is exactly one (the ``_<folder>__models.yml`` / ``schema.yml`` layout of
    the dbt style guide); otherwise a new ``_<model>.yml`` next to the model.
    """
    folder = node.repo_path.rsplit("/", 1)[0] if "/" in node.repo_path else ""
    candidates = []
    for rp, data in project.yaml_files.items():
        parent = rp.rsplit("/", 1)[0] if "/" in rp else ""
        if parent == folder and isinstance(data, dict) and isinstance(data.get("models"), list):
            candidates.append(rp)
    if len(candidates) == 1:
        return candidates[0]
    name = f"_{node.name}.yml"
    return f"{folder}/{name}" if folder else name


# --------------------------------------------------------------------------- --fix applying


@dataclass
class FixResult:
    changed: list[str] = field(default_factory=list)        # repo paths written
    notes: list[str] = field(default_factory=list)          # one line per model fixed
    findings: list[Finding] = field(default_factory=list)   # edits that were refused


def apply_fixes(repo_root: Any, plans: list[FixPlan]) -> FixResult:
    """Apply the plans, one editor per file, atomically; never raises on a bad file."""
    from pathlib import Path

    from dbt_bulwark.yaml_edit import PropertiesEditor, YamlEditError

    out = FixResult()
    by_file: dict[str, list[FixPlan]] = {}
    for plan in plans:
        by_file.setdefault(plan.properties_path, []).append(plan)

    def refused(rel: str, plan: FixPlan, exc: YamlEditError) -> Finding:
        return Finding(rel, exc.line or 0, 0, "BLK220",
                       f"--fix could not edit this file for '{plan.name}': {exc.message}",
                       "error", "make the change by hand", plan.unique_id)

    for rel, file_plans in sorted(by_file.items()):
        path = Path(repo_root) / rel
        pending = list(file_plans)   # the plans whose edits wait for the save
        try:
            editor = PropertiesEditor(path, repo_root)
            done: list[str] = []
            for plan in file_plans:
                # one transaction per model: a refusal names its own model and leaves the
                # other models' edits (and nothing half-made of its own)
                mark = editor.mark()
                try:
                    entry = editor.model(plan.name, plan.version)
                    assert entry is not None
                    what = []
                    if plan.enforce and editor.set_config(entry, "contract", {"enforced": True}):
                        what.append("contract enforced")
                    if plan.columns and editor.add_columns(entry, plan.columns):
                        what.append(f"{len(plan.columns)} column(s) "
                                    f"({', '.join(col['name'] for col in plan.columns)})")
                except YamlEditError as exc:
                    editor.rollback(mark)
                    pending.remove(plan)
                    out.findings.append(refused(rel, plan, exc))
                    continue
                if what:
                    label = versioned_name(plan.name, plan.version)
                    done.append(f"{label}: " + ", ".join(what))
            if editor.save():
                out.changed.append(rel)
                out.notes.extend(f"fixed {rel}: {d}" for d in done)
        except YamlEditError as exc:   # the file itself (unreadable, unsafe, changed on disk)
            out.findings.extend(refused(rel, plan, exc) for plan in pending)
        except OSError as exc:
            for plan in pending:
                out.findings.append(Finding(rel, 0, 0, "BLK220",
                                            f"--fix could not write this file: {exc}", "error",
                                            "check permissions", plan.unique_id))
    return out
