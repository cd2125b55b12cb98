"""Tests for dbt_bulwark.columns, including a DuckDB oracle."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from dbt_bulwark.columns import (
    ColumnUse,
    OutputSchema,
    UnknownColumn,
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
def con():
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
def test_dialect_for_adapter(adapter, dialect):
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
def test_normalize_identifier(name, dialect, quoted, expected):
    assert normalize_identifier(name, dialect, quoted) == expected


def test_same_column():
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
def test_base_type_aliases(a, b, dialect):
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
def test_base_type_differences(a, b, dialect):
    assert base_type(a, dialect) != base_type(b, dialect)
    assert not types_compatible(a, b, dialect)


def test_base_type_dbt_semantics():
    assert base_type("VARCHAR(255)", "duckdb") == "varchar"
    assert base_type("Decimal(18, 2)", "duckdb") == "decimal"
    assert base_type("my_enum", "postgres") == "my_enum"  # user-defined: dbt semantics
    assert base_type("%%garbage(", "duckdb") == "%%garbage"
    assert base_type("struct(a int)", "duckdb") == "struct"


def test_types_compatible_unknown_is_compatible():
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
def test_is_valid_type(data_type, dialect, ok):
    assert is_valid_type(data_type, dialect) is ok


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------


def test_parse_sql_cached_and_errors():
    assert parse_sql("select 1", "duckdb") is parse_sql("select 1", "duckdb")
    bad = parse_sql("select a,\n  from (", "duckdb")
    assert not bad.ok and bad.error and bad.error.startswith("could not parse SQL")
    assert bad.line == 2
    assert not parse_sql("select 'unterminated", "duckdb").ok
    assert not parse_sql("select 1; select 2", "duckdb").ok
    assert parse_sql("select 1;", "duckdb").ok


def test_module_import_does_not_import_sqlglot():
    code = "import sys, dbt_bulwark.columns; print('sqlglot' in sys.modules)"
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
def test_infer_output_columns_matches_duckdb(con, sql):
    described = con.execute(f"describe {sql}").fetchall()
    expected = [(row[0], row[1]) for row in described]
    schema = infer_output_columns(sql, "duckdb", UPSTREAM)
    assert schema.complete, schema.reason
    assert [c.name for c in schema.columns] == [name for name, _ in expected]
    for column, (name, duck_type) in zip(schema.columns, expected):
        if column.data_type is not None:
            assert types_compatible(column.data_type, duck_type, "duckdb"), (
                name,
                column.data_type,
                duck_type,
            )
