"""Tests for dbt_bulwark.sql.columns, including a DuckDB oracle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

import subprocess
import sys
from pathlib import Path

import pytest

from dbt_bulwark.sql.columns import (
    ColumnUse,
    OutputSchema,
    UnknownColumn,
    analysis_error,
    base_type,
    column_uses,
    dialect_for_adapter,
    find_unknown_columns,
    infer_output_columns,
    is_valid_type,
    normalize_identifier,
    parse_sql,
    same_column,
    types_compatible,
)

duckdb = pytest.importorskip("duckdb")

UPSTREAM: dict[str, dict[str, str | None] | None] = {
    "__ref__orders": {
        "id": "INTEGER",
        "customer_id": "BIGINT",
        "status": "VARCHAR",
        "amount": "DECIMAL(18,2)",
        "ordered_at": "TIMESTAMP",
        "tags": "VARCHAR[]",
        "info": "STRUCT(city VARCHAR, zip INTEGER)",
        "is_paid": "BOOLEAN",
    },
    "__src__raw__customers": {
        "id": "BIGINT",
        "name": "VARCHAR",
        "created": "DATE",
        "score": "DOUBLE",
    },
    "__ref__payments": {
        "payment_id": "INTEGER",
        "order_id": "INTEGER",
        "amount": "DOUBLE",
        "method": "VARCHAR",
    },
}
UNKNOWN_UP: dict[str, dict[str, str | None] | None] = {**UPSTREAM, "__ref__opaque": None}


@pytest.fixture(scope="module")
def con() -> Iterator[DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")
    for rel, cols in UPSTREAM.items():
        assert cols is not None
        body = ", ".join(f'"{name}" {dtype}' for name, dtype in cols.items())
        connection.execute(f'create table "{rel}" ({body})')
    yield connection
    connection.close()


# ---------------------------------------------------------------------------------------------
# dialects, identifiers, types
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "dialect"),
    [
        (None, "duckdb"),
        ("", "duckdb"),
        ("duckdb", "duckdb"),
        ("postgres", "postgres"),
        ("Snowflake", "snowflake"),
        ("bigquery", "bigquery"),
        ("redshift", "redshift"),
        ("databricks", "databricks"),
        ("spark", "spark"),
        ("trino", "trino"),
        ("athena", "athena"),
        ("sqlserver", "tsql"),
        ("fabric", "tsql"),
        ("clickhouse", "clickhouse"),
        ("oracle", "oracle"),
        ("no-such-adapter", "duckdb"),
    ],
)
def test_dialect_for_adapter(adapter: str | None, dialect: str) -> None:
    assert dialect_for_adapter(adapter) == dialect


@pytest.mark.parametrize(
    ("name", "dialect", "quoted", "expected"),
    [
        ("MyCol", "snowflake", False, "MYCOL"),
        ("MyCol", "snowflake", True, "MyCol"),
        ("MyCol", "postgres", False, "mycol"),
        ("MyCol", "postgres", True, "MyCol"),
        ("MyCol", "duckdb", True, "mycol"),
        ("MyCol", "bigquery", False, "mycol"),
        ("MyCol", "redshift", True, "mycol"),
        ("MyCol", "clickhouse", False, "MyCol"),
    ],
)
def test_normalize_identifier(name: str, dialect: str, quoted: bool, expected: str) -> None:
    assert normalize_identifier(name, dialect, quoted) == expected


def test_same_column() -> None:
    assert same_column("Id", "ID", "snowflake")
    assert same_column("Id", "id", "duckdb")
    assert not same_column("Id", "id", "clickhouse")
    assert not same_column("id", "idx", "duckdb")


@pytest.mark.parametrize(
    ("a", "b", "dialect"),
    [
        ("varchar", "text", "postgres"),
        ("character varying(20)", "varchar", "postgres"),
        ("string", "varchar", "duckdb"),
        ("int", "integer", "duckdb"),
        ("int4", "INTEGER", "postgres"),
        ("bigint", "int8", "postgres"),
        ("long", "bigint", "databricks"),
        ("float8", "double precision", "postgres"),
        ("double", "float8", "duckdb"),
        ("bool", "boolean", "duckdb"),
        ("numeric(10,2)", "decimal", "postgres"),
        ("timestamp", "timestamp without time zone", "postgres"),
        ("datetime", "timestamp", "duckdb"),
        ("datetime", "timestamp_ntz", "snowflake"),
        ("int", "number(38,0)", "snowflake"),
        ("int64", "integer", "bigquery"),
        ("string", "varchar", "bigquery"),
        ("timestamptz", "timestamp with time zone", "duckdb"),
    ],
)
def test_base_type_aliases(a: str, b: str, dialect: str) -> None:
    assert base_type(a, dialect) == base_type(b, dialect)
    assert types_compatible(a, b, dialect)


@pytest.mark.parametrize(
    ("a", "b", "dialect"),
    [
        ("datetime", "timestamp", "bigquery"),  # BigQuery TIMESTAMP is tz-aware
        ("int", "bigint", "duckdb"),
        ("varchar", "integer", "postgres"),
        ("timestamp", "timestamptz", "duckdb"),
        ("date", "timestamp", "snowflake"),
        ("float", "double", "duckdb"),
    ],
)
def test_base_type_differences(a: str, b: str, dialect: str) -> None:
    assert base_type(a, dialect) != base_type(b, dialect)
    assert not types_compatible(a, b, dialect)


def test_base_type_dbt_semantics() -> None:
    assert base_type("VARCHAR(255)", "duckdb") == "varchar"
    assert base_type("Decimal(18, 2)", "duckdb") == "decimal"
    assert base_type("my_enum", "postgres") == "my_enum"  # user-defined: dbt semantics
    assert base_type("%%garbage(", "duckdb") == "%%garbage"
    assert base_type("struct(a int)", "duckdb") == "struct"


def test_types_compatible_unknown_is_compatible() -> None:
    assert types_compatible("integer", None, "duckdb")
    assert types_compatible(None, "integer", "duckdb")


@pytest.mark.parametrize(
    ("data_type", "dialect", "ok"),
    [
        ("integer", "duckdb", True),
        ("varchar(20)", "postgres", True),
        ("decimal(18, 2)", "snowflake", True),
        ("struct(a int, b varchar)", "duckdb", True),
        ("array<struct<a int64>>", "bigquery", True),
        ("timestamp with time zone", "postgres", True),
        ("number(38,0)", "snowflake", True),
        ("my_enum", "postgres", True),  # user-defined types exist in postgres
        ("public.my_enum", "postgres", True),
        ("my_enum", "snowflake", False),  # ... but not in snowflake
        ("integr", "duckdb", False),  # near-miss of a built-in
        ("varchr(10)", "postgres", False),
        ("varchar(", "duckdb", False),
        ("int not null", "duckdb", False),
        ("", "duckdb", False),
        ("int; drop table x", "duckdb", False),
    ],
)
def test_is_valid_type(data_type: str, dialect: str, ok: bool) -> None:
    assert is_valid_type(data_type, dialect) is ok


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


def test_parse_sql_cached_and_errors() -> None:
    assert parse_sql("select 1", "duckdb") is parse_sql("select 1", "duckdb")
    bad = parse_sql("select a,\n  from (", "duckdb")
    assert not bad.ok and bad.error and bad.error.startswith("could not parse SQL")
    assert bad.line == 2
    assert not parse_sql("select 'unterminated", "duckdb").ok
    assert not parse_sql("select 1; select 2", "duckdb").ok
    assert parse_sql("select 1;", "duckdb").ok


def test_module_import_does_not_import_sqlglot() -> None:
    code = "import sys, dbt_bulwark.sql.columns; print('sqlglot' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# infer_output_columns
# ---------------------------------------------------------------------------------------------

ORACLE_OUTPUT_QUERIES = [
    "select * from __ref__orders",
    "select id, status as st, Amount from __ref__orders",
    """with o as (select * from __ref__orders),
    c as (select id as customer_id, name from __src__raw__customers)
    select o.id, c.name, o.amount, customer_id from o join c using (customer_id)""",
    "select * exclude (tags, info) from __ref__orders",
    "select * replace (status || '!' as status) from __ref__orders",
    """select o.*, c.name from __ref__orders o
    left join __src__raw__customers c on o.customer_id = c.id""",
    """select status, count(*) as n, max(amount) as mx, min(ordered_at) as first_at,
    count(distinct customer_id) as nc from __ref__orders group by status""",
    """select id, row_number() over (partition by customer_id order by ordered_at) as rn,
    lag(amount) over (order by id) as prev from __ref__orders""",
    """select cast(id as varchar) as id_s, id::bigint as id_b, try_cast(status as integer) as st_i,
    ordered_at::date as d from __ref__orders""",
    "select 1 as one, 'x' as s, true as b, date '2020-01-01' as d, 2.5::double as f",
    """select id, status from __ref__orders
    union all select payment_id, method from __ref__payments""",
    """select x.customer_id, x.total from (select customer_id, sum(amount) as total
    from __ref__orders group by 1) as x""",
    "select id, amount + 1 as a1, id * 2 as i2, id + customer_id as s, -id as neg from __ref__orders",
    """select coalesce(status, 'none') as st, upper(status) as up, status like 'a%' as is_a,
    id > 3 and is_paid as flag from __ref__orders""",
    "select case when is_paid then status else 'unpaid' end as paid from __ref__orders",
    "select info.city as city, info.zip as zip, tags as t from __ref__orders",
    """with a as (select id, amount from __ref__orders),
    b as (select * from a where amount > 0)
    select b.*, p.method from b join __ref__payments p on p.order_id = b.id""",
    """select id, amount from __ref__orders
    qualify row_number() over (partition by customer_id order by amount desc) = 1""",
    """select o.id, (select max(p.amount) from __ref__payments p where p.order_id = o.id) as mx
    from __ref__orders o""",
    "select id * 2 as d, d + 1 as e from __ref__orders",
    """select * from (select id, status from __ref__orders) as s(order_id, order_status)""",
    "select c.* exclude (score), 'k' as k from __src__raw__customers as c",
]


@pytest.mark.parametrize("sql", ORACLE_OUTPUT_QUERIES)
def test_infer_output_columns_matches_duckdb(con: DuckDBPyConnection, sql: str) -> None:
    described = con.execute(f"describe {sql}").fetchall()
    expected = [(row[0], row[1]) for row in described]
    schema = infer_output_columns(sql, "duckdb", UPSTREAM)
    assert schema.complete, schema.reason
    assert [c.name for c in schema.columns] == [name for name, _ in expected]
    for column, (name, duck_type) in zip(schema.columns, expected, strict=True):
        if column.data_type is not None:
            assert types_compatible(column.data_type, duck_type, "duckdb"), (
                name,
                column.data_type,
                duck_type,
            )


def test_infer_types_never_guessed(con: DuckDBPyConnection) -> None:
    sql = """select sum(id) as s, avg(amount) as a, id / 2 as d, 1.5 as lit, round(amount, 1) as r,
    x.total from __ref__orders, (select sum(id) as total from __ref__orders) as x group by all"""
    schema = infer_output_columns(sql, "duckdb", UPSTREAM)
    assert schema.complete
    assert [c.data_type for c in schema.columns] == [None] * 6


def test_infer_incomplete_cases() -> None:
    star = infer_output_columns("select * from __ref__opaque", "duckdb", UNKNOWN_UP)
    assert not star.complete and star.reason == "select * from unknown relation __ref__opaque"
    partial = infer_output_columns("select a, b as c from __ref__opaque", "duckdb", UNKNOWN_UP)
    assert partial.complete and partial.names == ["a", "c"]
    assert all(c.data_type is None for c in partial.columns)
    missing = infer_output_columns("select * from not_in_upstream", "duckdb", UPSTREAM)
    assert not missing.complete and "not_in_upstream" in (missing.reason or "")
    unaliased = infer_output_columns("select count(*) from __ref__orders", "duckdb", UPSTREAM)
    assert not unaliased.complete and "alias" in (unaliased.reason or "")
    bad = infer_output_columns("select from where", "duckdb", UPSTREAM)
    assert bad == OutputSchema([], False, bad.reason)
    assert (bad.reason or "").startswith("could not parse SQL")
    ddl = infer_output_columns("create table x (a int)", "duckdb", UPSTREAM)
    assert not ddl.complete


def test_infer_snowflake_names_and_types() -> None:
    up = {"__ref__t": {"ID": "NUMBER(38,0)", "NAME": "VARCHAR"}}
    sql = 'select id, name as "Display", id + 1 as next_id, * exclude (name) from __ref__t'
    schema = infer_output_columns(sql, "snowflake", up)
    assert schema.complete, schema.reason
    assert schema.names == ["ID", "Display", "NEXT_ID", "ID"]
    assert types_compatible(schema.columns[0].data_type, "int", "snowflake")


def test_infer_expression_sql_and_union_types() -> None:
    sql = "select id as a from __ref__orders union all select customer_id from __ref__orders"
    schema = infer_output_columns(sql, "duckdb", UPSTREAM)
    assert schema.names == ["a"]
    assert schema.columns[0].data_type is None  # INTEGER vs BIGINT: warehouse decides
    assert "id" in schema.columns[0].expression_sql


# ---------------------------------------------------------------------------------------------
# find_unknown_columns (DuckDB oracle)
# ---------------------------------------------------------------------------------------------

INVALID_QUERIES = [
    ("select nope from __ref__orders", "nope"),
    ("select o.nope from __ref__orders o", "nope"),
    ("with c as (select id from __ref__orders) select c.status from c", "status"),
    ("select id from __ref__orders where statuss = 'x'", "statuss"),
    ("select o.id from __ref__orders o join __ref__payments p on p.order_idd = o.id", "order_idd"),
    ('select id,\n  "Stat us"\nfrom __ref__orders', "Stat us"),
    ("select status, count(*) as n from __ref__orders group by stat", "stat"),
    (
        """select id from __ref__orders o where exists (
        select 1 from __ref__payments p where p.order_id = o.id and p.bogus > 1)""",
        "bogus",
    ),
    ("with a as (select id as order_id from __ref__orders) select id from a", "id"),
    ("select id from __ref__orders union all select bogus from __ref__payments", "bogus"),
    ("select sum(amount) over (partition by stat) as s from __ref__orders", "stat"),
    ("select id from __ref__orders order by nothing", "nothing"),
    ("select x.total from (select id as total_id from __ref__orders) as x", "total"),
    ("select nonexistent", "nonexistent"),
    ("select id from __ref__orders union all select order_id from __ref__payments order by idd",
     "idd"),
]

VALID_QUERIES = [
    # ORDER BY at the end of a UNION ALL chain names the union's output columns (issue 10)
    """select id, status from __ref__orders
    union all select order_id, method from __ref__payments
    union all select id, 'x' as status from __ref__orders
    order by status, case when status = 'a' then id end desc, id limit 10""",
    "select id as k from __ref__orders union select order_id from __ref__payments order by k",
    "select status as s from __ref__orders order by s",
    "select status as s, count(*) as n from __ref__orders group by s",
    "select id * 2 as d, d + 1 as e from __ref__orders",
    "select id, row_number() over (order by id) as rn from __ref__orders qualify rn = 1",
    "select info.city from __ref__orders",
    "select o.info.city, o.info['zip'] from __ref__orders o",
    """select customer_id, name from __ref__orders
    join (select id as customer_id, name from __src__raw__customers) using (customer_id)""",
    "select g from generate_series(1, 3) as t(g)",
    "select u from __ref__orders, unnest(tags) as t(u)",
    "select unnest(tags) as tag from __ref__orders",
    "select list_transform(tags, lambda x: upper(x)) as up from __ref__orders",
    "select list_filter(tags, lambda x: x <> status) as f from __ref__orders",
    "select * exclude (tags) from __ref__orders",
    "select * replace (upper(status) as status) from __ref__orders",
    """select id from __ref__orders o
    where exists (select 1 from __ref__payments p where p.order_id = o.id and amount > 0)""",
    """select id from __ref__orders o
    where exists (select 1 from __ref__payments p where order_id = id)""",
    "select o from __ref__orders o",
    "select status, count(*) as n from __ref__orders group by all order by all",
    'select "STATUS", Status from __ref__orders',
    "select id from __ref__orders where status in (select method from __ref__payments)",
    "select s.a from (select {'a': 1} as s)",
    """with recursive r(n) as (select 1 union all select n + 1 from r where n < 3)
    select n from r""",
    "select v.a, v.b from (values (1, 2)) as v(a, b)",
    "select * from __ref__orders o left join __ref__payments p on p.order_id = o.id",
    "select id, status from __ref__orders o where o.amount > (select avg(p.amount) from __ref__payments p)",
    """with base as (select * from __ref__orders)
    select b.id, c.name from base b join __src__raw__customers c on c.id = b.customer_id""",
]


def _duckdb_rejects_column(con: DuckDBPyConnection, sql: str) -> bool:
    try:
        con.execute(f"describe {sql}")
    except duckdb.BinderException as exc:
        message = str(exc)
        assert "not found" in message or "does not have a column" in message \
            or "Could not ORDER BY column" in message, message
        return True
    return False


@pytest.mark.parametrize(("sql", "name"), INVALID_QUERIES)
def test_unknown_columns_reported_like_duckdb(con: DuckDBPyConnection, sql: str, name: str) -> None:
    assert _duckdb_rejects_column(con, sql)
    found = find_unknown_columns(sql, "duckdb", UPSTREAM)
    assert [u.name for u in found] == [name]


@pytest.mark.parametrize("sql", VALID_QUERIES)
def test_no_false_positive_on_duckdb_valid_queries(con: DuckDBPyConnection, sql: str) -> None:
    assert not _duckdb_rejects_column(con, sql)
    assert find_unknown_columns(sql, "duckdb", UPSTREAM) == []


def test_unknown_column_positions_and_suggestions() -> None:
    sql = 'select id,\n   o."Stat us", amount\nfrom __ref__orders o\nwhere  stauts = 1'
    found = find_unknown_columns(sql, "duckdb", UPSTREAM)
    assert found == [
        UnknownColumn("Stat us", "o", 2, 6, "status"),
        UnknownColumn("stauts", None, 4, 8, "status"),
    ]
    lines = sql.splitlines()
    assert lines[1][5:].startswith('"Stat us"')
    assert lines[3][7:].startswith("stauts")


def test_unknown_columns_skipped_when_relations_unknown() -> None:
    assert find_unknown_columns("select nope from __ref__opaque", "duckdb", UNKNOWN_UP) == []
    assert find_unknown_columns("select nope from not_upstream", "duckdb", UPSTREAM) == []
    mixed = "select o.nope2, q.x from __ref__orders o join __ref__opaque q on q.id = o.id"
    assert [u.name for u in find_unknown_columns(mixed, "duckdb", UNKNOWN_UP)] == ["nope2"]
    unqualified = "select nope from __ref__orders o join __ref__opaque q on q.id = o.id"
    assert find_unknown_columns(unqualified, "duckdb", UNKNOWN_UP) == []
    star_cte = "with a as (select * from __ref__opaque) select a.whatever from a"
    assert find_unknown_columns(star_cte, "duckdb", UNKNOWN_UP) == []
    assert find_unknown_columns("select from where", "duckdb", UPSTREAM) == []
    assert find_unknown_columns("select x from read_csv('f.csv')", "duckdb", UPSTREAM) == []


def test_unknown_columns_other_dialects() -> None:
    up = {"__ref__t": {"ID": "NUMBER", "PAYLOAD": "VARIANT"}}
    assert find_unknown_columns("select Id, payload:a.b from __ref__t", "snowflake", up) == []
    found = find_unknown_columns('select "id" from __ref__t', "snowflake", up)
    assert [u.name for u in found] == ["id"]  # quoted lower-case is not ID in Snowflake
    lateral = "select f.value:x as x from __ref__t, lateral flatten(input => payload) f"
    assert find_unknown_columns(lateral, "snowflake", up) == []
    bq = {"__ref__t": {"id": "INT64", "arr": "ARRAY<STRUCT<k STRING>>"}}
    assert find_unknown_columns("select a.k from __ref__t, unnest(arr) as a", "bigquery", bq) == []
    assert find_unknown_columns("select ID from __ref__t", "bigquery", bq) == []


# ---------------------------------------------------------------------------------------------
# column_uses
# ---------------------------------------------------------------------------------------------

LINEAGE_SQL = """with orders as (
    select * from __ref__orders
),
customers as (select id as customer_id, name from __src__raw__customers),
final as (
    select o.id, o.status as order_status, c.name, o.amount * 2 as dbl
    from orders o join customers c on o.customer_id = c.customer_id
    where o.is_paid
)
select * from final"""


def test_column_uses_through_ctes_and_stars() -> None:
    uses = column_uses(LINEAGE_SQL, "duckdb", UPSTREAM, "__ref__orders", "status")
    assert uses == [
        ColumnUse(2, 12, True, ["order_status"]),  # the * in the orders CTE
        ColumnUse(6, 20, True, ["order_status"]),  # o.status
        ColumnUse(10, 8, True, ["order_status"]),  # the final * passes final.order_status on
    ]
    amount = column_uses(LINEAGE_SQL, "duckdb", UPSTREAM, "__ref__orders", "amount")
    assert amount == [ColumnUse(2, 12, True, ["dbl"]), ColumnUse(6, 54, True, ["dbl"])]
    paid = column_uses(LINEAGE_SQL, "duckdb", UPSTREAM, "__ref__orders", "is_paid")
    assert paid == [ColumnUse(8, 13, False, [])]  # the star copy goes nowhere: not a use
    cust = column_uses(LINEAGE_SQL, "duckdb", UPSTREAM, "__ref__orders", "customer_id")
    assert cust == [ColumnUse(7, 41, False, [])]
    name = column_uses(LINEAGE_SQL, "duckdb", UPSTREAM, "__src__raw__customers", "name")
    assert name == [
        ColumnUse(4, 41, True, ["name"]),
        ColumnUse(6, 46, True, ["name"]),
        ColumnUse(10, 8, True, ["name"]),
    ]
    assert column_uses(LINEAGE_SQL, "duckdb", UPSTREAM, "__ref__orders", "tags") == []
    assert column_uses(LINEAGE_SQL, "duckdb", UPSTREAM, "__ref__payments", "amount") == []


def test_column_uses_root_star_union_and_subquery() -> None:
    sql = "select * exclude (tags) from __ref__orders"
    assert column_uses(sql, "duckdb", UPSTREAM, "__ref__orders", "status") == [
        ColumnUse(1, 8, True, ["status"])
    ]
    assert column_uses(sql, "duckdb", UPSTREAM, "__ref__orders", "tags") == []
    union = "select id, status as s from __ref__orders\nunion all\nselect payment_id, method from __ref__payments"
    assert column_uses(union, "duckdb", UPSTREAM, "__ref__payments", "method") == [
        ColumnUse(3, 20, True, ["s"])
    ]
    sub = """select id from __ref__orders o
where exists (select 1 from __ref__payments p where p.order_id = o.id)"""
    assert column_uses(sub, "duckdb", UPSTREAM, "__ref__payments", "order_id") == [
        ColumnUse(2, 55, False, [])
    ]
    assert column_uses(sub, "duckdb", UPSTREAM, "__ref__orders", "id") == [
        ColumnUse(1, 8, True, ["id"]),
        ColumnUse(2, 68, False, []),
    ]
    grouped = "select customer_id, count(*) as n from __ref__orders group by customer_id"
    assert [
        u.line for u in column_uses(grouped, "duckdb", UPSTREAM, "__ref__orders", "customer_id")
    ] == [1, 1]
    assert column_uses("select from where", "duckdb", UPSTREAM, "__ref__orders", "id") == []


# ---------------------------------------------------------------------------------------------
# performance: bench/columns_bench.py (--max-ms 100), not a wall-clock limit in a unit test
# ---------------------------------------------------------------------------------------------


def test_macro_return_inside_the_same_file_is_a_value_not_a_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 10: BLK140 on 'all_eligible_employees'. A macro that calls another macro of
    the same file, which does {{ return(var(...)) }}, and quotes the value: dbt wraps
    every macro, so the returned value is the inner call's result (a string literal in
    the SQL); bulwark had ended the outer macro with it (a bare identifier, a column)."""
    import json

    from dbt_bulwark.cli import main

    files = {
        "dbt_project.yml": "name: lit\nversion: '1.0.0'\nconfig-version: 2\nprofile: lit\n",
        "macros/scope.sql": (
            "{% macro get_scope() %}\n"
            "  {{ return(var('scope_v', 'all_eligible_employees')) }}\n"
            "{% endmacro %}\n\n"
            "{% macro eligible(col) %}\n"
            "  {% set scope = get_scope() %}\n"
            "  {{ eligible_in(col, \"'\" ~ scope ~ \"'\") }}\n"
            "{% endmacro %}\n\n"
            "{% macro eligible_in(col, scope_expression) %}\n"
            "  case when {{ scope_expression }} = 'new_hires_only' then {{ col }} > 1\n"
            "       when {{ scope_expression }} = 'all_eligible_employees' then true\n"
            "       else false end\n"
            "{% endmacro %}\n"
        ),
        "models/a.sql": "select 1 as id, 2 as x\n",
        "models/b.sql": "select id, {{ eligible('x') }} as ok from {{ ref('a') }}\n",
    }
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    rc = main(["fast-compile", "--project-dir", str(tmp_path), "--repo-root", str(tmp_path),
               "--format", "json", "--no-cache", "--all-files"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert [f for f in findings if f["code"] == "BLK140"] == []
    assert rc == 0, findings


# --------------------------------------------------------------------------------------------
# Names sqlglot cannot resolve (a select alias, or a column of a relation whose columns are
# unknown): only those references are set aside, the rest of the query is still judged
# --------------------------------------------------------------------------------------------

# `carriers` and `scans` are relations whose columns are unknown (undeclared sources)
UNSURE_UPSTREAM: dict[str, dict[str, str | None] | None] = {
    "__ref__parcels": {"parcel_id": "INTEGER", "weight_kg": "INTEGER", "carrier_id": "INTEGER",
                       "sent_at": "TIMESTAMP"},
    "carriers": None,
    "scans": None,
}
_JOINED = "from __ref__parcels p join carriers c on c.carrier_id = p.carrier_id\n"
UNSURE_SQL = {
    "where": ("select p.{col}, p.weight_kg * 2 as double_weight, c.carrier_name\n" + _JOINED
              + "where double_weight > 10\n"),
    "qualify": ("select p.{col}, c.carrier_name,\n"
                "    row_number() over (partition by p.carrier_id order by c.rank) as rn\n"
                + _JOINED + "qualify rn = 1\n"),
    "group_by": ("select p.{col}, c.region as area, count(*) as n\n" + _JOINED
                 + "group by p.{col}, area\n"),
    "exists": ("select p.{col} from __ref__parcels p\nwhere exists (select 1 from scans s\n"
               "    join carriers c on c.carrier_id = s.carrier_id where scan_code = p.{col})\n"),
    "scalar": ("select p.{col},\n    (select max(scanned_at) from scans s, carriers c\n"
               "     where s.cid = c.cid and parcel_ref = p.{col}) as last_scan\n"
               "from __ref__parcels p\n"),
}


@pytest.mark.parametrize("dialect", ["snowflake", "duckdb", "bigquery", "databricks"])
@pytest.mark.parametrize("case", sorted(UNSURE_SQL))
def test_unsure_name_leaves_the_rest_of_the_query_judged(case: str, dialect: str) -> None:
    valid = UNSURE_SQL[case].format(col="parcel_id")
    # valid code stays clean: the alias uses and the unknown relations' columns are not judged
    assert find_unknown_columns(valid, dialect, UNSURE_UPSTREAM) == []
    assert analysis_error(valid, dialect, UNSURE_UPSTREAM) is None
    # the qualified uses of the known relation's column are found
    uses = column_uses(valid, dialect, UNSURE_UPSTREAM, "__ref__parcels", "parcel_id")
    assert uses and uses[0].line == 1 and uses[0].in_output
    out = infer_output_columns(valid, dialect, UNSURE_UPSTREAM)
    assert out.complete, out.reason
    assert out.names[0].lower() == "parcel_id"
    # ... and a qualified column the known relation does not have is reported at each use
    broken = UNSURE_SQL[case].format(col="parcel_code")
    unknown = find_unknown_columns(broken, dialect, UNSURE_UPSTREAM)
    assert unknown and {(u.name, u.table) for u in unknown} == {("parcel_code", "p")}
    assert (unknown[0].line, unknown[0].col) == (1, 10)
    assert unknown[0].suggestion == "parcel_id"


def test_unsure_name_is_said_for_that_column_only() -> None:
    sql = UNSURE_SQL["where"].format(col="parcel_id")
    # the WHERE's `double_weight` is the alias or a column of `carriers`: its uses are unknown
    why = analysis_error(sql, "snowflake", UNSURE_UPSTREAM, "double_weight")
    assert why and "select alias" in why
    assert analysis_error(sql, "snowflake", UNSURE_UPSTREAM, "parcel_id") is None
    assert analysis_error(sql, "snowflake", UNSURE_UPSTREAM) is None


@pytest.mark.parametrize("dialect", ["snowflake", "duckdb"])
def test_self_named_alias_then_lateral_use(dialect: str) -> None:
    # `x::date as x` then `f(x)`: alias or the relation's column, sqlglot will not choose
    sql = ("select\n    sent_at::date as sent_at,\n    dayname(sent_at) as sent_day,\n"
           "    carrier_id as carrier_id,\n    carrier_id::varchar as carrier_code\n"
           "from scans\nwhere sent_at > '2020-01-01'\n")
    out = infer_output_columns(sql, dialect, {"scans": None})
    assert out.complete, out.reason
    assert [n.lower() for n in out.names] == ["sent_at", "sent_day", "carrier_id", "carrier_code"]
    assert find_unknown_columns(sql, dialect, {"scans": None}) == []


def test_unsure_never_reports_an_unqualified_name_next_to_an_unknown_relation() -> None:
    # `carrier_nme` may be a column of `carriers` (unknown columns): never a finding
    sql = ("select p.parcel_id, carrier_nme, p.weight_kg as w\n" + _JOINED
           + "where w > 1 and carrier_nme is not null\n")
    assert find_unknown_columns(sql, "snowflake", UNSURE_UPSTREAM) == []
    assert find_unknown_columns(sql, "duckdb", UNSURE_UPSTREAM) == []


def test_flatten_columns_are_known_in_snowflake() -> None:
    # Snowflake's FLATTEN has fixed output columns: an unqualified name that is neither one
    # of them nor a column of the known relation is reported; VALUE, INDEX... are not
    up: dict[str, dict[str, str | None] | None] = {
        "__ref__parcels": {"parcel_id": "INTEGER", "tags": "VARIANT"}}
    ok = ("select parcel_id, value::string as tag, index as position\n"
          "from __ref__parcels,\n    lateral flatten(input => tags)\n")
    assert find_unknown_columns(ok, "snowflake", up) == []
    assert [(u.line, u.col) for u in column_uses(ok, "snowflake", up, "__ref__parcels",
                                                 "parcel_id")] == [(1, 8)]
    gone = ok.replace("select parcel_id", "select parcel_key")
    unknown = find_unknown_columns(gone, "snowflake", up)
    assert [(u.name, u.table, u.line, u.col) for u in unknown] == [("parcel_key", None, 1, 8)]


@pytest.mark.parametrize(("sql", "dialect", "shadowed"), [
    # a select alias of another expression: without the column the name is the alias
    ("select p.id, coalesce(p.state, 'x') as status from __ref__p p where status = 'open'",
     "snowflake", [True]),
    ("select id, coalesce(state, 'x') as status from __ref__p group by id, state, status",
     "duckdb", [True]),
    ("select id, max(state) as status from __ref__p group by id having status > 'a'",
     "snowflake", [True]),
    ("select id, row_number() over (order by id) as status from __ref__p qualify status = 1",
     "snowflake", [True]),
    # no: qualified, BigQuery's WHERE, `x as x`, an aggregate alias in GROUP BY or in an
    # aggregate, a window alias in WHERE, a select item
    ("select p.id, coalesce(p.state, 'x') as status from __ref__p p where p.status = 'open'",
     "snowflake", [False]),
    ("select id, coalesce(state, 'x') as status from __ref__p where status = 'open'",
     "bigquery", [False]),
    ("select id, status as status from __ref__p where status = 'open'", "snowflake",
     [False, False]),
    ("select id, max(state) as status from __ref__p group by id, status", "snowflake", [False]),
    ("select id, max(state) as status from __ref__p group by id having count(status) > 1",
     "snowflake", [False]),
    ("select id, row_number() over (order by id) as status from __ref__p where status = 1",
     "snowflake", [False]),
])
def test_use_shadowed_by_a_select_alias(sql: str, dialect: str, shadowed: list[bool]) -> None:
    up: dict[str, dict[str, str | None] | None] = {
        "__ref__p": {"id": "INTEGER", "state": "VARCHAR", "status": "VARCHAR"}}
    uses = column_uses(sql, dialect, up, "__ref__p", "status")
    assert [u.shadowed for u in uses] == shadowed


def test_the_resolver_writes_expressions_only_when_asked(tmp_path: Path) -> None:
    """The columns of an upstream need no SQL text per column (a copy and a generation
    each): the resolver infers names and types, and writes the expressions only for
    :meth:`SchemaResolver.expressions` (schema-diff's modified models)."""
    from dbt_bulwark.cache import ParseCache
    from dbt_bulwark.project.fs import WorkTree
    from dbt_bulwark.project.loader import load_project
    from dbt_bulwark.sql.schema import SchemaResolver

    (tmp_path / "models").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: lab\nversion: '1'\nprofile: lab\n")
    (tmp_path / "models/src_a.sql").write_text("select 1 as id, 'x' as label\n")
    (tmp_path / "models/mart.sql").write_text(
        "select id, upper(label) as label_up from {{ ref('src_a') }}\n")
    for cache in (None, ParseCache(tmp_path / ".bulwark-cache"),
                  ParseCache(tmp_path / ".bulwark-cache")):
        project = load_project(WorkTree(tmp_path), "", cache=cache)
        resolver = SchemaResolver(project, "duckdb")
        mart = project.nodes["model.lab.mart"]
        schema = resolver.schema(mart.unique_id)
        assert list(schema.columns or {}) == ["id", "label_up"]
        assert schema.expressions == {}
        exprs = resolver.expressions(mart)
        assert list(exprs) == ["id", "label_up"] and "UPPER" in exprs["label_up"].upper()
        assert resolver.schema(mart.unique_id).columns == schema.columns
        if cache is not None:
            cache.save()
