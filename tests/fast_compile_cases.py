"""Fault injections into tests/fixtures/fast_compile/shop, shared by the mutation tests and
the dbt oracle test. Each case: edits {path: (old, new)} (old None = new file, new None =
delete) and the finding expected: (code, path, line) -- line 0 = any line."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

SHOP = Path(__file__).resolve().parent / "fixtures" / "fast_compile" / "shop"

Edit = tuple[str | None, str | None]


@dataclass
class Case:
    name: str
    edits: dict[str, Edit]
    expect: list[tuple[str, str, int]] = field(default_factory=list)
    files: list[str] | None = None      # pre-commit mode: these files; None = --all-files
    oracle: bool = False                # also run real `dbt parse` on it


def apply(case: Case, dest: Path) -> Path:
    shutil.copytree(SHOP, dest)
    for rel, (old, new) in case.edits.items():
        path = dest / rel
        if old is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new or "")
            continue
        text = path.read_text()
        assert old in text, f"{case.name}: {old!r} not in {rel}"
        if new is None:
            path.unlink()
        else:
            path.write_text(text.replace(old, new, 1))
    return dest


M = "models/marts/"
S = "models/staging/"

CASES: list[Case] = [
    # -- Jinja
    Case("jinja_syntax_model", {M + "fct_orders.sql": ("{% endif %}", "{% endiff %}")},
         [("BLK020", M + "fct_orders.sql", 0)], oracle=True),
    Case("jinja_syntax_macro", {"macros/cents_to_dollars.sql": ("{%- endmacro %}\n\n{% macro order",
                                                               "{%- endmacr %}\n\n{% macro order")},
         [("BLK101", "macros/cents_to_dollars.sql", 3)], oracle=True),
    Case("unknown_macro", {S + "stg_orders.sql": ("cents_to_dollars(", "cents_to_dolars(")},
         [("BLK102", S + "stg_orders.sql", 5)], oracle=True),
    Case("unknown_dbt_macro", {M + "fct_orders.sql": ("dbt.dateadd(", "dbt.date_add(")},
         [("BLK102", M + "fct_orders.sql", 22)]),
    # -- references
    Case("missing_ref", {M + "fct_orders.sql": ("ref('stg_orders')", "ref('stg_order')")},
         [("BLK110", M + "fct_orders.sql", 4)], oracle=True),
    Case("disabled_ref", {S + "stg_customers.sql": ("select\n", "{{ config(enabled=false) }}\nselect\n")},
         [("BLK111", M + "fct_orders.sql", 12), ("BLK111", M + "dim_customers.sql", 12)],
         oracle=True),
    Case("missing_version", {M + "customer_report.sql": ("v=2", "v=3")},
         [("BLK112", M + "customer_report.sql", 6)], oracle=True),
    Case("unknown_package_ref", {M + "analyses_like.sql": (None, "select * from {{ ref('shopp', 'stg_orders') }}\n")},
         [("BLK113", M + "analyses_like.sql", 1)], oracle=True),
    Case("missing_source", {S + "stg_events.sql": ("source('app',", "source('ap',")},
         [("BLK114", S + "stg_events.sql", 5)], oracle=True),
    Case("missing_source_table", {S + "stg_events.sql": ("'raw_events'", "'raw_event'")},
         [("BLK115", S + "stg_events.sql", 5)]),
    Case("ref_cycle", {S + "stg_orders.sql": ("from {{ ref('raw_orders') }}",
                                              "from {{ ref('raw_orders') }}\n-- {{ ref('customer_report') }}")},
         [("BLK116", M + "customer_report.sql", 0)], oracle=True),
    Case("duplicate_relation", {M + "fct_orders_copy.sql": (None, "{{ config(alias='fct_orders') }}\nselect 1 as x\n")},
         [("BLK117", M + "fct_orders_copy.sql", 0)], oracle=True),
    Case("yaml_without_sql", {M + "_marts.yml": ("  - name: dim_customers\n", "  - name: dim_customerz\n    description: x\n  - name: dim_customers\n")},
         [("BLK037", M + "_marts.yml", 12)]),
    # -- vars / env vars
    Case("missing_var", {M + "fct_orders.sql": ('var("start_date")', 'var("start_dat")')},
         [("BLK120", M + "fct_orders.sql", 5)]),
    # dbt parse itself fails on a missing env var (the loader's BLK020) ...
    Case("missing_env_var_parse", {S + "stg_events.sql": ("from {{", "-- schema {{ env_var('SHOP_NO_SUCH_ENV_VAR') }}\nfrom {{")},
         [("BLK020", S + "stg_events.sql", 5)], oracle=True),
    # ... and one needed only at compile time (execute is True) is fast-compile's BLK121
    Case("missing_env_var_compile", {S + "stg_events.sql": ("from {{", "-- {% if execute %}{{ env_var('SHOP_NO_SUCH_ENV_VAR') }}{% endif %}\nfrom {{")},
         [("BLK121", S + "stg_events.sql", 5)]),
    # -- SQL syntax
    Case("sql_unclosed_paren", {S + "stg_orders.sql": ("cast(ordered_at as date) as ordered_at",
                                                       "cast(ordered_at as date as ordered_at")},
         [("BLK130", S + "stg_orders.sql", 0)]),
    Case("sql_syntax_in_loop", {M + "dim_customers.sql": ("then 1 else 0 end) as", "then 1 else 0 end) as as")},
         [("BLK130", M + "dim_customers.sql", 8)]),
    Case("sql_incremental_branch", {M + "fct_orders.sql": ("(select max(ordered_at) from {{ this }})",
                                                           "(select max(ordered_at) from {{ this }}")},
         [("BLK130", M + "fct_orders.sql", 0)]),
    Case("sql_snapshot", {"snapshots/orders_snapshot.sql": ("select order_id, status from", "select order_id status, from from")},
         [("BLK130", "snapshots/orders_snapshot.sql", 3)]),
    # -- columns
    Case("removed_column_breaks_child", {S + "stg_customers.sql": (",\n    lower(email) as email", "")},
         [("BLK140", M + "dim_customers.sql", 6)], files=[S + "stg_customers.sql"]),
    Case("typo_column", {M + "fct_orders.sql": ("orders.status,", "orders.statuz,")},
         [("BLK140", M + "fct_orders.sql", 20)]),
    # -- properties YAML (each one verified against dbt parse)
    Case("yaml_description_list", {M + "_marts.yml": ("description: One row per order.", "description: [a, b]")},
         [("BLK150", M + "_marts.yml", 5)], oracle=True),
    Case("yaml_tests_not_list", {M + "_marts.yml": ("data_tests: [unique, not_null]", "data_tests: unique")},
         [("BLK150", M + "_marts.yml", 8)]),
    Case("yaml_column_without_name", {M + "_marts.yml": ("      - name: amount\n", "      - description_only: true\n")},
         [("BLK152", M + "_marts.yml", 9)]),
    Case("yaml_version_without_v", {M + "_marts.yml": ("      - v: 1\n", "      - description: x\n")},
         [("BLK152", M + "_marts.yml", 21)], oracle=True),
    Case("yaml_latest_version", {M + "_marts.yml": ("latest_version: 2", "latest_version: 7")},
         [("BLK153", M + "_marts.yml", 19)]),
    Case("yaml_entry_not_mapping", {M + "_marts.yml": ("models:\n", "models:\n  - just_a_string\n")},
         [("BLK151", M + "_marts.yml", 3)]),
    Case("yaml_enabled_not_bool", {M + "_marts.yml": ("    description: One row per customer.",
                                                      "    description: x\n    config:\n      enabled: maybe")},
         [("BLK150", M + "_marts.yml", 15)]),
]

# Benign edits: nothing above info.
BENIGN: list[Case] = [
    Case("comment", {M + "fct_orders.sql": ("select\n    orders.order_id", "-- a comment\nselect /* inline */\n    orders.order_id")}),
    Case("whitespace", {S + "stg_orders.sql": ("    status,\n", "\n    status ,  \n\n")}),
    Case("new_leaf_model", {M + "new_leaf.sql": (None, "select customer_id, lifetime_value * 2 as double_value\nfrom {{ ref('dim_customers') }}\n")},
         files=[M + "new_leaf.sql"]),
    Case("description", {M + "_marts.yml": ("One row per customer.", "One row per customer, with lifetime value.")},
         files=[M + "_marts.yml"]),
    Case("jinja_comment", {S + "stg_customers.sql": ("from {{", "{# note: {{ ref('nope') }} #}\nfrom {{")}),
]
