"""Shared, warehouse-free understanding of a dbt model's SQL columns.

One module serves three hooks:

* ``fast-compile`` -- :func:`find_unknown_columns` (columns that no relation in scope provides);
* ``check-contracts`` -- :func:`infer_output_columns`, :func:`types_compatible`,
  :func:`is_valid_type`, :func:`base_type` (contract vs SQL agreement);
* ``check-schema-diff`` -- :func:`infer_output_columns` and :func:`column_uses` (output schema and
  downstream column lineage).

Input conventions: the model's SQL is already rendered; ``ref()`` / ``source()`` calls were
rendered as plain table identifiers that are keys of ``upstream``, which maps a relation name to
an ordered ``{column: data type or None}`` mapping, or to ``None`` when the relation exists but its
columns are unknown.  Relation names are opaque: nothing here depends on how they are spelled.

Design rules:

* Never raise on SQL input: any sqlglot problem yields an incomplete result with a reason.
* No false positives: whenever a reference cannot be resolved with certainty it is skipped.
* Cheap import: sqlglot is imported lazily inside functions.
* Parse once: :func:`parse_sql` is cached on ``(sql, dialect)``; the qualified + type-annotated
  tree is cached on ``(sql, dialect, columns of the relations the SQL reads)``.  Only sqlglot's
  ``qualify`` and ``annotate_types`` run, never the full ``optimize`` pipeline.

Dialects are sqlglot dialect names; :func:`dialect_for_adapter` maps a dbt adapter type to one.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

Upstream = Mapping[str, Mapping[str, str | None] | None]

DEFAULT_DIALECT = "duckdb"

# dbt adapter type -> sqlglot dialect.  Unknown adapters fall back to a sqlglot dialect of the
# same name when one exists, else to DEFAULT_DIALECT (DuckDB's parser accepts most
# PostgreSQL-flavoured SQL, which is what most remaining adapters speak).
_ADAPTER_DIALECTS: dict[str, str] = {
    "duckdb": "duckdb",
    "motherduck": "duckdb",
    "postgres": "postgres",
    "postgresql": "postgres",
    "alloydb": "postgres",
    "materialize": "materialize",
    "risingwave": "risingwave",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "redshift": "redshift",
    "databricks": "databricks",
    "spark": "spark",
    "glue": "spark",
    "fabricspark": "spark",
    "trino": "trino",
    "starburst": "trino",
    "presto": "presto",
    "athena": "athena",
    "sqlserver": "tsql",
    "synapse": "tsql",
    "fabric": "tsql",
    "clickhouse": "clickhouse",
    "mysql": "mysql",
    "tidb": "mysql",
    "mariadb": "mysql",
    "singlestore": "singlestore",
    "oracle": "oracle",
    "teradata": "teradata",
    "exasol": "exasol",
    "doris": "doris",
    "starrocks": "starrocks",
    "dremio": "dremio",
    "sqlite": "sqlite",
    "hive": "hive",
    "impala": "hive",
    "druid": "druid",
}


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedSQL:
    """Result of :func:`parse_sql`: either ``expression`` or ``error`` (with a 1-based position).

    ``expression`` is shared by the cache: copy it before mutating it.
    """

    expression: Any | None  # sqlglot.exp.Expression; Any keeps sqlglot out of module import
    error: str | None = None
    line: int = 0
    col: int = 0

    @property
    def ok(self) -> bool:
        return self.expression is not None


@dataclass(frozen=True)
class OutputColumn:
    name: str
    data_type: str | None  # sqlglot rendering in the dialect, e.g. "BIGINT"; None = unknown
    expression_sql: str  # the (qualified) expression producing the column


@dataclass(frozen=True)
class OutputSchema:
    """The model's output columns.

    ``complete`` means the list of names is exact (types may still be None); when False,
    ``reason`` says why and ``columns`` holds what could be derived.
    """

    columns: list[OutputColumn] = field(default_factory=list)
    complete: bool = True
    reason: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class UnknownColumn:
    name: str
    table: str | None  # the qualifier as written (alias), None for unqualified references
    line: int  # 1-based, in the given (rendered) SQL
    col: int  # 1-based
    suggestion: str | None = None


@dataclass(frozen=True)
class ColumnUse:
    line: int  # 1-based, in the given (rendered) SQL
    col: int
    in_output: bool  # does this use flow into the model's output?
    output_columns: list[str] = field(default_factory=list)  # output names it flows into
    # an unqualified name in WHERE / GROUP BY / HAVING / QUALIFY of a SELECT with an item of
    # that alias (another expression): without the relation's column the name is the alias
    shadowed: bool = False


# --------------------------------------------------------------------------------------------
# Dialects, identifiers, types
# --------------------------------------------------------------------------------------------


def dialect_for_adapter(adapter_type: str | None) -> str:
    """The sqlglot dialect for a dbt adapter type (``None``/unknown -> ``"duckdb"``)."""
    if not adapter_type:
        return DEFAULT_DIALECT
    key = adapter_type.strip().lower()
    if key in _ADAPTER_DIALECTS:
        return _ADAPTER_DIALECTS[key]
    if _dialect_exists(key):
        return key
    return DEFAULT_DIALECT


@lru_cache(maxsize=64)
def _dialect_exists(name: str) -> bool:
    from sqlglot.dialects.dialect import Dialect

    try:
        Dialect.get_or_raise(name)
    except ValueError:   # unknown dialect
        return False
    return True


@lru_cache(maxsize=64)
def _dialect(dialect: str) -> Any:
    from sqlglot.dialects.dialect import Dialect

    try:
        return Dialect.get_or_raise(dialect or None)
    except ValueError:   # unknown dialect
        return Dialect.get_or_raise(DEFAULT_DIALECT)


def _strategy(dialect: str) -> str:
    return str(_dialect(dialect).NORMALIZATION_STRATEGY.name)


@lru_cache(maxsize=8192)
def normalize_identifier(name: str, dialect: str, quoted: bool = False) -> str:
    """The key under which the warehouse compares identifier ``name``.

    Snowflake/Oracle/Exasol fold unquoted names to upper case; PostgreSQL-likes fold unquoted to
    lower case; DuckDB, BigQuery (columns), Redshift (default), Databricks/Spark, Trino, T-SQL
    are case-insensitive even for quoted names; ClickHouse/MySQL are case-sensitive.
    """
    strategy = _strategy(dialect)
    if strategy == "CASE_INSENSITIVE":
        return name.lower()
    if strategy == "CASE_INSENSITIVE_UPPERCASE":
        return name.upper()
    if quoted or strategy == "CASE_SENSITIVE":
        return name
    if strategy == "UPPERCASE":
        return name.upper()
    return name.lower()


def same_column(a: str, b: str, dialect: str) -> bool:
    """Whether two unquoted column names denote the same column in ``dialect``."""
    return normalize_identifier(a, dialect) == normalize_identifier(b, dialect)


def _key(name: str, dialect: str) -> str:
    """Comparison key of an identifier that sqlglot has already normalized."""
    return normalize_identifier(name, dialect, quoted=True)


def display_name(name: str, dialect: str, quoted: bool = False) -> str:
    """The name the warehouse reports for a column written ``name`` (what dbt's contract
    preflight compares): case kept where identifiers are case-preserving (DuckDB, BigQuery,
    Spark...), folded where the dialect folds unquoted names (Snowflake: upper, Postgres:
    lower)."""
    strategy = _strategy(dialect)
    if quoted or strategy in ("CASE_INSENSITIVE", "CASE_SENSITIVE"):
        return name
    if strategy == "UPPERCASE":
        return name.upper()
    if strategy == "LOWERCASE":
        return name.lower()
    return name


# sqlglot DType name -> comparison family; per-dialect overrides below.
_TYPE_FAMILIES: dict[str, str] = {
    "TEXT": "varchar",
    "VARCHAR": "varchar",
    "NVARCHAR": "varchar",
    "NAME": "varchar",
    "CHAR": "char",
    "NCHAR": "char",
    "BPCHAR": "char",
    "TINYINT": "tinyint",
    "SMALLINT": "smallint",
    "MEDIUMINT": "integer",
    "INT": "integer",
    "BIGINT": "bigint",
    "INT128": "hugeint",
    "UTINYINT": "utinyint",
    "USMALLINT": "usmallint",
    "UINT": "uinteger",
    "UBIGINT": "ubigint",
    "UINT128": "uhugeint",
    "FLOAT": "float",
    "DOUBLE": "double",
    "DECIMAL": "decimal",
    "BIGDECIMAL": "bigdecimal",
    "MONEY": "money",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "DATE32": "date",
    "TIME": "time",
    "TIMETZ": "timetz",
    "TIMESTAMP": "timestamp",
    "TIMESTAMPNTZ": "timestamp",
    "DATETIME": "timestamp",
    "DATETIME2": "timestamp",
    "SMALLDATETIME": "timestamp",
    "TIMESTAMPTZ": "timestamptz",
    "TIMESTAMPLTZ": "timestamptz",
    "DATETIMEOFFSET": "timestamptz",
    "TIMESTAMP_S": "timestamp_s",
    "TIMESTAMP_MS": "timestamp_ms",
    "TIMESTAMP_NS": "timestamp_ns",
    "BINARY": "binary",
    "VARBINARY": "binary",
    "BLOB": "binary",
    "JSON": "json",
    "JSONB": "jsonb",
    "UUID": "uuid",
    "INTERVAL": "interval",
    "ARRAY": "array",
    "LIST": "array",
    "STRUCT": "struct",
    "OBJECT": "object",
    "MAP": "map",
    "VARIANT": "variant",
    "SUPER": "super",
    "GEOGRAPHY": "geography",
    "GEOMETRY": "geometry",
}

_DIALECT_TYPE_FAMILIES: dict[str, dict[str, str]] = {
    # Snowflake: every fixed-point type is NUMBER, every float is FLOAT (8 bytes), every string
    # VARCHAR; TIMESTAMP and DATETIME default to TIMESTAMP_NTZ.
    "snowflake": {
        **{t: "number" for t in ("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "DECIMAL")},
        "INT128": "number",
        "FLOAT": "float",
        "DOUBLE": "float",
        "CHAR": "varchar",
        "NCHAR": "varchar",
        "TIMESTAMP": "timestamp_ntz",
        "TIMESTAMPNTZ": "timestamp_ntz",
        "DATETIME": "timestamp_ntz",
        "TIMESTAMPTZ": "timestamp_tz",
        "TIMESTAMPLTZ": "timestamp_ltz",
    },
    # BigQuery: INT64 / NUMERIC / FLOAT64 / STRING / BYTES; TIMESTAMP is tz-aware, DATETIME not.
    "bigquery": {
        **{t: "int64" for t in ("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT")},
        "DECIMAL": "numeric",
        "BIGDECIMAL": "bignumeric",
        "FLOAT": "float64",
        "DOUBLE": "float64",
        "TEXT": "string",
        "VARCHAR": "string",
        "CHAR": "string",
        "NCHAR": "string",
        "NVARCHAR": "string",
        "BINARY": "bytes",
        "VARBINARY": "bytes",
        "TIMESTAMPTZ": "timestamp",
        "TIMESTAMP": "datetime",
        "DATETIME": "datetime",
        "TIMESTAMPNTZ": "datetime",
        "BOOLEAN": "bool",
    },
    # DuckDB: CHAR/BPCHAR are VARCHAR aliases.
    "duckdb": {"CHAR": "varchar", "NCHAR": "varchar", "BPCHAR": "varchar"},
    # Spark / Databricks: CHAR/VARCHAR are STRING; TIMESTAMP is the session-tz (LTZ) type.
    "spark": {"CHAR": "varchar", "NCHAR": "varchar", "TIMESTAMP": "timestamptz"},
    "databricks": {"CHAR": "varchar", "NCHAR": "varchar", "TIMESTAMP": "timestamptz"},
}

_NESTED_FAMILIES = {"array", "struct", "map", "object"}

# Near-misses of these are rejected by is_valid_type even in dialects allowing user types.
_BUILTIN_TYPE_WORDS = (
    "integer", "bigint", "smallint", "tinyint", "varchar", "string", "boolean", "double",
    "decimal", "numeric", "number", "timestamp", "timestamptz", "datetime", "float", "date",
    "time", "text", "char", "character", "interval", "binary", "varbinary", "struct", "array",
    "variant", "object", "hugeint", "real", "blob", "json", "uuid",
)  # fmt: skip


def _dbt_base(data_type: str) -> str:
    return data_type.strip().lower().split("(", 1)[0].strip()


@lru_cache(maxsize=4096)
def _build_type(data_type: str, dialect: str) -> Any | None:
    """Parse a column type with sqlglot (None when it does not parse)."""
    exp = _exp()

    try:
        return exp.DataType.build(data_type, dialect=dialect, udt=True)
    except Exception:  # noqa: BLE001 - sqlglot raises many kinds on user text
        return None


@lru_cache(maxsize=4096)
def base_type(data_type: str, dialect: str) -> str:
    """Comparison key for a column type.

    dbt >= 1.11 semantics (lower-case, cut at ``(``) refined by sqlglot's dialect-aware type
    parsing and a family table, so that e.g. ``varchar``/``text``/``string``/``character
    varying`` or ``int8``/``bigint``/``long`` give the same key in a dialect, and dialect quirks
    hold (Snowflake ``int`` == ``number``; BigQuery ``datetime`` != ``timestamp`` while DuckDB
    ``datetime`` == ``timestamp``).  Nested types keep only their kind (``struct``, ``array``).
    Unparseable or user-defined types fall back to the dbt semantics.
    """
    fallback = _dbt_base(data_type)
    dt = _build_type(data_type, dialect)
    if dt is None:
        return fallback
    tname = dt.this.name
    if tname == "USERDEFINED":
        return fallback
    family = _DIALECT_TYPE_FAMILIES.get(dialect, {}).get(tname) or _TYPE_FAMILIES.get(tname)
    if family is None:
        family = tname.lower()
    return family


def types_compatible(declared: str | None, inferred: str | None, dialect: str) -> bool:
    """Whether a declared (contract) type agrees with an inferred one.

    Unknown on either side is compatible (nothing to report); otherwise the base types
    (:func:`base_type`) must be equal.
    """
    if not declared or not inferred or declared == inferred:
        return True
    return base_type(declared, dialect) == base_type(inferred, dialect)


@lru_cache(maxsize=4096)
def is_valid_type(data_type: str, dialect: str) -> bool:
    """Whether ``data_type`` is a type ``dialect`` accepts.

    Parsed as ``CAST(NULL AS <type>)`` by sqlglot for the dialect.  User-defined types are
    accepted only in dialects that have them (DuckDB, PostgreSQL, T-SQL, ...), and not when they
    are a near-miss of a built-in type name (``integr``, ``varchr``).
    """
    import sqlglot
    exp = _exp()

    text = data_type.strip()
    if not text or text.count("(") != text.count(")") or text.count("<") != text.count(">"):
        return False
    if text.count("[") != text.count("]") or ";" in text:
        return False
    try:
        parsed = sqlglot.parse_one(f"CAST(NULL AS {text})", read=dialect)
    except Exception:  # noqa: BLE001 - sqlglot raises many kinds on user text
        return False
    if not isinstance(parsed, exp.Cast) or not isinstance(parsed.to, exp.DataType):
        return False
    dt = parsed.to
    if dt.this == exp.DataType.Type.UNKNOWN:
        return False
    for node in dt.find_all(exp.DataType):
        if node.this == exp.DataType.Type.USERDEFINED:
            if not _dialect(dialect).SUPPORTS_USER_DEFINED_TYPES:
                return False
            kind = node.args.get("kind")
            text_kind = kind if isinstance(kind, str) else (kind.sql() if kind is not None else "")
            name = text_kind.lower().split(".")[-1].strip('"')
            if difflib.get_close_matches(name, _BUILTIN_TYPE_WORDS, n=1, cutoff=0.85):
                return False
    return True


# --------------------------------------------------------------------------------------------
# Parsing and analysis (cached)
# --------------------------------------------------------------------------------------------


_PARSED: OrderedDict[tuple[str, str], ParsedSQL] = OrderedDict()
_PARSED_SIZE = 128


def parse_sql(sql: str, dialect: str) -> ParsedSQL:
    """Parse one statement (cached).  The returned expression is shared: copy before mutating."""
    key = (sql, dialect)
    hit = _PARSED.get(key)
    if hit is not None:
        _PARSED.move_to_end(key)
        return hit
    parsed = _parse_sql(sql, dialect)
    _remember(key, parsed)
    return parsed


def _remember(key: tuple[str, str], parsed: ParsedSQL) -> None:
    _PARSED[key] = parsed
    if len(_PARSED) > _PARSED_SIZE:
        _PARSED.popitem(last=False)


def remember_parse(sql: str, dialect: str, statements: list[Any]) -> None:
    """What ``sqlglot.parse(sql, read=dialect)`` returned elsewhere (fast-compile's syntax
    check), so that :func:`parse_sql` of the same text does not parse it again."""
    key = (sql, dialect)
    if key not in _PARSED:
        _remember(key, _statements(statements))


def _statements(found: list[Any]) -> ParsedSQL:
    statements = [s for s in found if s is not None]
    if not statements:
        return ParsedSQL(None, "could not parse SQL: empty statement")
    if len(statements) > 1:
        return ParsedSQL(None, "could not parse SQL: more than one statement")
    return ParsedSQL(statements[0])


def parse_error_parts(exc: Any) -> tuple[str, int, int, str]:
    """(description, line, col, highlight) of a sqlglot ParseError, its first error; line and
    col 0 when sqlglot gives none; sqlglot's Token reprs shortened to their text."""
    first = exc.errors[0] if exc.errors else {}
    desc = str(first.get("description") or exc).splitlines()[0]
    desc = re.sub(r"<Token token_type: TokenType\.\w+, text: ([^,]*),.*?>", r"'\1'", desc)
    return (desc, int(first.get("line") or 0), int(first.get("col") or 0),
            str(first.get("highlight") or ""))


def _parse_sql(sql: str, dialect: str) -> ParsedSQL:
    import sqlglot
    from sqlglot import errors

    try:
        found = sqlglot.parse(sql, read=dialect)
    except errors.ParseError as exc:
        desc, line, col, _highlight = parse_error_parts(exc)
        return ParsedSQL(None, f"could not parse SQL: {desc}", line, col)
    except Exception as exc:  # noqa: BLE001 - TokenError and anything else
        return ParsedSQL(None, f"could not parse SQL: {str(exc).splitlines()[0][:200]}")
    return _statements(found)


_EXP: Any = None


def _exp() -> Any:
    """``sqlglot.exp``, imported once (a function-level import costs on every call)."""
    global _EXP
    if _EXP is None:
        from sqlglot import exp

        _EXP = exp
    return _EXP


def _pos(sql: str, start: int) -> tuple[int, int]:
    """1-based (line, column) of offset ``start`` (a binary search in the line starts, so
    that positioning every column of a long query stays linear)."""
    from bisect import bisect_right

    starts = _line_starts(sql)
    line = bisect_right(starts, start)
    return line, start - starts[line - 1] + 1


@lru_cache(maxsize=64)
def _line_starts(sql: str) -> list[int]:
    starts = [0]
    find = sql.find
    at = find("\n")
    while at >= 0:
        starts.append(at + 1)
        at = find("\n", at + 1)
    return starts


def _meta_start(node: Any) -> int | None:
    """Character offset where ``node`` (a Column, Identifier, Star...) was written, if known."""
    exp = _exp()

    candidates = [node]
    if isinstance(node, exp.Column):
        candidates = [node.args.get("this"), *node.parts[:-1]] if node.parts else [node]
        # the first part written is the leftmost qualifier, if any
        quals = [p for p in node.parts[:-1]]
        candidates = [*quals, node.args.get("this")] if quals else [node.args.get("this")]
    for cand in candidates:
        meta = getattr(cand, "_meta", None)
        if meta and "start" in meta:
            return int(meta["start"])
    return None


_PSEUDO_COLUMNS = frozenset(
    {
        "rowid", "ctid", "oid", "xmin", "xmax", "cmin", "cmax", "tableoid", "rownum", "level",
        "_partitiontime", "_partitiondate", "_table_suffix", "_file_name", "all",
        "metadata$filename", "metadata$file_row_number", "metadata$action", "metadata$isupdate",
        "metadata$row_id", "sysdate", "systimestamp", "current_user", "session_user", "user",
    }
)  # fmt: skip


@dataclass
class _Analysis:
    sql: str
    dialect: str
    tree: Any | None = None  # qualified, type-annotated copy of the parsed expression
    error: str | None = None
    scopes: list[Any] = field(default_factory=list)
    # id(table node) -> upstream key, for tables that are upstream relations
    relations: dict[int, str] = field(default_factory=dict)
    # upstream key -> {column key: original column name}
    upstream_cols: dict[str, dict[str, str] | None] = field(default_factory=dict)
    # id(projection) -> start offset of the star it was expanded from
    star_origin: dict[int, int] = field(default_factory=dict)
    # id(column) -> the scope owning it
    column_scope: dict[int, Any] = field(default_factory=dict)
    unknown_tables: list[str] = field(default_factory=list)
    # Per-scope memos, filled lazily so that every lookup is O(1) after the first: the
    # sources visible from a scope (its own, then its visible ancestors'), what an
    # unqualified column can resolve to along that chain, and the source columns.
    visible: dict[int, dict[str, tuple[Any, Any, Any]]] = field(default_factory=dict)
    chain: dict[int, _Chain] = field(default_factory=dict)
    source_cols: dict[tuple[int, int], dict[str, str] | None] = field(default_factory=dict)
    scope_names: dict[int, dict[str, str] | None] = field(default_factory=dict)
    sees_parent: dict[int, bool] = field(default_factory=dict)
    by_select: dict[int, Any] = field(default_factory=dict)
    trusted: dict[tuple[int, int], bool] = field(default_factory=dict)
    named: dict[int, dict[str, Any]] = field(default_factory=dict)
    consumers: dict[int, list[tuple[Any, str]]] | None = None
    # the first SELECT's projections as written (before qualification), by position
    original_first: list[_Written] | None = None
    # keys of the names left unresolved: references that may be a select-list alias or a
    # column of a relation whose columns are unknown (sqlglot will not choose), taken out of
    # the analysis so that the rest of the query is still judged (see _analyze_unsure)
    unsure: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Written:
    """One projection of the query's first SELECT as the SQL wrote it."""

    kind: str        # "alias" | "column" | "dot" | "" (another expression)
    name: str = ""
    quoted: bool = False


def _written(proj: Any) -> _Written:
    exp = _exp()

    if isinstance(proj, exp.Alias):
        return _Written("alias", proj.alias, bool(getattr(proj.args.get("alias"), "quoted", False)))
    if isinstance(proj, exp.Column):
        return _Written("column", proj.name, bool(getattr(proj.args.get("this"), "quoted", False)))
    if isinstance(proj, exp.Dot):
        return _Written("dot", proj.name)
    return _Written("")


@dataclass
class _Chain:
    """What an unqualified column can resolve to from one scope, along its visible chain."""

    unknown: bool  # some source on the chain has unknown columns
    keys: frozenset[str]  # column keys of every source, and the sources' own names
    aliases: dict[str, list[Any]]  # select-list alias key -> alias projections


_ANALYSIS_CACHE: OrderedDict[tuple[Any, ...], _Analysis] = OrderedDict()
_ANALYSIS_CACHE_SIZE = 256   # nodes are checked parents first: analyses are reused soon or never


def _referenced_tables(expression: Any) -> list[Any]:
    exp = _exp()

    return [t for t in expression.find_all(exp.Table) if isinstance(t.this, exp.Identifier)]


def _ident_key(ident: Any, dialect: str) -> str:
    return normalize_identifier(ident.name, dialect, bool(getattr(ident, "quoted", False)))


def _relation_index(names: Any, dialect: str) -> dict[str, str]:
    """{key: upstream name}; relation names are matched as unquoted identifiers."""
    return {normalize_identifier(name, dialect): name for name in names}


def _match_upstream(table: Any, index: dict[str, str], dialect: str) -> str | None:
    parts = [_ident_key(p, dialect) for p in table.parts]
    return index.get(".".join(parts)) or index.get(parts[-1])


def _is_cte_ref(table: Any, cte_names: set[str], dialect: str) -> bool:
    return not table.db and _ident_key(table.this, dialect) in cte_names


def _analyze(sql: str, dialect: str, upstream: Upstream, types: bool = True) -> _Analysis:
    """Qualify (and, with ``types``, annotate) ``sql`` against the upstream relations it
    reads (cached). Without ``types`` every type is unknown: a quarter less work for
    callers that only need names (fast-compile's column check)."""
    parsed = parse_sql(sql, dialect)
    if not parsed.ok:
        return _Analysis(sql, dialect, error=parsed.error)
    # Only the relations the SQL reads matter (upstream may be the whole project).
    index = _relation_index(upstream, dialect)
    used: dict[str, Mapping[str, str | None] | None] = {}
    cte_names = _cte_names(parsed.expression, dialect)
    for table in _referenced_tables(parsed.expression):
        if _is_cte_ref(table, cte_names, dialect):
            continue
        rel = _match_upstream(table, index, dialect)
        if rel is not None:
            used[rel] = upstream[rel]
    fingerprint = tuple(
        sorted((rel, None if cols is None else tuple(cols.items())) for rel, cols in used.items())
    )
    cache_key = (sql, dialect, fingerprint, types)
    typed_key = (sql, dialect, fingerprint, True)
    for key in (cache_key,) if types else (cache_key, typed_key):
        cached = _ANALYSIS_CACHE.get(key)   # a typed analysis also answers a names-only one
        if cached is not None:
            _ANALYSIS_CACHE.move_to_end(key)
            return cached
    # The analysis qualifies the tree in place: it takes the cached parse when it is the
    # only user (each model's SQL is analysed once per run), else a copy.
    owned = _PARSED.get((sql, dialect)) is parsed
    if owned:
        del _PARSED[(sql, dialect)]
    try:
        analysis = _do_analyze(sql, dialect, parsed.expression, used, types, owned)
    except Exception as exc:  # noqa: BLE001 - never raise on user SQL
        analysis = _Analysis(sql, dialect, error=f"could not analyse SQL: {_short(exc)}")
        if _MISSING_SCHEMAS in str(exc):
            analysis = _analyze_unsure(sql, dialect, used, types, str(exc)) or analysis
    _ANALYSIS_CACHE[cache_key] = analysis
    if len(_ANALYSIS_CACHE) > _ANALYSIS_CACHE_SIZE:
        _ANALYSIS_CACHE.popitem(last=False)
    return analysis


# sqlglot's words when a name may be a select alias or a column of a relation whose columns
# are unknown (it will not choose)
_MISSING_SCHEMAS = "due to missing source schemas"

# Dialects whose SELECT list may use an alias defined earlier in the same list (a lateral
# column alias: `select a + 1 as b, b * 2 as c`).  DuckDB is also the dialect used when the
# project's is a guess.  BigQuery, PostgreSQL, Trino, T-SQL, MySQL do not accept it.
LATERAL_ALIAS_DIALECTS = frozenset({
    "duckdb", "snowflake", "databricks", "spark", "redshift", "clickhouse", "teradata",
})


_UNRESOLVED = re.compile(r"Cannot resolve '(.*)' " + re.escape(_MISSING_SCHEMAS))
# names given up on before the whole query is (each one a fresh parse and qualification)
_MAX_UNSURE = 8


def _analyze_unsure(sql: str, dialect: str, used: dict[str, Mapping[str, str | None] | None],
                    types: bool, error: str) -> _Analysis | None:
    """The analysis of ``sql`` that sqlglot refused because a name may be either a select
    alias or a column of a relation whose columns are unknown.

    First every lateral alias reference in a SELECT list is replaced by the earlier item's
    expression (where the dialect has them), as sqlglot does itself when the relations'
    columns are known. Each name sqlglot still cannot resolve is then taken out of the
    analysis where it is ambiguous (:func:`_set_aside`): those references are neither judged
    nor counted as uses (``unsure``, said by :func:`analysis_error`), and everything else
    (a qualified ``t.col`` of a known relation, other names) is. None when that does not
    help either. Each attempt is a fresh parse: a failed one qualified its tree part way."""
    lateral = dialect in LATERAL_ALIAS_DIALECTS
    unsure: set[str] = set()
    name = _unresolved_name(error)
    while len(unsure) <= _MAX_UNSURE:
        parsed = _parse_sql(sql, dialect)
        if not parsed.ok:
            return None
        expanded = lateral and _expand_lateral_aliases(parsed.expression, dialect)
        if unsure and not _set_aside(parsed.expression, dialect, unsure):
            return None   # the name is not where it can be set aside: no better than before
        if expanded or unsure:
            try:
                analysis = _do_analyze(sql, dialect, parsed.expression, used, types, owned=True)
            except Exception as exc:  # noqa: BLE001 - never raise on user SQL
                name = _unresolved_name(str(exc))
            else:
                analysis.unsure = frozenset(unsure)
                return analysis
        if name is None or name in unsure:
            return None
        unsure.add(name)
    return None


def _unresolved_name(error: str) -> str | None:
    """The key of the name in sqlglot's "Cannot resolve 'x' due to missing source schemas"
    (sqlglot normalized it: it is compared as a key)."""
    match = _UNRESOLVED.search(error)
    return match.group(1) if match else None


def _set_aside(tree: Any, dialect: str, keys: set[str]) -> bool:
    """Replace each ambiguous unqualified column whose key is in ``keys`` by a call of
    unknown type that reads no column, so that the name's other uses, and everything else,
    are still analysed. Ambiguous (as sqlglot sees it): in the SELECT list of a query that
    is a relation (the top query, a CTE, a derived table), a reference after an item
    aliased to the name (a lateral alias or the relation's column: the item that defines the
    alias stays, it names an output column); anywhere else (WHERE, GROUP BY, HAVING,
    QUALIFY, ON, a query nested in an expression), any reference. Whether anything was
    replaced."""
    exp = _exp()

    replaced = False
    for column in list(tree.find_all(exp.Column)):
        if column.table or not isinstance(column.this, exp.Identifier):
            continue
        key = _ident_key(column.this, dialect)
        if key not in keys:
            continue
        item, select = column, column.parent
        while select is not None and not isinstance(select, exp.Select):
            item, select = select, select.parent
        if select is not None and item.arg_key == "expressions" and _is_relation(select):
            if item is column:
                continue   # a whole select item: it names an output column
            earlier = select.expressions[:item.index or 0]
            if not any(isinstance(p, exp.Alias) and isinstance(p.args.get("alias"), exp.Identifier)
                       and _ident_key(p.args["alias"], dialect) == key for p in earlier):
                continue
        column.replace(exp.Anonymous(this=_SET_ASIDE))
        replaced = True
    return replaced


def _is_relation(select: Any) -> bool:
    """Is ``select`` a relation (the top query, a CTE, a derived table, a branch of one),
    not a query nested in an expression (a scalar, IN or EXISTS subquery)?"""
    exp = _exp()

    node = select.parent
    while node is not None:
        if isinstance(node, (exp.From, exp.Join, exp.CTE, exp.With, exp.Lateral)):
            return True
        if isinstance(node, exp.Select):
            return False   # nested in one of its expressions
        node = node.parent
    return True


# the call that stands in for a reference set aside (no warehouse has it; never rendered back)
_SET_ASIDE = "bulwark_unresolved"


def _expand_lateral_aliases(tree: Any, dialect: str) -> bool:
    """Replace, in each SELECT list of ``tree``, an unqualified column naming an alias of an
    earlier item of the same list by that item's expression (in parentheses); the same rules
    as sqlglot's own expansion (an aggregate is not expanded into another aggregate).
    Whether anything was replaced."""
    exp = _exp()

    replaced = False
    for select in list(tree.find_all(exp.Select)):
        aliases: dict[str, Any] = {}
        for proj in select.expressions:
            for column in _lateral_candidates(proj):
                if column.table or _lambda_bound(column, dialect):
                    continue
                alias_expr = aliases.get(_ident_key(column.this, dialect))
                if alias_expr is None:
                    continue
                if alias_expr.find(exp.AggFunc) is not None and _in_aggregate(column, proj):
                    continue
                column.replace(exp.paren(alias_expr.copy(), copy=False))
                replaced = True
            if isinstance(proj, exp.Alias) and isinstance(proj.args.get("alias"), exp.Identifier):
                # the nearest earlier alias of a name wins, as in sqlglot's own expansion
                aliases[_ident_key(proj.args["alias"], dialect)] = proj.this
    return replaced


def _lateral_candidates(proj: Any) -> list[Any]:
    """The columns of one SELECT item, outside nested queries."""
    exp = _exp()

    found: list[Any] = []
    stack = [proj]
    while stack:
        node = stack.pop()
        if node is not proj and isinstance(node, (exp.Query, exp.Subquery)):
            continue
        if isinstance(node, exp.Column) and isinstance(node.this, exp.Identifier):
            found.append(node)
            continue
        stack.extend(node.iter_expressions())
    return found


def _in_aggregate(column: Any, top: Any) -> bool:
    """Is ``column`` inside a (non-window) aggregate, below ``top``?"""
    exp = _exp()

    node = column.parent
    while node is not None and node is not top.parent:
        if isinstance(node, exp.Window):
            return False
        if isinstance(node, exp.AggFunc):
            return True
        node = node.parent
    return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _cte_names(expression: Any, dialect: str) -> set[str]:
    """Keys of the CTE names defined anywhere in ``expression``."""
    exp = _exp()

    names = set()
    for cte in expression.find_all(exp.CTE):
        alias = cte.args.get("alias")
        ident = alias.this if alias is not None else None
        if isinstance(ident, exp.Identifier):
            names.add(_ident_key(ident, dialect))
    return names


def _safe_type(data_type: str | None, dialect: str) -> str:
    dt = _build_type(data_type, dialect) if data_type else None
    if dt is not None and dt.this.name != "USERDEFINED":
        return str(dt.sql(dialect))
    return "UNKNOWN"


def _do_analyze(
    sql: str, dialect: str, parsed: Any, used: dict[str, Mapping[str, str | None] | None],
    types: bool = True, owned: bool = False,
) -> _Analysis:
    """``owned``: ``parsed`` may be modified (no one else holds it), else it is copied."""
    exp = _exp()
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.optimizer.scope import traverse_scope
    from sqlglot.schema import MappingSchema

    analysis = _Analysis(sql, dialect)
    if not isinstance(parsed, exp.Query):
        analysis.error = f"not a query: {type(parsed).__name__}"
        return analysis
    tree = parsed if owned else parsed.copy()
    first = _first_select(tree)   # how the outer projections were written, before qualify
    analysis.original_first = None if first is None else \
        [_written(p) for p in first.expressions]

    # Remember where each star projection was written and mark the other projections, so that
    # columns produced by star expansion can be traced back to their star.
    for select in tree.find_all(exp.Select):
        stars: list[tuple[int, str | None, int]] = []
        for i, proj in enumerate(select.expressions):
            star = _as_star(proj)
            if star is not None:
                start = _meta_start(star if isinstance(star, exp.Star) else proj) or 0
                star_qual = proj.table if isinstance(proj, exp.Column) and proj.table else None
                stars.append((i, star_qual, start))
            else:
                proj.meta["bw_index"] = i
        if stars:
            select.meta["bw_stars"] = stars

    schema_dict: dict[str, object] = {}
    for rel, cols in used.items():
        if cols is None:
            analysis.upstream_cols[rel] = None
            continue
        analysis.upstream_cols[rel] = {normalize_identifier(name, dialect): name for name in cols}
        schema_dict[rel] = {name: _safe_type(dtype, dialect) for name, dtype in cols.items()}
    schema = MappingSchema(schema_dict, dialect=dialect)

    tree = qualify(
        tree,
        dialect=dialect,
        schema=schema,
        validate_qualify_columns=False,
        allow_partial_qualification=True,
        quote_identifiers=False,
        identify=False,
    )
    if types:
        with contextlib.suppress(Exception):  # on failure types stay unknown
            tree = annotate_types(tree, schema=schema, dialect=dialect)
    analysis.tree = tree

    index = _relation_index(used, dialect)
    cte_names = _cte_names(tree, dialect)
    for table in _referenced_tables(tree):
        matched = _match_upstream(table, index, dialect)
        if matched is not None and not _is_cte_ref(table, cte_names, dialect):
            analysis.relations[id(table)] = matched

    # Map star-expanded projections to their star.
    for select in tree.find_all(exp.Select):
        star_list: list[tuple[int, str | None, int]] | None = select.meta.get("bw_stars")
        if not star_list:
            continue
        stars = star_list
        projs = list(select.expressions)
        origs = [_orig_index(p) for p in projs]
        # the original index of the next marked projection after each one (one pass from
        # the right: a star expanded to n columns stays linear in n)
        next_marked = [1 << 30] * len(projs)
        following = 1 << 30
        for i in range(len(projs) - 1, -1, -1):
            next_marked[i] = following
            marked = origs[i]
            if marked is not None:
                following = marked
        last = -1
        for i, proj in enumerate(projs):
            idx = origs[i]
            if idx is not None:
                last = idx
                continue
            candidates = [s for s in stars if s[0] > last]
            if not candidates:
                continue
            chosen = candidates[0]
            qual: str | None = None
            if isinstance(proj, exp.Alias) and isinstance(proj.this, exp.Column):
                qual = proj.this.table
            nxt = [s for s in candidates if s[0] < next_marked[i]]
            if len(nxt) > 1 and qual:
                for s in nxt:
                    if s[1] and _key(s[1], dialect) == _key(qual, dialect):
                        chosen = s
                        break
                else:
                    bare = [s for s in nxt if not s[1]]
                    chosen = bare[0] if bare else nxt[0]
            analysis.star_origin[id(proj)] = chosen[2]

    analysis.scopes = list(traverse_scope(tree))
    for scope in analysis.scopes:  # children come first: the first owner is the innermost
        for column in _scope_columns(scope):
            analysis.column_scope.setdefault(id(column), scope)
    return analysis


def _as_star(proj: Any) -> Any | None:
    exp = _exp()

    if isinstance(proj, exp.Star):
        return proj
    if isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star):
        return proj.this
    return None


def _orig_index(proj: Any) -> int | None:
    exp = _exp()

    for node in (proj, proj.this if isinstance(proj, exp.Alias) else None):
        if node is not None and "bw_index" in (getattr(node, "_meta", None) or {}):
            return int(node.meta["bw_index"])
    return None


def _scope_columns(scope: Any) -> list[Any]:
    scope.columns  # noqa: B018 - forces collection
    raw = getattr(scope, "_raw_columns", None)
    return list(raw if raw is not None else scope.columns)


# --------------------------------------------------------------------------------------------
# Scope helpers
# --------------------------------------------------------------------------------------------


def _sees_parent(analysis: _Analysis, scope: Any) -> bool:
    """:func:`_can_see_parent`, memoised per scope."""
    hit = analysis.sees_parent.get(id(scope))
    if hit is None:
        hit = analysis.sees_parent[id(scope)] = _can_see_parent(scope)
    return hit


def _unmemoised_chain(analysis: _Analysis, scope: Any, memo: dict[int, Any]
                      ) -> tuple[list[Any], Any]:
    """The scopes from ``scope`` up through the parents it can see, stopping below the first
    one ``memo`` already holds; and the visible parent of the topmost (None when it has none).
    :func:`_visible` and :func:`_chain` then fill ``memo`` top-down along that list."""
    chain = [scope]
    current = scope
    while _sees_parent(analysis, current) and current.parent is not None:
        current = current.parent
        if id(current) in memo:
            break
        chain.append(current)
    top = chain[-1]
    parent = top.parent if _sees_parent(analysis, top) and top.parent is not None else None
    return chain, parent


def _visible(analysis: _Analysis, scope: Any) -> dict[str, tuple[Any, Any, Any]]:
    """{source key: (scope, node, source)} of the sources visible from ``scope``: its own
    (the first of a name wins) over those of the ancestors it can see.  Built once per
    scope, top-down; a scope without sources of its own shares its parent's map."""
    hit = analysis.visible.get(id(scope))
    if hit is not None:
        return hit
    chain, parent = _unmemoised_chain(analysis, scope, analysis.visible)
    inherited: dict[str, tuple[Any, Any, Any]] = {}
    if parent is not None:
        inherited = analysis.visible.get(id(parent)) or {}
    dialect = analysis.dialect
    for current in reversed(chain):
        own: dict[str, tuple[Any, Any, Any]] = {}
        for name, (node, source) in current.selected_sources.items():
            own.setdefault(_key(name, dialect), (current, node, source))
        if own:
            merged = dict(inherited)
            merged.update(own)
            inherited = merged
        analysis.visible[id(current)] = inherited
    return inherited


def _chain(analysis: _Analysis, scope: Any) -> _Chain:
    """The :class:`_Chain` of ``scope`` (memoised; built top-down like :func:`_visible`)."""
    hit = analysis.chain.get(id(scope))
    if hit is not None:
        return hit
    chain, parent = _unmemoised_chain(analysis, scope, analysis.chain)
    above = analysis.chain.get(id(parent)) if parent is not None else None
    info = above or _Chain(False, frozenset(), {})
    dialect = analysis.dialect
    for current in reversed(chain):
        unknown, keys = info.unknown, set[str]()
        for src_name, (node, source) in current.selected_sources.items():
            cols = _source_columns(analysis, node, source)
            if cols is None:
                unknown = True
            else:
                keys.update(cols)
            keys.add(_key(src_name, dialect))
        aliases: dict[str, list[Any]] = {}
        select = current.expression
        if _is_select(select):
            for p in select.expressions:
                if _is_alias(p) and "bw_index" in (p._meta or {}):
                    aliases.setdefault(_key(p.alias, dialect), []).append(p)
        merged_aliases = info.aliases
        if aliases:
            merged_aliases = {k: list(v) for k, v in info.aliases.items()}
            for k, v in aliases.items():
                merged_aliases.setdefault(k, []).extend(v)
        info = _Chain(unknown, info.keys | keys if keys else info.keys, merged_aliases)
        analysis.chain[id(current)] = info
    return info


def _is_select(node: Any) -> bool:
    exp = _exp()

    return isinstance(node, exp.Select)


def _is_alias(node: Any) -> bool:
    exp = _exp()

    return isinstance(node, exp.Alias)


def _can_see_parent(scope: Any) -> bool:
    exp = _exp()
    from sqlglot.optimizer.scope import ScopeType

    if scope.scope_type == ScopeType.CTE:
        return False
    if scope.scope_type == ScopeType.DERIVED_TABLE:
        return isinstance(scope.expression.parent, exp.Lateral) or bool(
            getattr(scope, "can_be_correlated", False)
        )
    return scope.parent is not None


def _first_select(expression: Any) -> Any | None:
    exp = _exp()

    while isinstance(expression, exp.SetOperation):
        expression = expression.this
    if isinstance(expression, exp.Subquery):
        return _first_select(expression.this)
    return expression if isinstance(expression, exp.Select) else None


def _scope_output_names(scope: Any, dialect: str) -> dict[str, str] | None:
    """{key: name} of what a CTE/derived-table scope outputs; None when not derivable."""
    exp = _exp()

    expression = scope.expression
    if not isinstance(expression, (exp.Select, exp.SetOperation)):
        return None
    selects = [expression] if isinstance(expression, exp.Select) else list(
        expression.find_all(exp.Select))  # fmt: skip
    for select in selects:
        if any(_as_star(p) is not None for p in select.expressions):
            return None
    first = _first_select(expression)
    if first is None:
        return None
    return {_key(name, dialect): name for name in first.named_selects}


def _source_columns(analysis: _Analysis, node: Any, source: Any) -> dict[str, str] | None:
    """{key: name} of the columns a source provides; None when unknown (memoised)."""
    memo = (id(node), id(source))
    if memo in analysis.source_cols:
        return analysis.source_cols[memo]
    result = analysis.source_cols[memo] = _source_columns_uncached(analysis, node, source)
    return result


def _source_columns_uncached(analysis: _Analysis, node: Any, source: Any) -> dict[str, str] | None:
    exp = _exp()

    alias = node.args.get("alias") if hasattr(node, "args") else None
    alias_cols = alias.columns if isinstance(alias, exp.TableAlias) else []
    if isinstance(node, exp.Unnest) and analysis.dialect == "bigquery" and not all(
            _scalar_array(e) for e in node.expressions):
        # BigQuery: the fields of an unnested STRUCT array are columns of the query too
        # (`FROM t, t.items AS i` ... `SELECT id`), and the element type is not known here
        return None
    if alias_cols:
        cols = {_key(c.name, analysis.dialect): c.name for c in alias_cols}
        offset = node.args.get("offset") if isinstance(node, exp.Unnest) else None
        if isinstance(offset, exp.Identifier):
            # BigQuery `UNNEST(...) AS x WITH OFFSET AS n`: the offset is a column too
            cols[_key(offset.name, analysis.dialect)] = offset.name
        return cols
    if isinstance(source, exp.Table):
        rel = analysis.relations.get(id(source))
        if rel is None:
            return None
        return analysis.upstream_cols.get(rel)
    from sqlglot.optimizer.scope import Scope

    if isinstance(source, Scope):
        if id(source) not in analysis.scope_names:
            analysis.scope_names[id(source)] = _scope_output_names(source, analysis.dialect)
        return analysis.scope_names[id(source)]
    return None


def _scalar_array(expression: Any) -> bool:
    """An array expression whose elements are certainly not structs (a generated series,
    an array literal of literals, a string split)."""
    exp = _exp()

    if isinstance(expression, (exp.GenerateSeries, exp.GenerateDateArray,
                               exp.GenerateTimestampArray, exp.Split)):
        return True
    return isinstance(expression, exp.Array) and all(
        isinstance(e, exp.Literal) for e in expression.expressions)


def _lambda_bound(column: Any, dialect: str) -> bool:
    exp = _exp()

    name = _key(column.name, dialect)
    node = column.parent
    while node is not None:
        if isinstance(node, exp.Lambda):
            params = {_key(p.name, dialect) for p in node.expressions}
            if name in params:
                return True
        node = node.parent
    return False


def _find_source(analysis: _Analysis, scope: Any, qualifier: str) -> tuple[Any, Any, Any] | None:
    """(scope, node, source) for a table qualifier visible from ``scope``."""
    return _visible(analysis, scope).get(_key(qualifier, analysis.dialect))


# --------------------------------------------------------------------------------------------
# Output columns
# --------------------------------------------------------------------------------------------


def infer_output_columns(sql: str, dialect: str, upstream: Upstream,
                         types: bool = True, expressions: bool = True) -> OutputSchema:
    """Names and (when known, and asked for) types of the columns ``sql`` produces, and
    unless ``expressions`` is False the SQL of the expression producing each (writing it
    costs a copy and a generation per column: the columns of an upstream need none)."""
    exp = _exp()

    analysis = _analyze(sql, dialect, upstream, types)
    if analysis.tree is None:
        return OutputSchema([], False, analysis.error)
    tree = analysis.tree
    first = _first_select(tree)
    if first is None:
        return OutputSchema([], False, f"unsupported query shape: {type(tree).__name__}")
    branches = _set_branches(tree)
    original = analysis.original_first

    columns: list[OutputColumn] = []
    complete = True
    reason: str | None = None
    for i, proj in enumerate(first.expressions):
        star = _as_star(proj)
        if star is not None:
            complete = False
            reason = reason or _star_reason(analysis, proj)
            continue
        name = _output_name(analysis, proj, original)
        inner = proj.this if isinstance(proj, exp.Alias) else proj
        if not _named_by_query(proj, original):
            complete = False
            reason = reason or f"expression without alias (the warehouse names it): {proj.sql()}"
        dtype = _branch_type(analysis, branches, i, dialect)
        columns.append(OutputColumn(name, dtype,
                                    inner.sql(dialect=dialect) if expressions else ""))
    for branch in branches[1:]:
        if len(branch.expressions) != len(first.expressions) and complete:
            complete = False
            reason = "set operation branches have different column counts"
    return OutputSchema(columns, complete, reason)


def _named_by_query(proj: Any, original_first: list[_Written] | None) -> bool:
    """False when the warehouse, not the query, names this output (unaliased expression)."""
    idx = _orig_index(proj)
    if idx is None or original_first is None or idx >= len(original_first):
        return True  # star expansion: named after the source column
    return original_first[idx].kind != ""


def _set_branches(tree: Any) -> list[Any]:
    exp = _exp()

    if isinstance(tree, exp.Subquery):
        return _set_branches(tree.this)
    if isinstance(tree, exp.SetOperation):
        return _set_branches(tree.this) + _set_branches(tree.expression)
    return [tree] if isinstance(tree, exp.Select) else []


def _star_reason(analysis: _Analysis, proj: Any) -> str:
    exp = _exp()

    select = proj.parent
    names: list[str] = []
    if isinstance(select, exp.Select):
        qual = proj.table if isinstance(proj, exp.Column) and proj.table else None
        for name, (node, source) in _selected(select, analysis).items():
            if qual and _key(name, analysis.dialect) != _key(qual, analysis.dialect):
                continue
            if _source_columns(analysis, node, source) is None:
                names.append(
                    analysis.relations.get(id(source), name)
                    if isinstance(source, exp.Table)
                    else name  # fmt: skip
                )
    if names:
        return f"select * from unknown relation {', '.join(sorted(set(names)))}"
    return "select * could not be expanded (duplicate or unknown columns)"


def _selected(select: Any, analysis: _Analysis) -> dict[str, tuple[Any, Any]]:
    if not analysis.by_select:
        for scope in reversed(analysis.scopes):  # the first scope of an expression wins
            analysis.by_select[id(scope.expression)] = scope
    scope = analysis.by_select.get(id(select))
    return dict(scope.selected_sources) if scope is not None else {}


def _output_name(analysis: _Analysis, proj: Any, original_first: list[_Written] | None) -> str:
    exp = _exp()

    dialect = analysis.dialect
    idx = _orig_index(proj)
    if idx is not None and original_first is not None and idx < len(original_first):
        orig = original_first[idx]
        if orig.kind == "alias":
            return display_name(orig.name, dialect, orig.quoted)
        if orig.kind == "column":
            # an unaliased column keeps the spelling the relation stores it with
            inner = proj.this if isinstance(proj, exp.Alias) else proj
            spelled = _upstream_spelling(analysis, inner) if isinstance(inner, exp.Column) else None
            if spelled:
                return spelled
            return display_name(orig.name, dialect, orig.quoted)
        if orig.kind == "dot":
            return display_name(orig.name, dialect, False)
    name = proj.alias_or_name
    # star expansion: restore the upstream's spelling
    inner = proj.this if isinstance(proj, exp.Alias) else proj
    if isinstance(inner, exp.Column) and _key(inner.name, dialect) == _key(name, dialect):
        spelled = _upstream_spelling(analysis, inner)
        if spelled:
            return spelled
    return str(name)


def _upstream_spelling(analysis: _Analysis, column: Any) -> str | None:
    scope = analysis.column_scope.get(id(column))
    if scope is None or not column.table:
        return None
    found = _find_source(analysis, scope, column.table)
    if found is None:
        return None
    _, node, source = found
    cols = _source_columns(analysis, node, source)
    if not cols:
        return None
    return cols.get(_key(column.name, analysis.dialect))


def _branch_type(analysis: _Analysis, branches: list[Any], index: int, dialect: str) -> str | None:
    types: list[str] = []
    for branch in branches:
        if index >= len(branch.expressions):
            return None
        dtype = _type_of(analysis, branch.expressions[index], dialect)
        if dtype is None:
            return None
        types.append(dtype)
    if not types or any(base_type(t, dialect) != base_type(types[0], dialect) for t in types):
        return None
    return types[0]


def _type_of(analysis: _Analysis, proj: Any, dialect: str) -> str | None:
    exp = _exp()

    dt = getattr(proj, "type", None)
    if dt is None or not isinstance(dt, exp.DataType):
        return None
    for node in dt.find_all(exp.DataType):
        if node.this in (exp.DataType.Type.UNKNOWN, exp.DataType.Type.NULL):
            return None
        if node.this == exp.DataType.Type.USERDEFINED:
            return None
    inner = proj.this if isinstance(proj, exp.Alias) else proj
    if not _type_trusted(analysis, inner):
        return None
    return str(dt.sql(dialect))


# Expressions whose result type is warehouse-specific enough that sqlglot's guess is not trusted
# (checked against DuckDB; e.g. SUM(int) is HUGEINT there, 1.5 is DECIMAL, not DOUBLE).
_UNTRUSTED_FUNCS = frozenset(
    {
        "Sum", "Avg", "Div", "IntDiv", "Stddev", "StddevPop", "StddevSamp", "Variance",
        "VariancePop", "Quantile", "Median", "PercentileCont", "PercentileDisc", "Round", "Pow",
        "Sqrt", "Floor", "Ceil", "Anonymous", "UnixToTime", "StrToTime", "TimeStrToTime",
        "Corr", "CovarPop", "CovarSamp",
    }
)  # fmt: skip


def _type_trusted(analysis: _Analysis, node: Any, depth: int = 0) -> bool:
    """Whether sqlglot's type for ``node`` can be relied on (follows CTE/subquery columns;
    memoised per node and depth)."""
    memo = (id(node), depth)
    hit = analysis.trusted.get(memo)
    if hit is None:
        hit = analysis.trusted[memo] = _type_trusted_uncached(analysis, node, depth)
    return hit


def _type_trusted_uncached(analysis: _Analysis, node: Any, depth: int) -> bool:
    exp = _exp()
    from sqlglot.optimizer.scope import Scope

    if depth > 32:
        return False
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return True
    for sub in node.walk():
        if isinstance(sub, (exp.Cast, exp.TryCast)) and sub is not node:
            continue  # an explicit cast fixes the type, whatever is inside
        if type(sub).__name__ in _UNTRUSTED_FUNCS:
            return False
        if (
            isinstance(sub, exp.Literal)
            and not sub.is_string
            and not re.fullmatch(r"[+-]?\d+", sub.name)
        ):
            return False  # DECIMAL in some warehouses, DOUBLE in others
        if isinstance(sub, exp.Column) and sub.table:
            scope = analysis.column_scope.get(id(sub))
            found = _find_source(analysis, scope, sub.table) if scope is not None else None
            if found is not None and isinstance(found[2], Scope):
                for branch in _set_branches(found[2].expression):
                    proj = _projection_named(branch, _key(sub.name, analysis.dialect), analysis)
                    if proj is None:
                        return False
                    inner = proj.this if isinstance(proj, exp.Alias) else proj
                    if not _type_trusted(analysis, inner, depth + 1):
                        return False
    return True


def _projection_named(select: Any, key: str, analysis: _Analysis) -> Any | None:
    named = analysis.named.get(id(select))
    if named is None:
        named = analysis.named[id(select)] = {}
        for proj in select.expressions:  # the first of a name wins
            named.setdefault(_key(proj.alias_or_name, analysis.dialect), proj)
    return named.get(key)


# --------------------------------------------------------------------------------------------
# Unknown columns
# --------------------------------------------------------------------------------------------


def find_unknown_columns(sql: str, dialect: str, upstream: Upstream,
                         types: bool = False) -> list[UnknownColumn]:
    """Columns referenced in ``sql`` that no relation in scope provides.

    Only references whose candidate relations are all fully known are judged (CTE and subquery
    columns are known when derivable); anything uncertain is skipped.
    """
    analysis = _analyze(sql, dialect, upstream, types)
    if analysis.tree is None:
        return []
    found: list[UnknownColumn] = []
    seen: set[int] = set()
    for scope in analysis.scopes:
        for column in _scope_columns(scope):
            if id(column) in seen or analysis.column_scope.get(id(column)) is not scope:
                continue
            seen.add(id(column))
            problem = _check_column(analysis, scope, column)
            if problem is not None:
                found.append(problem)
    found.sort(key=lambda u: (u.line, u.col, u.name))
    unique: list[UnknownColumn] = []
    for item in found:
        if not unique or (unique[-1].line, unique[-1].col) != (item.line, item.col):
            unique.append(item)
    return unique


def _check_column(analysis: _Analysis, scope: Any, column: Any) -> UnknownColumn | None:
    exp = _exp()

    dialect = analysis.dialect
    if not isinstance(column.this, exp.Identifier):
        return None  # column.* and friends
    start = _meta_start(column.this)
    if start is None:
        return None  # produced by qualify (star expansion, USING): exists by construction
    if column.find_ancestor(exp.Star, exp.Table, exp.Hint, exp.JSONPath) is not None:
        return None  # EXCLUDE lists, table-function arguments, hints, JSON paths
    if _lambda_bound(column, dialect):
        return None
    if len(column.parts) > 2 or column.args.get("db"):
        return None  # schema-qualified or struct access: unsure
    name = _written_name(analysis.sql, start, column.name)
    key = _key(column.name, dialect)
    if key in _PSEUDO_COLUMNS or name.startswith(("$", "@", ":")):
        return None
    line, col = _pos(analysis.sql, start)
    qualifier = column.table
    set_op = _set_operation_clause(column)
    if set_op is not None:
        # ORDER BY / LIMIT of a UNION/INTERSECT/EXCEPT: names the set operation's output
        first = _first_select(set_op)
        if qualifier or first is None or any(_as_star(p) is not None for p in first.expressions):
            return None
        outputs = {_key(n, dialect): n for n in first.named_selects}
        if key in outputs:
            return None
        return UnknownColumn(name, None, line, col, _suggest(name, list(outputs.values())))
    if qualifier:
        found = _find_source(analysis, scope, qualifier)
        if found is None:
            return None  # not a relation here: struct field, outer alias... unsure
        _, node, source = found
        cols = _source_columns(analysis, node, source)
        if cols is None or key in cols:
            return None
        return UnknownColumn(name, _written_qualifier(analysis, column), line, col,
                             _suggest(name, list(cols.values())))  # fmt: skip
    info = _chain(analysis, scope)
    if info.unknown or key in info.keys:
        return None  # a source with unknown columns; found; or a whole-row reference
    if any(not _is_ancestor(p, column) for p in info.aliases.get(key, ())):
        return None  # a select-list alias (not the one the column itself is under)
    candidates: list[str] = []
    current = scope
    while current is not None:
        for _src_name, (node, source) in current.selected_sources.items():
            candidates.extend((_source_columns(analysis, node, source) or {}).values())
        if not _sees_parent(analysis, current):
            break
        current = current.parent
    return UnknownColumn(name, None, line, col, _suggest(name, candidates))


def _set_operation_clause(column: Any) -> Any | None:
    """The set operation whose own ORDER BY (or other trailing clause) holds ``column``."""
    exp = _exp()

    child, node = column, column.parent
    while node is not None:
        if isinstance(node, exp.SetOperation):
            return node if child.arg_key not in ("this", "expression") else None
        if isinstance(node, (exp.Select, exp.Subquery)):
            return None
        child, node = node, node.parent
    return None


def _is_ancestor(node: Any, descendant: Any) -> bool:
    current = descendant.parent
    while current is not None:
        if current is node:
            return True
        current = current.parent
    return False


_WRITTEN_NAME = re.compile(r'"((?:[^"]|"")*)"|`([^`]*)`|\[([^\]]*)\]|([^\s.,()"`\[]+)')
_WRITTEN_QUALIFIER = re.compile(r'"[^"]*"|`[^`]*`|\[[^\]]*\]|[^\s.]+')


def _written_name(sql: str, start: int, default: str) -> str:
    match = _WRITTEN_NAME.match(sql, start)  # no slice: a copy per column is quadratic
    if not match:
        return default
    text = next(g for g in match.groups() if g is not None)
    return text.replace('""', '"') if match.group(1) is not None else text


def _written_qualifier(analysis: _Analysis, column: Any) -> str:
    ident = column.args.get("table")
    start = _meta_start(ident) if ident is not None else None
    if start is not None:
        match = _WRITTEN_QUALIFIER.match(analysis.sql, start)
        if match:
            return match.group(0).strip('"`[]')
    return str(column.table)


def _suggest(name: str, candidates: list[str]) -> str | None:
    from dbt_bulwark.spelling import closest

    return closest(name, candidates)


# --------------------------------------------------------------------------------------------
# Column uses (lineage)
# --------------------------------------------------------------------------------------------


def analysis_error(sql: str, dialect: str, upstream: Upstream,
                   column: str | None = None) -> str | None:
    """Why ``sql`` could not be analysed against ``upstream`` (it does not parse, or the
    analysis failed); None when it was. With ``column``: also when a reference to that name
    was left unresolved (it may be a select alias or a column of a relation whose columns are
    unknown), so its uses are unknown. Cached with the analysis :func:`column_uses` reads."""
    analysis = _analyze(sql, dialect, upstream)
    if analysis.error is None and column is not None and \
            normalize_identifier(column, dialect) in analysis.unsure:
        return (f"cannot tell whether '{column}' names a select alias or a column of a "
                "relation whose columns are unknown")
    return analysis.error


def column_uses(
    sql: str, dialect: str, upstream: Upstream, relation: str, column: str
) -> list[ColumnUse]:
    """Where ``relation``'s ``column`` is used in ``sql``.

    A use is an explicit reference (in any clause, CTE or subquery) to the column, or to a CTE /
    subquery column that passes it through unchanged, or a ``*`` that expands to such a column
    and reaches the model's output.  ``in_output`` / ``output_columns`` tell whether and where it
    flows into the model's output (through any expression).
    """
    exp = _exp()

    analysis = _analyze(sql, dialect, upstream)
    if analysis.tree is None:
        return []
    tracer = _Tracer(analysis, relation, column)
    uses: dict[tuple[int, int], ColumnUse] = {}
    for scope in analysis.scopes:
        for col in _scope_columns(scope):
            if analysis.column_scope.get(id(col)) is not scope:
                continue
            if not isinstance(col.this, exp.Identifier) or not tracer.is_target(scope, col):
                continue
            proj = _projection_of(col, scope)
            outputs = tracer.flows(scope, proj.alias_or_name) if proj is not None else set()
            start = _meta_start(col.this)
            from_star = start is None and proj is not None and id(proj) in analysis.star_origin
            if start is None and proj is not None:
                start = analysis.star_origin.get(id(proj))
            if start is None:
                start = _nearest_start(col)
            if start is None or (from_star and not outputs):
                continue
            line, ccol = _pos(sql, start)
            key = (line, ccol)
            prev = uses.get(key)
            merged = sorted(set(outputs) | set(prev.output_columns if prev else []))
            shadowed = _alias_shadowed(analysis, col) and (prev is None or prev.shadowed)
            uses[key] = ColumnUse(line, ccol, bool(merged), merged, shadowed)
    return [uses[k] for k in sorted(uses)]


# dialects where a WHERE clause cannot name a select alias (the others can, or may)
_NO_ALIAS_IN_WHERE = frozenset({"bigquery", "postgres", "tsql", "trino", "presto", "oracle"})


def _alias_shadowed(analysis: _Analysis, column: Any) -> bool:
    """Is ``column`` (a reference sqlglot took for a relation's column) written unqualified in
    the WHERE, GROUP BY, HAVING or QUALIFY of a SELECT that also has an item aliased to its
    name, of another expression? Without the relation's column the name is that alias there
    (Snowflake, DuckDB...), so losing the column breaks nothing."""
    exp = _exp()

    start = _meta_start(column.this)
    if start is None or analysis.sql[:start].rstrip().endswith("."):
        return False   # made by qualify, or written qualified
    child, node = column, column.parent
    while node is not None and not isinstance(node, exp.Select):
        if isinstance(node, (exp.Subquery, exp.Query)):
            return False
        child, node = node, node.parent
    if node is None or child.arg_key not in ("where", "group", "having", "qualify"):
        return False
    if child.arg_key == "where" and analysis.dialect in _NO_ALIAS_IN_WHERE:
        return False
    key = _key(column.name, analysis.dialect)
    proj = _projection_named(node, key, analysis)
    if not isinstance(proj, exp.Alias):
        return False
    inner = proj.this
    if isinstance(inner, exp.Column) and _key(inner.name, analysis.dialect) == key:
        return False   # `x as x`: the alias is the column itself
    clause = child.arg_key
    if inner.find(exp.Window) is not None:   # a window alias is only valid in QUALIFY
        return clause == "qualify" and not _in_aggregate(column, node)
    if inner.find(exp.AggFunc) is not None:  # an aggregate alias: HAVING / QUALIFY, unnested
        return clause in ("having", "qualify") and not _in_aggregate(column, node)
    return True


def _projection_of(column: Any, scope: Any) -> Any | None:
    """The projection of ``scope``'s select that contains ``column`` (None if elsewhere)."""
    exp = _exp()

    select = scope.expression
    if not isinstance(select, exp.Select):
        return None
    node = column
    while node is not None and node.parent is not select:
        node = node.parent
    if node is not None and node.arg_key == "expressions":
        return node
    return None


def _nearest_start(node: Any) -> int | None:
    current = node
    while current is not None:
        for sub in current.walk():
            start = _meta_start(sub) if sub is not current or current is node else None
            if start is not None:
                return start
        current = current.parent
    return None


class _Tracer:
    def __init__(self, analysis: _Analysis, relation: str, column: str) -> None:
        self.analysis = analysis
        self.dialect = analysis.dialect
        self.relation = relation
        self.column_key = normalize_identifier(column, analysis.dialect)
        self._tracked: dict[tuple[int, str], bool] = {}
        self._flows: dict[tuple[int, str], set[str]] = {}
        self.root = analysis.scopes[-1] if analysis.scopes else None
        self.root_names = self._root_names()

    def _root_names(self) -> list[str]:
        if self.root is None:
            return []
        first = _first_select(self.root.expression)
        return list(first.named_selects) if first is not None else []

    def _resolve(self, scope: Any, col: Any) -> tuple[Any, Any] | None:
        if col.table:
            found = _find_source(self.analysis, scope, col.table)
            return (found[2], found[1]) if found else None
        return None

    def is_target(self, scope: Any, col: Any) -> bool:
        exp = _exp()

        resolved = self._resolve(scope, col)
        if resolved is None:
            return False
        source, _node = resolved
        name_key = _key(col.name, self.dialect)
        if isinstance(source, exp.Table):
            rel = self.analysis.relations.get(id(source))
            return rel == self.relation and name_key == self.column_key
        return self.tracked(source, name_key)

    def tracked(self, scope: Any, name_key: str) -> bool:
        """Whether ``scope`` outputs column ``name_key`` as an unchanged copy of the target."""
        exp = _exp()

        memo = (id(scope), name_key)
        if memo in self._tracked:
            return self._tracked[memo]
        self._tracked[memo] = False  # cycle guard
        result = False
        branches = _set_branches(scope.expression)
        first = branches[0] if branches else None
        index = None
        if first is not None:
            for i, proj in enumerate(first.expressions):
                if _key(proj.alias_or_name, self.dialect) == name_key:
                    index = i
                    break
        if index is not None:
            for branch in branches:
                if index >= len(branch.expressions):
                    continue
                proj = branch.expressions[index]
                inner = proj.this if isinstance(proj, exp.Alias) else proj
                if isinstance(inner, exp.Column):
                    owner = self.analysis.column_scope.get(id(inner)) or scope
                    if self.is_target(owner, inner):
                        result = True
                        break
        self._tracked[memo] = result
        return result

    def flows(self, scope: Any, name: str) -> set[str]:
        """Output names of the model that ``scope``'s output ``name`` flows into."""
        memo = (id(scope), _key(name, self.dialect))
        if memo in self._flows:
            return self._flows[memo]
        self._flows[memo] = set()  # cycle guard
        result: set[str] = set()
        index = self._index_of(scope, name)
        owner = scope
        while owner.parent is not None and _is_set_scope_of(owner.parent, owner):
            owner = owner.parent
        if index is not None and owner is self.root:
            if index < len(self.root_names):
                result.add(self.root_names[index])
        elif index is not None:
            out_name = self._name_at(owner, index)
            if out_name is not None:
                for consumer, src_name in self._consumers().get(id(owner), ()):
                    result |= self._consumer_flows(consumer, src_name, out_name)
        self._flows[memo] = result
        return result

    def _consumers(self) -> dict[int, list[tuple[Any, str]]]:
        """{id(source scope): [(consumer scope, the alias it reads the source as)]}, in scope
        order (built once per analysis)."""
        if self.analysis.consumers is None:
            consumers: dict[int, list[tuple[Any, str]]] = {}
            for consumer in self.analysis.scopes:
                for src_name, (_node, source) in consumer.selected_sources.items():
                    consumers.setdefault(id(source), []).append((consumer, src_name))
            self.analysis.consumers = consumers
        return self.analysis.consumers

    def _index_of(self, scope: Any, name: str) -> int | None:
        first = _first_select(scope.expression)
        if first is None:
            return None
        key = _key(name, self.dialect)
        for i, proj in enumerate(first.expressions):
            if _key(proj.alias_or_name, self.dialect) == key:
                return i
        return None

    def _consumer_flows(self, consumer: Any, alias: str, name: str) -> set[str]:
        exp = _exp()

        select = consumer.expression
        if not isinstance(select, exp.Select):
            return set()
        result: set[str] = set()
        alias_key = _key(alias, self.dialect)
        name_key = _key(name, self.dialect)
        for proj in select.expressions:
            for col in proj.find_all(exp.Column):
                if (col.table and _key(col.table, self.dialect) == alias_key
                        and _key(col.name, self.dialect) == name_key):  # fmt: skip
                    result |= self.flows(consumer, proj.alias_or_name)
                    break
        return result

    def _name_at(self, scope: Any, index: int) -> str | None:
        first = _first_select(scope.expression)
        if first is None or index >= len(first.expressions):
            return None
        return str(first.expressions[index].alias_or_name)


def _is_set_scope_of(parent: Any, child: Any) -> bool:
    return any(branch is child for branch in (getattr(parent, "set_operation_scopes", None) or []))


# --------------------------------------------------------------------------------------------
# Set operations: how many columns each branch has
# --------------------------------------------------------------------------------------------

# functions that put several columns in the select list (DuckDB, Spark/Databricks, Hive,
# ClickHouse)
_MULTI_COLUMN_FUNCS = frozenset({
    "columns", "unpack", "unnest", "explode", "explode_outer", "posexplode",
    "posexplode_outer", "inline", "inline_outer", "stack", "json_tuple", "untuple",
})
_MULTI_COLUMN_CLASSES = ("Columns", "Explode", "ExplodeOuter", "Posexplode",
                         "PosexplodeOuter", "Inline", "Unnest", "Stack", "UDTF", "Aliases",
                         "QueryTransform")
_SET_KEYWORD = re.compile(r"\b(union|intersect|except|minus)\b", re.I)


@dataclass(frozen=True)
class SetBranch:
    """One branch of a set operation (a SELECT)."""

    width: int | None            # its select items; None: the SQL alone does not say (a star)
    text: str                    # the branch as sqlglot writes it (compared across revisions)
    items: str                   # its select list, shortened (for messages)
    reads: tuple[str, ...]       # tables it reads (lower-cased; "" for a table function)
    start: int | None            # offset in the SQL of its first token with a position


@dataclass(frozen=True)
class SetOperation:
    """A UNION / INTERSECT / EXCEPT and its branches (nested ones flattened)."""

    key: tuple[str, int]         # (the CTEs it is in, "" for the main query; its rank there)
    op: str                      # "UNION ALL", "UNION", "INTERSECT", "EXCEPT"
    by_name: bool                # columns matched by name (BY NAME, CORRESPONDING, OUTER)
    branches: tuple[SetBranch, ...]


@dataclass(frozen=True)
class SetOperations:
    operations: tuple[SetOperation, ...]
    ctes: dict[str, tuple[str, tuple[str, ...]] | None]   # name -> (text, reads); None: twice


def has_set_operation(sql: str) -> bool:
    """A cheap test before :func:`set_operations` (a word, in a string or not)."""
    return _SET_KEYWORD.search(sql) is not None


def set_operations(sql: str, dialect: str, texts: bool = True) -> SetOperations | None:
    """The set operations of ``sql`` and the width of each branch; None when it does not
    parse. Never raises. ``texts=False``: the shape only (keys, kinds, widths, starts), no
    branch or CTE text, select list or tables read (writing SQL back is most of the cost)."""
    if not has_set_operation(sql):
        return SetOperations((), {})
    parsed = parse_sql(sql, dialect)
    if parsed.expression is None:
        return None
    try:
        return _set_operations(parsed.expression, dialect, texts)
    except Exception:  # noqa: BLE001 - an unexpected tree shape: no opinion
        return None


def _set_operations(tree: Any, dialect: str, texts: bool) -> SetOperations:
    exp = _exp()

    ctes: dict[str, tuple[str, tuple[str, ...]] | None] = {}
    for cte in tree.find_all(exp.CTE) if texts else ():
        name = _key(cte.alias_or_name, dialect)
        entry = (cte.this.sql(dialect=dialect), _reads(cte.this, dialect))
        ctes[name] = None if name in ctes else entry
    ranks: dict[str, int] = {}
    out: list[SetOperation] = []
    for node in tree.find_all(exp.SetOperation):
        if _in_set_operation(node):
            continue          # a branch of an outer one: flattened there
        where = "/".join(reversed([_key(c.alias_or_name, dialect) for c in _ancestors(node)
                                   if isinstance(c, exp.CTE)]))
        rank = ranks[where] = ranks.get(where, -1) + 1
        ops: list[Any] = []
        leaves = _set_leaves(node, ops)
        by_name = any(o.args.get("by_name") or o.args.get("side") or o.args.get("kind")
                      or o.args.get("on") for o in ops)
        branches = tuple(_set_branch(leaf, dialect, texts) for leaf in leaves)
        out.append(SetOperation((where, rank), _op_name(node), by_name, branches))
    return SetOperations(tuple(out), ctes)


def _ancestors(node: Any) -> list[Any]:
    out = []
    parent = node.parent
    while parent is not None:
        out.append(parent)
        parent = parent.parent
    return out


def _in_set_operation(node: Any) -> bool:
    exp = _exp()

    parent = node.parent
    while isinstance(parent, exp.Subquery):
        parent = parent.parent
    return isinstance(parent, exp.SetOperation)


def _set_leaves(node: Any, ops: list[Any]) -> list[Any]:
    exp = _exp()

    if isinstance(node, exp.Subquery):
        return _set_leaves(node.this, ops)
    if isinstance(node, exp.SetOperation):
        ops.append(node)
        return _set_leaves(node.this, ops) + _set_leaves(node.expression, ops)
    return [node]


def _op_name(node: Any) -> str:
    exp = _exp()

    if isinstance(node, exp.Union):
        return "UNION" if node.args.get("distinct") else "UNION ALL"
    return "INTERSECT" if isinstance(node, exp.Intersect) else "EXCEPT"


def _set_branch(leaf: Any, dialect: str, texts: bool) -> SetBranch:
    exp = _exp()

    starts = [int(n._meta["start"]) for n in leaf.walk()
              if getattr(n, "_meta", None) and "start" in n._meta]
    start = min(starts) if starts else None
    text = leaf.sql(dialect=dialect) if texts else ""
    reads = _reads(leaf, dialect) if texts else ()
    if not isinstance(leaf, exp.Select):
        return SetBranch(None, text, type(leaf).__name__, reads, start)
    items = ", ".join(p.sql(dialect=dialect) for p in leaf.expressions) if texts else ""
    items = items if len(items) <= 40 else items[:37] + "..."
    width = None if leaf.args.get("kind") or any(_expands(p) for p in leaf.expressions) \
        else len(leaf.expressions)
    return SetBranch(width, text, items, reads, start)


def _reads(node: Any, dialect: str) -> tuple[str, ...]:
    exp = _exp()

    names: set[str] = set()
    for table in node.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            names.add("")      # a table function (read_csv(...)): its width is not the SQL's
            continue
        names.add(".".join(_key(p.name, dialect) for p in table.parts))
    return tuple(sorted(names))


def _expands(proj: Any) -> bool:
    """A select item that may stand for several columns (a star, COLUMNS(), a generator)."""
    exp = _exp()

    classes = tuple(c for c in (getattr(exp, n, None) for n in _MULTI_COLUMN_CLASSES)
                    if isinstance(c, type))
    for node in proj.walk(prune=lambda n: isinstance(n, (exp.Subquery, exp.Query))):
        if isinstance(node, (exp.Subquery, exp.Query)):
            continue          # a scalar subquery: one column
        if isinstance(node, classes):
            return True
        if isinstance(node, exp.Anonymous) and str(node.name).lower() in _MULTI_COLUMN_FUNCS:
            return True
        if isinstance(node, exp.Star):
            parent = node.parent
            while parent is not None and parent is not proj.parent:
                if isinstance(parent, exp.Func):
                    break     # count(*), row_to_json(t.*): an argument
                parent = parent.parent
            else:
                return True
    return False


def set_width_mismatch(op: SetOperation) -> tuple[int, int, int] | None:
    """(index of the first branch whose known width differs from the first known one,
    that width, the first known width), when two branches of ``op`` certainly differ."""
    if op.by_name:
        return None
    known = [(i, b.width) for i, b in enumerate(op.branches) if b.width is not None]
    if not known:
        return None
    first = known[0][1]
    for i, w in known[1:]:
        if w != first:
            return i, w, first
    return None
