"""Warehouse-free stand-ins for dbt's most used global-project macros.

dbt ships cross-database macros (``dbt.dateadd``, ``dbt.type_string``,
``dbt.current_timestamp`` ...) in its internal ``dbt`` package, which bulwark
does not load. To check the SQL of models that call them, each is replaced here
by a small Python function returning SQL that parses in the project's dialect.
Only the *shape* matters (valid SQL, the same output column names); the exact
expression dbt would emit may differ.

A project (or package) macro ``<adapter>__<name>`` / ``default__<name>`` overrides
the stand-in, like dbt's dispatch does for the ``dbt`` namespace. Names listed in
:mod:`dbt_bulwark.sql.dbt_names` but not implemented here make the SQL untrusted
(not checked), never a finding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from dbt_bulwark.sql.jinja_env import PermissiveUndefined, RenderContext

_BQ = ("bigquery",)
_SF_LIKE = ("snowflake", "redshift", "databricks", "spark", "sqlserver", "synapse", "fabric")


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _unquote(value: Any) -> str:
    text = _s(value).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _fields(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [_s(v) for v in value]
    return [_s(value)]


NAMES = frozenset({
    "current_timestamp", "current_timestamp_backcompat", "current_timestamp_in_utc_backcompat",
    "dateadd", "datediff", "date_trunc", "last_day", "safe_cast", "cast", "concat", "hash",
    "split_part", "cast_bool_to_text", "any_value", "bool_or", "listagg",
    "escape_single_quotes", "string_literal", "position", "length", "replace", "right",
    "array_construct", "array_append", "array_concat", "generate_series", "date_spine",
    "intersect", "except", "get_powers_of_two", "type_string", "type_int", "type_bigint",
    "type_float", "type_numeric", "type_timestamp", "type_boolean", "set_sql_header", "dbt"})


class LazyBuiltins(Mapping[str, Any]):
    """The stand-ins of :func:`make_builtins`, built on first use (most nodes never ask)."""

    def __init__(self, ctx: RenderContext):
        self._ctx = ctx
        self._built: dict[str, Any] | None = None

    def _get(self) -> dict[str, Any]:
        if self._built is None:
            self._built = _build(self._ctx)
        return self._built

    def __contains__(self, key: object) -> bool:
        return key in NAMES

    def __getitem__(self, key: str) -> Any:
        if key not in NAMES:
            raise KeyError(key)
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(NAMES)

    def __len__(self) -> int:
        return len(NAMES)


def make_builtins(ctx: RenderContext) -> Mapping[str, Any]:
    """Global stand-ins (name -> callable) plus the ``dbt`` namespace object (lazy)."""
    return LazyBuiltins(ctx)


def _build(ctx: RenderContext) -> dict[str, Any]:
    adapter = (ctx.adapter_type or "duckdb").lower()

    def current_timestamp(*a: Any, **k: Any) -> str:
        return "current_timestamp"

    def dateadd(datepart: Any, interval: Any, from_date_or_timestamp: Any) -> str:
        dp, n, base = _unquote(datepart), _s(interval), _s(from_date_or_timestamp)
        if adapter in _BQ:
            return f"datetime_add(cast({base} as datetime), interval {n} {dp})"
        if adapter in _SF_LIKE:
            return f"dateadd({dp}, {n}, {base})"
        return f"({base} + ((interval '1 {dp}') * ({n})))"

    def datediff(first_date: Any, second_date: Any, datepart: Any) -> str:
        dp, a, b = _unquote(datepart), _s(first_date), _s(second_date)
        if adapter in _BQ:
            return f"datetime_diff(cast({b} as datetime), cast({a} as datetime), {dp})"
        if adapter in _SF_LIKE:
            return f"datediff({dp}, {a}, {b})"
        if adapter in ("postgres", "postgresql", "alloydb"):
            return f"(extract(epoch from (({b})::timestamp - ({a})::timestamp)))"
        return f"date_diff('{dp}', cast({a} as timestamp), cast({b} as timestamp))"

    def date_trunc(datepart: Any, date: Any) -> str:
        dp = _unquote(datepart)
        if adapter in _BQ:
            return f"timestamp_trunc(cast({_s(date)} as timestamp), {dp})"
        return f"date_trunc('{dp}', {_s(date)})"

    def last_day(date: Any, datepart: Any) -> str:
        dp = _unquote(datepart)
        if adapter in _SF_LIKE or adapter in _BQ:
            return f"last_day({_s(date)}, {dp})"
        return (f"cast((date_trunc('{dp}', {_s(date)}) + interval '1 {dp}') "
                f"- interval '1 day' as date)")

    def type_(name: str) -> Callable[..., str]:
        bq = {"string": "string", "int": "int64", "bigint": "int64", "float": "float64",
              "numeric": "numeric", "timestamp": "timestamp", "boolean": "bool"}
        other = {"string": "varchar", "int": "integer", "bigint": "bigint", "float": "float",
                 "numeric": "numeric(28,6)", "timestamp": "timestamp", "boolean": "boolean"}

        def fn(*a: Any, **k: Any) -> str:
            return (bq if adapter in _BQ else other)[name]
        return fn

    def safe_cast(field: Any, type: Any) -> str:  # dbt's argument name
        if adapter in _BQ:
            return f"safe_cast({_s(field)} as {_s(type)})"
        if adapter in ("duckdb", "snowflake", "sqlserver", "synapse", "fabric", "trino",
                       "databricks", "spark"):
            return f"try_cast({_s(field)} as {_s(type)})"
        return f"cast({_s(field)} as {_s(type)})"

    def cast(field: Any, type: Any) -> str:
        return f"cast({_s(field)} as {_s(type)})"

    def concat(fields: Any) -> str:
        return f"concat({', '.join(_fields(fields))})"

    def hash_(field: Any) -> str:
        text = "string" if adapter in _BQ else "varchar"
        return f"md5(cast({_s(field)} as {text}))"

    def split_part(string_text: Any, delimiter_text: Any, part_number: Any) -> str:
        if adapter in _BQ:
            return (f"split({_s(string_text)}, {_s(delimiter_text)})"
                    f"[safe_offset({_s(part_number)} - 1)]")
        return f"split_part({_s(string_text)}, {_s(delimiter_text)}, {_s(part_number)})"

    def cast_bool_to_text(field: Any) -> str:
        return f"cast({_s(field)} as {'string' if adapter in _BQ else 'varchar'})"

    def any_value(expression: Any) -> str:
        return f"any_value({_s(expression)})"

    def bool_or(expression: Any) -> str:
        if adapter == "snowflake":
            return f"boolor_agg({_s(expression)})"
        if adapter in _BQ:
            return f"logical_or({_s(expression)})"
        return f"bool_or({_s(expression)})"

    def listagg(measure: Any, delimiter_text: Any = "','", order_by_clause: Any = None,
                limit_num: Any = None) -> str:
        order = f" {_s(order_by_clause)}" if order_by_clause else ""
        if adapter in ("snowflake", "redshift"):
            within = f" within group ({_s(order_by_clause)})" if order_by_clause else ""
            return f"listagg({_s(measure)}, {_s(delimiter_text)}){within}"
        return f"string_agg({_s(measure)}, {_s(delimiter_text)}{order})"

    def escape_single_quotes(expression: Any) -> str:
        return _s(expression).replace("'", "\\'" if adapter in _BQ else "''")

    def string_literal(value: Any) -> str:
        return "'" + _s(value).replace("'", "''") + "'"

    def position(substring_text: Any, string_text: Any) -> str:
        return f"position({_s(substring_text)} in {_s(string_text)})"

    def length(expression: Any) -> str:
        return f"length({_s(expression)})"

    def replace(field: Any, old_chars: Any, new_chars: Any) -> str:
        return f"replace({_s(field)}, {_s(old_chars)}, {_s(new_chars)})"

    def right(string_text: Any, length_expression: Any) -> str:
        return f"right({_s(string_text)}, {_s(length_expression)})"

    def array_construct(inputs: Any = None, data_type: Any = None) -> str:
        items = ", ".join(_fields(inputs or []))
        if adapter == "snowflake":
            return f"array_construct({items})"
        if adapter in _BQ:
            return f"[{items}]"
        return f"array[{items}]"

    def array_append(array: Any, new_element: Any) -> str:
        return f"array_append({_s(array)}, {_s(new_element)})"

    def array_concat(array_1: Any, array_2: Any) -> str:
        return f"array_cat({_s(array_1)}, {_s(array_2)})"

    def generate_series(upper_bound: Any) -> str:
        try:
            bound = max(1, int(str(upper_bound).strip()))
        except ValueError:
            bound = 1024
        powers = max(1, (bound - 1).bit_length())
        joins = "\n    cross join ".join(f"p as p{i}" for i in range(powers))
        total = " + ".join(f"p{i}.generated_number * {2 ** i}" for i in range(powers))
        return (f"with p as (select 0 as generated_number union all select 1),\n"
                f"unioned as (\n  select {total} + 1 as generated_number\n"
                f"  from {joins}\n)\nselect * from unioned\n"
                f"where generated_number <= {bound}\norder by generated_number")

    def date_spine(datepart: Any, start_date: Any, end_date: Any) -> str:
        dp = _unquote(datepart)
        step = dateadd(datepart, "generated_number - 1", start_date)
        return (f"select * from (\n  select {step} as date_{dp}\n"
                f"  from ({generate_series(1024)}) as rawdata\n) as all_periods\n"
                f"where date_{dp} <= {_s(end_date)}")

    def intersect() -> str:
        return "intersect"

    def except_() -> str:
        return "except" if adapter not in _BQ else "except distinct"

    def get_powers_of_two(upper_bound: Any) -> int:
        try:
            return max(1, (int(str(upper_bound)) - 1).bit_length())
        except ValueError:
            return 10

    def set_sql_header(config: Any = None, caller: Any = None) -> str:
        # dbt: {{ config.set('sql_header', caller()) }} -- renders nothing in the model
        header = caller() if callable(caller) else ""
        setter = getattr(config, "set", None)
        if callable(setter) and not isinstance(config, PermissiveUndefined):
            setter("sql_header", str(header))
        return ""

    funcs: dict[str, Callable[..., Any]] = {
        "set_sql_header": set_sql_header,
        "current_timestamp": current_timestamp,
        "current_timestamp_backcompat": current_timestamp,
        "current_timestamp_in_utc_backcompat": current_timestamp,
        "dateadd": dateadd, "datediff": datediff, "date_trunc": date_trunc,
        "last_day": last_day, "safe_cast": safe_cast, "cast": cast, "concat": concat,
        "hash": hash_, "split_part": split_part, "cast_bool_to_text": cast_bool_to_text,
        "any_value": any_value, "bool_or": bool_or, "listagg": listagg,
        "escape_single_quotes": escape_single_quotes, "string_literal": string_literal,
        "position": position, "length": length, "replace": replace, "right": right,
        "array_construct": array_construct, "array_append": array_append,
        "array_concat": array_concat, "generate_series": generate_series,
        "date_spine": date_spine, "intersect": intersect, "except": except_,
        "get_powers_of_two": get_powers_of_two,
    }
    for name in ("string", "int", "bigint", "float", "numeric", "timestamp", "boolean"):
        funcs[f"type_{name}"] = type_(name)

    def overridable(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        # a project/package `<adapter>__name` or `default__name` wins, as dbt's dispatch does
        override: list[Any] = []   # the macro that wins, looked up once per context

        def call(*args: Any, **kwargs: Any) -> Any:
            if not override:
                override.append(next((m for m in (ctx.macros.find(f"{prefix}__{name}")
                                                  for prefix in (adapter, "default"))
                                      if m is not None), None))
            if override[0] is not None:
                return ctx._macro_callable(override[0])(*args, **kwargs)
            try:
                return fn(*args, **kwargs)
            except TypeError:
                # called with arguments dbt's macro accepts but the stand-in does not
                ctx.warehouse_calls.append(f"dbt.{name} (arguments not understood)")
                return PermissiveUndefined(obj=None, name=name)
        return call

    out: dict[str, Any] = {name: overridable(name, fn) for name, fn in funcs.items()}
    out["dbt"] = DbtNamespace(ctx, out)
    return out


class DbtNamespace:
    """``dbt.<macro>``: the stand-ins above; anything else is an untrusted unknown."""

    def __init__(self, ctx: RenderContext, funcs: dict[str, Any]):
        self._ctx = ctx
        self._funcs = funcs

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._funcs:
            return self._funcs[name]
        return PermissiveUndefined(name=f"dbt.{name}")
