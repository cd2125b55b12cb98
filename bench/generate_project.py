#!/usr/bin/env python3
"""Generate a deterministic synthetic dbt project for benchmarking dbt-bulwark.

Usage:
    python bench/generate_project.py N OUTDIR [--seed S]
    python bench/generate_project.py N OUTDIR [--seed S] --change K

The project has N models in three layers (staging ~40%, intermediate ~35%,
marts ~25%), each split into subfolders, with sources, seeds, macros,
exposures, vars, contracts (folder-level in dbt_project.yml and SQL-level
through ``var('enforce_contracts', true)``), versioned marts and
``critical``/``locked`` tags. It targets dbt-duckdb and is meant to pass
``dbt parse`` and ``dbt build --empty`` (the ``on-run-start`` hook creates the
declared source tables, empty, from their YAML columns).

The output is a git repository with a single commit (fixed author and date),
so that git-aware hooks can diff against ``HEAD``. A ``profiles/profiles.yml``
for dbt-duckdb is written next to ``dbt_project.yml``.

``--change K`` modifies K files of an already generated project (generating it
first when OUTDIR holds no project): about K/2 model SQL files get an edit
(a new derived column, or a new filter on contracted models) and the others are
properties YAML files in which an undocumented column gets documented (or a
description is reworded). Model files are reset to ``HEAD`` first, so the
result is the same each time. Nothing is committed. The changed paths,
relative to OUTDIR, are printed one per line.

Standard library only. The same (N, seed) always gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_NAME = "bench_project"
META_FILE = "bench_meta.json"

SYSTEMS = [
    "crm",
    "erp",
    "billing",
    "shop",
    "support",
    "ads",
    "web",
    "payments",
    "inventory",
    "hr",
    "logistics",
    "product",
    "email",
    "events",
    "partners",
    "surveys",
    "warehouse",
    "pos",
    "finance_raw",
    "telemetry",
]
DOMAINS = [
    "finance",
    "sales",
    "marketing",
    "product",
    "operations",
    "customer",
    "supply_chain",
    "people",
    "risk",
    "growth",
    "support",
    "platform",
]
NOUNS = [
    "customers",
    "orders",
    "order_items",
    "products",
    "stores",
    "suppliers",
    "invoices",
    "payments",
    "refunds",
    "subscriptions",
    "accounts",
    "users",
    "sessions",
    "events",
    "campaigns",
    "clicks",
    "impressions",
    "tickets",
    "agents",
    "shipments",
    "carriers",
    "warehouses",
    "stock_levels",
    "returns",
    "contracts",
    "leads",
    "opportunities",
    "quotes",
    "employees",
    "departments",
    "plans",
    "discounts",
    "coupons",
    "reviews",
    "categories",
    "regions",
    "currencies",
    "exchange_rates",
    "budgets",
    "forecasts",
    "vendors",
    "purchase_orders",
    "receipts",
    "devices",
    "pageviews",
    "signups",
    "memberships",
    "transfers",
    "balances",
    "ledgers",
]
INT_SUFFIXES = [
    "enriched",
    "joined",
    "aggregated",
    "deduped",
    "filtered",
    "unioned",
    "scored",
    "daily",
]
MART_PREFIXES = ["fct", "dim"]

KEYS = [
    "customer_id",
    "account_id",
    "product_id",
    "store_id",
    "user_id",
    "order_id",
    "region_id",
    "supplier_id",
]
# (raw column name, DuckDB type)
ATTRS = [
    ("amount", "double"),
    ("quantity", "integer"),
    ("status", "varchar"),
    ("created_at", "timestamp"),
    ("updated_at", "timestamp"),
    ("is_active", "boolean"),
    ("event_date", "date"),
    ("email", "varchar"),
    ("country_code", "varchar"),
    ("unit_price", "double"),
    ("discount_rate", "double"),
    ("score", "integer"),
    ("category", "varchar"),
    ("channel", "varchar"),
    ("currency", "varchar"),
    ("balance", "decimal(18,2)"),
    ("priority", "integer"),
    ("duration_seconds", "bigint"),
    ("is_deleted", "boolean"),
    ("label", "varchar"),
]
TYPE_OF = dict(ATTRS)


@dataclass
class Col:
    name: str
    type: str
    description: str = ""


@dataclass
class Model:
    name: str
    layer: str  # staging | intermediate | marts
    folder: str  # path relative to models/, e.g. "staging/crm"
    pk: str
    keys: list[str]  # join keys (foreign keys) carried by the model
    cols: list[Col]  # output columns (latest version for versioned models)
    sql: str = ""
    contracted: bool = False
    contract_from_sql: bool = False
    contract_from_yaml: bool = False
    materialized: str | None = None
    tags: list[str] = field(default_factory=list)
    version_cols: dict[int, list[Col]] | None = None  # versioned models only
    documented: list[str] = field(default_factory=list)  # columns listed in YAML
    sql_files: list[str] = field(default_factory=list)
    description: str = ""


@dataclass
class RawTable:
    """A source table or a seed: something a staging model selects from."""

    kind: str  # source | seed
    system: str
    name: str
    cols: list[Col]
    keys: list[str]
    rows: list[list[str]] = field(default_factory=list)


def _yaml_str(s: str) -> str:
    return json.dumps(s)  # JSON strings are valid YAML double-quoted scalars


class Generator:
    def __init__(self, n: int, seed: int):
        if n < 10:
            raise SystemExit("N must be at least 10")
        self.n = n
        self.seed = seed
        self.rng = random.Random(seed)
        self.files: dict[str, str] = {}
        self.models: list[Model] = []
        self.by_name: dict[str, Model] = {}
        self.raw_tables: list[RawTable] = []

    # ------------------------------------------------------------------ layout
    def plan(self) -> None:
        n = self.n
        self.n_stg = max(3, round(n * 0.40))
        self.n_int = max(3, round(n * 0.35))
        self.n_mart = n - self.n_stg - self.n_int
        n_systems = min(len(SYSTEMS), max(2, self.n_stg // 12))
        self.systems = SYSTEMS[:n_systems]
        n_domains = min(len(DOMAINS), max(2, n // 60))
        self.domains = DOMAINS[:n_domains]
        self.contract_domain = self.domains[0]  # "finance": +contract in dbt_project.yml
        self.n_seeds = max(2, n // 150)

    # --------------------------------------------------------------- raw data
    def make_raw_tables(self) -> None:
        rng = self.rng
        n_seed_stg = max(2, round(self.n_stg * 0.08))
        seed_names: list[str] = []
        for i in range(self.n_stg):
            noun = NOUNS[i % len(NOUNS)] + ("" if i < len(NOUNS) else f"_{i // len(NOUNS)}")
            keys = sorted(rng.sample(KEYS, 2), key=KEYS.index)
            attrs = rng.sample(ATTRS, rng.randint(3, 7))
            cols = [Col("id", "integer", "Primary key in the source system.")]
            cols += [Col(k, "integer", f"Foreign key to {k[:-3]}.") for k in keys]
            cols += [Col(a, t, f"Raw {a.replace('_', ' ')}.") for a, t in attrs]
            if i < n_seed_stg:
                system = "seeds"
                name = f"seed_{noun}"
                seed_names.append(name)
                rows = [self._seed_row(cols, r) for r in range(1, 6)]
                self.raw_tables.append(RawTable("seed", system, name, cols, keys, rows))
            else:
                system = self.systems[i % len(self.systems)]
                self.raw_tables.append(RawTable("source", system, noun, cols, keys))

    def _seed_row(self, cols: list[Col], r: int) -> list[str]:
        out = []
        for c in cols:
            t = c.type
            if c.name == "id" or c.name.endswith("_id"):
                out.append(str(r))
            elif t in ("integer", "bigint"):
                out.append(str(self.rng.randint(0, 1000)))
            elif t in ("double", "decimal(18,2)"):
                out.append(f"{self.rng.randint(0, 100000) / 100:.2f}")
            elif t == "boolean":
                out.append(self.rng.choice(["true", "false"]))
            elif t == "date":
                out.append(f"2024-0{self.rng.randint(1, 9)}-1{self.rng.randint(0, 9)}")
            elif t == "timestamp":
                out.append(f"2024-0{self.rng.randint(1, 9)}-1{self.rng.randint(0, 9)} 12:00:00")
            else:
                out.append(f"{c.name}_{r}")
        return out

    # ---------------------------------------------------------------- staging
    def make_staging(self) -> None:
        rng = self.rng
        for raw in self.raw_tables:
            if raw.kind == "seed":
                entity = raw.name[len("seed_") :]
                name = f"stg_seeds__{entity}"
                folder = "staging/seeds"
                src = f"{{{{ ref('{raw.name}') }}}}"
            else:
                entity = raw.name
                name = f"stg_{raw.system}__{entity}"
                folder = f"staging/{raw.system}"
                src = f"{{{{ source('{raw.system}', '{raw.name}') }}}}"
            pk = f"{entity}_id"
            out: list[Col] = [Col(pk, "integer", f"Primary key of {entity.replace('_', ' ')}.")]
            lines = [f"id as {pk}"]
            for k in raw.keys:
                out.append(Col(k, "integer", f"Foreign key to {k[:-3]}."))
                lines.append(k)
            names = {c.name for c in raw.cols}
            for c in raw.cols:
                if c.name == "id" or c.name in raw.keys:
                    continue
                if c.name == "label":
                    out.append(Col(f"{entity}_label", "varchar", "Display label."))
                    lines.append(f"trim(label) as {entity}_label")
                else:
                    out.append(Col(c.name, c.type, f"{c.name.replace('_', ' ').capitalize()}."))
                    lines.append(f"cast({c.name} as {c.type}) as {c.name}")
            if "amount" in names and "quantity" in names:
                out.append(Col("amount_per_unit", "double", "Amount divided by quantity."))
                lines.append(
                    "cast({{ safe_divide('amount', 'quantity') }} as double) as amount_per_unit"
                )
            where = []
            if "is_deleted" in names:
                where.append("not coalesce(is_deleted, false)")
            if "created_at" in names and rng.random() < 0.5:
                where.append("created_at >= cast('{{ var(\"start_date\") }}' as timestamp)")
            header = ""
            tags: list[str] = []
            if rng.random() < 0.10:
                tags = [f"source:{raw.system}"]
                header = "{{ config(tags=['" + tags[0] + "']) }}\n\n"
            body = ",\n        ".join(lines)
            where_sql = f"    where {' and '.join(where)}\n" if where else ""
            sql = (
                f"{header}with source as (\n\n    select * from {src}\n\n),\n\n"
                f"renamed as (\n\n    select\n        {body}\n    from source\n{where_sql}\n),\n\n"
                "final as (\n\n    select * from renamed\n\n)\n\nselect * from final\n"
            )
            m = Model(
                name,
                "staging",
                folder,
                pk,
                list(raw.keys),
                out,
                sql=sql,
                tags=tags,
                description=f"Staged {entity.replace('_', ' ')} from {raw.system}: renamed and typed.",
            )
            self._add(m)

    # -------------------------------------------------------- downstream model
    def _pick_parents(self, pool: list[Model], k: int) -> list[Model]:
        rng = self.rng
        primary = rng.choice(pool)
        parents = [primary]
        tries = 0
        while len(parents) < k and tries < 40:
            tries += 1
            cand = rng.choice(pool)
            if cand in parents or cand.name == primary.name:
                continue
            if set(cand.keys) & set(primary.keys):
                parents.append(cand)
        return parents

    @staticmethod
    def _free_name(base: str, used: set[str]) -> str:
        if base not in used:
            return base
        stem = base
        parts = base.rsplit("_", 1)
        if len(parts) == 2 and parts[1].isdigit():
            stem = parts[0]
        i = 2
        while f"{stem}_{i}" in used:
            i += 1
        return f"{stem}_{i}"

    def _downstream(
        self,
        name: str,
        layer: str,
        folder: str,
        pool: list[Model],
        contracted: bool,
        allow_star: bool,
    ) -> Model:
        rng = self.rng
        # a few models are `select *` from one upstream model
        if allow_star and not contracted and rng.random() < 0.06:
            parent = rng.choice(pool)
            ref = self._ref(parent)
            cond = ""
            for c in parent.cols:
                if c.type == "boolean":
                    cond = f"\nwhere coalesce({c.name}, true)"
                    break
            sql = f"select * from {ref}{cond}\n"
            cols = [Col(c.name, c.type, c.description) for c in parent.cols]
            return Model(
                name,
                layer,
                folder,
                parent.pk,
                list(parent.keys),
                cols,
                sql=sql,
                description=f"Pass-through of {parent.name}.",
            )

        k = rng.choices([1, 2, 3, 4], weights=[25, 40, 25, 10])[0]
        parents = self._pick_parents(pool, k)
        primary = parents[0]
        used: set[str] = set()
        out: list[tuple[str, Col]] = []  # (expression, col)

        def add(expr: str, col: Col) -> None:
            col.name = self._free_name(col.name, used)
            used.add(col.name)
            out.append((expr, col))

        add(
            f"p1.{primary.pk}",
            Col(primary.pk, "integer", primary.cols[0].description or "Primary key."),
        )
        keys = []
        for key in primary.keys:
            if key != primary.pk:
                add(f"p1.{key}", Col(key, "integer", f"Foreign key to {key[:-3]}."))
                keys.append(key)
        nonkey = [c for c in primary.cols if c.name != primary.pk and c.name not in primary.keys]
        for c in rng.sample(nonkey, min(len(nonkey), rng.randint(2, 5))):
            add(f"p1.{c.name}", Col(c.name, c.type, c.description))
        joins = []
        for j, par in enumerate(parents[1:], start=2):
            shared = [x for x in primary.keys if x in par.keys]
            jk = shared[0]
            joins.append(f"    left join p{j} on p1.{jk} = p{j}.{jk}")
            nk = [c for c in par.cols if c.name != par.pk and c.name not in par.keys]
            for c in rng.sample(nk, min(len(nk), rng.randint(1, 3))):
                add(f"p{j}.{c.name}", Col(c.name, c.type, c.description))
            extra = [x for x in par.keys if x not in keys and x != par.pk]
            if extra and len(keys) < 4 and rng.random() < 0.5 and extra[0] not in used:
                add(
                    f"p{j}.{extra[0]}", Col(extra[0], "integer", f"Foreign key to {extra[0][:-3]}.")
                )
                keys.append(extra[0])

        ctes = []
        for j, par in enumerate(parents, start=1):
            ctes.append(f"p{j} as (\n\n    select * from {self._ref(par)}\n\n)")
        body = ",\n        ".join(
            f"{e} as {c.name}" if e.split(".")[-1] != c.name else e for e, c in out
        )
        joined = (
            f"joined as (\n\n    select\n        {body}\n    from p1\n"
            + ("\n".join(joins) + "\n" if joins else "")
            + "\n)"
        )
        ctes.append(joined)
        cols = [c for _, c in out]
        pk = primary.pk
        last = "joined"

        # some models aggregate to the grain of one join key
        if keys and layer != "staging" and rng.random() < 0.2:
            gk = rng.choice(keys)
            agg_cols = [
                Col(gk, "integer", f"Foreign key to {gk[:-3]}; the grain of this model."),
                Col("row_count", "bigint", "Number of rows aggregated."),
            ]
            agg_lines = [gk, "count(*) as row_count"]
            for c in cols:
                if c.type == "double" and len(agg_cols) < 5:
                    agg_cols.append(Col(f"total_{c.name}", "double", f"Sum of {c.name}."))
                    agg_lines.append(f"sum({c.name}) as total_{c.name}")
                elif c.type in ("timestamp", "date") and len(agg_cols) < 6:
                    agg_cols.append(Col(f"last_{c.name}", c.type, f"Latest {c.name}."))
                    agg_lines.append(f"max({c.name}) as last_{c.name}")
            agg_body = ",\n        ".join(agg_lines)
            ctes.append(
                f"aggregated as (\n\n    select\n        {agg_body}\n    from joined\n    group by 1\n\n)"
            )
            cols, pk, keys, last = agg_cols, gk, [gk], "aggregated"

        if contracted:
            cast_body = ",\n        ".join(f"cast({c.name} as {c.type}) as {c.name}" for c in cols)
            ctes.append(f"final as (\n\n    select\n        {cast_body}\n    from {last}\n\n)")
        else:
            ctes.append(f"final as (\n\n    select * from {last}\n\n)")
        sql = "with " + ",\n\n".join(ctes) + "\n\nselect * from final\n"
        desc = (
            f"{name.replace('__', ' ').replace('_', ' ')}: built from "
            + ", ".join(p.name for p in parents)
            + "."
        )
        return Model(
            name, layer, folder, pk, keys, cols, sql=sql, contracted=contracted, description=desc
        )

    def _ref(self, m: Model) -> str:
        if m.version_cols and self.rng.random() < 0.3:
            return f"{{{{ ref('{m.name}', v=1) }}}}"
        return f"{{{{ ref('{m.name}') }}}}"

    def _add(self, m: Model) -> None:
        self.models.append(m)
        self.by_name[m.name] = m

    def make_intermediate(self) -> None:
        rng = self.rng
        staging = [m for m in self.models if m.layer == "staging"]
        ints: list[Model] = []
        for i in range(self.n_int):
            domain = self.domains[i % len(self.domains)]
            noun = NOUNS[rng.randrange(len(NOUNS))]
            name = f"int_{domain}__{noun}_{INT_SUFFIXES[i % len(INT_SUFFIXES)]}"
            name = self._free_name(name, set(self.by_name))
            if name in self.by_name:
                name = f"{name}_{i}"
            pool = (
                staging if (not ints or rng.random() < 0.6) else ints + staging[: len(staging) // 3]
            )
            m = self._downstream(name, "intermediate", f"intermediate/{domain}", pool, False, True)
            if rng.random() < 0.08:
                m.tags = ["hourly"]
                m.sql = "{{ config(materialized='view', tags=['hourly']) }}\n\n" + m.sql
            self._add(m)
            ints.append(m)

    def make_marts(self) -> None:
        rng = self.rng
        ints = [m for m in self.models if m.layer == "intermediate"]
        staging = [m for m in self.models if m.layer == "staging"]
        marts: list[Model] = []
        n_versioned = max(1, round(self.n_mart * 0.03))
        versioned_idx = set(rng.sample(range(self.n_mart), n_versioned))
        n_critical = max(2, round(self.n_mart * 0.05))
        critical_idx = set(rng.sample(range(self.n_mart), n_critical))
        locked_idx = set(sorted(critical_idx)[: max(1, n_critical // 3)])
        for i in range(self.n_mart):
            domain = self.domains[i % len(self.domains)]
            prefix = MART_PREFIXES[rng.random() < 0.35]
            noun = NOUNS[rng.randrange(len(NOUNS))]
            name = self._free_name(f"{prefix}_{domain}__{noun}", set(self.by_name))
            r = rng.random()
            if marts and r < 0.10:
                pool = marts
            elif r < 0.25:
                pool = staging
            else:
                pool = ints
            folder_contract = domain == self.contract_domain
            sql_contract = (not folder_contract) and rng.random() < 0.08
            # policy: critical models carry an enforced contract (in their YAML config)
            yaml_contract = i in critical_idx and not (folder_contract or sql_contract)
            m = self._downstream(
                name,
                "marts",
                f"marts/{domain}",
                pool,
                folder_contract or sql_contract or yaml_contract,
                True,
            )
            m.contract_from_sql = sql_contract
            m.contract_from_yaml = yaml_contract
            cfg = []
            if sql_contract:
                cfg.append("contract={'enforced': var('enforce_contracts', true)}")
            if rng.random() < 0.12:
                cfg.append("materialized='table'")
                tag = rng.choice(["daily", "weekly", "pii"])
                cfg.append(f"tags=['{domain}', '{tag}']")
                m.tags.extend([domain, tag])
            if cfg:
                m.sql = (
                    "{{\n    config(\n        "
                    + ",\n        ".join(cfg)
                    + "\n    )\n}}\n\n"
                    + m.sql
                )
            if i in critical_idx:
                m.tags.append("critical")
            if i in locked_idx:
                m.tags.append("locked")
            droppable = [c for c in m.cols if c.name != m.pk and c.name not in m.keys]
            if i in versioned_idx and droppable and m.sql.endswith("select * from final\n"):
                # v1 = all columns, v2 (latest) drops the last non-key column
                # (keys stay: consumers join on them)
                drop = droppable[-1]
                m.version_cols = {1: list(m.cols), 2: [c for c in m.cols if c is not drop]}
                m.cols = m.version_cols[2]
            self._add(m)
            marts.append(m)

    # -------------------------------------------------------------- rendering
    def render(self) -> None:
        f = self.files
        f["dbt_project.yml"] = self._dbt_project()
        f["profiles/profiles.yml"] = (
            f"{PROJECT_NAME}:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
            "      path: \"{{ env_var('BENCH_DUCKDB_PATH', 'bench.duckdb') }}\"\n"
            "      threads: 2\n"
        )
        f[".gitignore"] = (
            "target/\nlogs/\ndbt_packages/\n*.duckdb\n*.duckdb.wal\n.bulwark-cache/\n.user.yml\n"
        )
        f["README.md"] = (
            f"# {PROJECT_NAME} (synthetic)\n\nGenerated by dbt-bulwark's bench/generate_project.py "
            f"with N={self.n}, seed={self.seed}. Do not edit by hand.\n\n"
            "    dbt parse --profiles-dir profiles\n    dbt build --empty --profiles-dir profiles\n"
        )
        f["macros/safe_divide.sql"] = (
            "{% macro safe_divide(numerator, denominator) -%}\n"
            "    case when {{ denominator }} is null or {{ denominator }} = 0 then null\n"
            "         else {{ numerator }} / {{ denominator }} end\n"
            "{%- endmacro %}\n"
        )
        f["macros/bench_create_sources.sql"] = (
            "{#- Creates every declared source table, empty, from its YAML columns, so that\n"
            "    `dbt build --empty` works on a fresh DuckDB file. -#}\n"
            "{% macro bench_create_sources() %}\n"
            "  {% if execute and var('bench_create_sources', true) %}\n"
            "    {% set schemas = [] %}\n"
            "    {% for src in graph.sources.values() %}\n"
            "      {% if src.schema not in schemas %}\n"
            "        {% do run_query('create schema if not exists ' ~ src.schema) %}\n"
            "        {% do schemas.append(src.schema) %}\n"
            "      {% endif %}\n"
            "      {% set cols = [] %}\n"
            "      {% for col in src.columns.values() %}\n"
            "        {% do cols.append(col.name ~ ' ' ~ col.data_type) %}\n"
            "      {% endfor %}\n"
            "      {% do run_query('create table if not exists ' ~ src.schema ~ '.' ~ src.identifier ~ ' (' ~ cols | join(', ') ~ ')') %}\n"
            "    {% endfor %}\n"
            "  {% endif %}\n"
            "  select 1\n"
            "{% endmacro %}\n"
        )
        self._render_seeds()
        self._render_sources()
        for m in self.models:
            if m.version_cols:
                for v in sorted(m.version_cols):
                    sql = m.sql if v == 1 else self._v2_sql(m)
                    p = f"models/{m.folder}/{m.name}_v{v}.sql"
                    f[p] = sql
                    m.sql_files.append(p)
            else:
                p = f"models/{m.folder}/{m.name}.sql"
                f[p] = m.sql
                m.sql_files.append(p)
        folders: dict[str, list[Model]] = {}
        for m in self.models:
            folders.setdefault(m.folder, []).append(m)
        for folder, ms in folders.items():
            leaf = folder.split("/")[-1]
            f[f"models/{folder}/_{leaf}__models.yml"] = self._properties(ms)
        f["models/marts/_exposures.yml"] = self._exposures()
        f[META_FILE] = self._meta()

    @staticmethod
    def _v2_sql(m: Model) -> str:
        """v2 (latest) no longer outputs the last column of v1."""
        cols = ",\n    ".join(c.name for c in m.version_cols[2])
        assert m.sql.endswith("select * from final\n")
        return m.sql[: -len("select * from final\n")] + f"select\n    {cols}\nfrom final\n"

    def _dbt_project(self) -> str:
        lines = [
            f"name: {PROJECT_NAME}",
            'version: "1.0.0"',
            "config-version: 2",
            f"profile: {PROJECT_NAME}",
            "",
            'model-paths: ["models"]',
            'seed-paths: ["seeds"]',
            'macro-paths: ["macros"]',
            'test-paths: ["tests"]',
            'analysis-paths: ["analyses"]',
            'snapshot-paths: ["snapshots"]',
            'clean-targets: ["target", "dbt_packages"]',
            "",
            "flags:",
            "  send_anonymous_usage_stats: false",
            "",
            "vars:",
            "  enforce_contracts: true",
            '  start_date: "2020-01-01"',
            "  bench_create_sources: true",
            "",
            "on-run-start:",
            '  - "{{ bench_create_sources() }}"',
            "",
            "models:",
            f"  {PROJECT_NAME}:",
            "    +materialized: view",
            "    staging:",
            "      +materialized: view",
            '      +tags: ["staging"]',
            "    intermediate:",
            "      +materialized: view",
            '      +tags: ["intermediate"]',
            "    marts:",
            "      +materialized: table",
            '      +tags: ["marts"]',
            f"      {self.contract_domain}:",
            "        +contract:",
            "          enforced: true",
            f'        +tags: ["{self.contract_domain}", "contracted"]',
            "        +meta:",
            '          owner: "finance-data@example.com"',
            "",
            "seeds:",
            f"  {PROJECT_NAME}:",
            "    +schema: seeds",
            '    +tags: ["seed"]',
            "",
        ]
        return "\n".join(lines)

    def _render_seeds(self) -> None:
        seeds = [r for r in self.raw_tables if r.kind == "seed"]
        y = ["version: 2", "", "seeds:"]
        for s in seeds:
            self.files[f"seeds/{s.name}.csv"] = (
                ",".join(c.name for c in s.cols)
                + "\n"
                + "".join(",".join(r) + "\n" for r in s.rows)
            )
            y += [
                f"  - name: {s.name}",
                f"    description: {_yaml_str('Reference data for ' + s.name[5:].replace('_', ' ') + '.')}",
                "    config:",
                "      column_types:",
            ]
            y += [f"        {c.name}: {c.type}" for c in s.cols]
            y += ["    columns:"]
            y += [
                f"      - name: {c.name}\n        description: {_yaml_str(c.description)}"
                for c in s.cols
            ]
        self.files["seeds/_seeds.yml"] = "\n".join(y) + "\n"

    def _render_sources(self) -> None:
        by_sys: dict[str, list[RawTable]] = {}
        for r in self.raw_tables:
            if r.kind == "source":
                by_sys.setdefault(r.system, []).append(r)
        for system, tables in by_sys.items():
            y = [
                "version: 2",
                "",
                "sources:",
                f"  - name: {system}",
                f"    description: {_yaml_str('Raw tables replicated from the ' + system + ' system.')}",
                f"    schema: raw_{system}",
                "    tables:",
            ]
            for t in tables:
                y += [
                    f"      - name: {t.name}",
                    f"        description: {_yaml_str('Raw ' + t.name.replace('_', ' ') + ' from ' + system + '.')}",
                    "        columns:",
                ]
                for c in t.cols:
                    y += [
                        f"          - name: {c.name}",
                        f"            description: {_yaml_str(c.description)}",
                        f"            data_type: {c.type}",
                    ]
            self.files[f"models/staging/{system}/_{system}__sources.yml"] = "\n".join(y) + "\n"

    def _properties(self, models: list[Model]) -> str:
        rng = self.rng
        y = ["version: 2", "", "models:"]
        for m in models:
            y += [f"  - name: {m.name}", f"    description: {_yaml_str(m.description)}"]
            cfg = []
            if m.tags and not m.sql.startswith("{{"):
                cfg.append(f"      tags: [{', '.join(_yaml_str(t) for t in m.tags)}]")
            elif m.tags:
                extra = [t for t in m.tags if t in ("critical", "locked")]
                if extra:
                    cfg.append(f"      tags: [{', '.join(_yaml_str(t) for t in extra)}]")
            if "critical" in m.tags:
                cfg.append(
                    '      meta:\n        owner: "data-platform@example.com"\n        tier: 1'
                )
            if m.contract_from_yaml:
                cfg.append("      contract:\n        enforced: true")
            if m.layer == "marts" and not m.contracted and rng.random() < 0.1:
                cfg.append("      materialized: table")
            if cfg:
                y += ["    config:"] + cfg
            if m.version_cols:
                y += [
                    "    latest_version: 2",
                    "    versions:",
                    "      - v: 1",
                    "      - v: 2",
                    "        columns:",
                    "          - include: all",
                    f"            exclude: [{[c for c in m.version_cols[1] if c not in m.version_cols[2]][0].name}]",
                ]
            cols = m.version_cols[1] if m.version_cols else m.cols
            if m.contracted:
                documented = cols
            else:
                documented = [c for c in cols if c.name == m.pk or rng.random() < 0.6]
            m.documented = [c.name for c in documented]
            y += ["    columns:"]
            for c in documented:
                y += [
                    f"      - name: {c.name}",
                    f"        description: {_yaml_str(c.description or c.name.replace('_', ' ') + '.')}",
                ]
                if m.contracted or rng.random() < 0.2:
                    y += [f"        data_type: {c.type}"]
                if c.name == m.pk:
                    y += ["        data_tests:", "          - unique", "          - not_null"]
                elif c.name.endswith("_id") and rng.random() < 0.3:
                    y += ["        data_tests:", "          - not_null"]
        return "\n".join(y) + "\n"

    def _exposures(self) -> str:
        marts = [m for m in self.models if m.layer == "marts"]
        rng = self.rng
        y = ["version: 2", "", "exposures:"]
        for i, (label, kind) in enumerate(
            [("Executive revenue dashboard", "dashboard"), ("Churn prediction model", "ml")]
        ):
            deps = rng.sample(marts, min(3, len(marts)))
            y += [
                f"  - name: {label.lower().replace(' ', '_')}",
                f"    label: {_yaml_str(label)}",
                f"    type: {kind}",
                "    maturity: high",
                f"    url: https://bi.example.com/{i + 1}",
                f"    description: {_yaml_str(label + ' used by the leadership team.')}",
                "    depends_on:",
            ]
            y += [f"      - ref('{d.name}')" for d in deps]
            y += ["    owner:", "      name: Analytics", "      email: analytics@example.com"]
        return "\n".join(y) + "\n"

    def _meta(self) -> str:
        meta = {
            "n": self.n,
            "seed": self.seed,
            "project": PROJECT_NAME,
            "models": [
                {
                    "name": m.name,
                    "layer": m.layer,
                    "sql": m.sql_files,
                    "yaml": f"models/{m.folder}/_{m.folder.split('/')[-1]}__models.yml",
                    "contracted": m.contracted,
                    "versioned": bool(m.version_cols),
                    "columns": [
                        [c.name, c.type] for c in (m.version_cols[1] if m.version_cols else m.cols)
                    ],
                    "documented": m.documented,
                }
                for m in self.models
            ],
        }
        return json.dumps(meta, indent=1, sort_keys=True) + "\n"

    # ------------------------------------------------------------------ write
    def build(self) -> dict[str, str]:
        self.plan()
        self.make_raw_tables()
        self.make_staging()
        self.make_intermediate()
        self.make_marts()
        self.render()
        return self.files


GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2024-01-01T00:00:00+00:00",
}


def _git(outdir: Path, *args: str, capture: bool = False) -> str:
    env = {**os.environ, **GIT_ENV}
    res = subprocess.run(
        ["git", "-C", str(outdir), *args],
        env=env,
        check=True,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return res.stdout if capture else ""


def generate(n: int, outdir: Path, seed: int) -> Generator:
    gen = Generator(n, seed)
    files = gen.build()
    if outdir.exists():
        if not (outdir / META_FILE).exists() and any(outdir.iterdir()):
            raise SystemExit(
                f"{outdir} exists and is not a generated bench project; refusing to overwrite"
            )
        shutil.rmtree(outdir)
    for rel, text in files.items():
        p = outdir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    _git(outdir, "init", "-q", "-b", "main")
    _git(outdir, "add", "-A")
    _git(
        outdir,
        "commit",
        "-q",
        "--no-gpg-sign",
        "--no-verify",
        "-m",
        f"synthetic dbt project N={n} seed={seed}",
    )
    return gen


# ---------------------------------------------------------------------- change
def apply_change(outdir: Path, k: int, seed: int) -> list[str]:
    meta = json.loads((outdir / META_FILE).read_text(encoding="utf-8"))
    _git(outdir, "checkout", "-q", "HEAD", "--", "models")
    rng = random.Random(seed * 7919 + k)
    models = meta["models"]
    n_sql = k // 2
    yaml_files = sorted({m["yaml"] for m in models})
    n_yaml = min(k - n_sql, len(yaml_files))
    n_sql = k - n_yaml
    changed: list[str] = []

    for path in rng.sample(yaml_files, n_yaml):
        p = outdir / path
        text = p.read_text(encoding="utf-8")
        in_file = [m for m in models if m["yaml"] == path]
        cands = [
            m for m in in_file if not m["contracted"] and len(m["documented"]) < len(m["columns"])
        ]
        if cands:
            m = rng.choice(cands)
            col, typ = next((c, t) for c, t in m["columns"] if c not in m["documented"])
            anchor = f"  - name: {m['name']}\n"
            start = text.index(anchor)
            cpos = text.index("    columns:\n", start) + len("    columns:\n")
            add = (
                f'      - name: {col}\n        description: "Documented in a change (bench)."\n'
                f"        data_type: {typ}\n"
            )
            text = text[:cpos] + add + text[cpos:]
        else:  # everything documented: reword a description
            m = rng.choice(in_file)
            anchor = f'  - name: {m["name"]}\n    description: "'
            text = text.replace(anchor, anchor + "(Reviewed) ", 1)
        p.write_text(text, encoding="utf-8")
        changed.append(path)

    picked = rng.sample(models, min(n_sql, len(models)))
    for m in picked:
        path = m["sql"][-1]
        p = outdir / path
        text = p.read_text(encoding="utf-8")
        if m["contracted"] or not text.rstrip().endswith("select * from final"):
            # no schema change: narrow the rows
            body = text.rstrip("\n")
            kw = "  and" if body.rsplit("\n", 1)[-1].startswith("where ") else "where"
            text = body + f"\n{kw} 1 = 1  -- bench change: filter placeholder\n"
        else:
            text = text.rstrip("\n")[: -len("select * from final")] + (
                "select\n    final.*,\n    current_date as bench_edited_on\nfrom final\n"
            )
        p.write_text(text, encoding="utf-8")
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n", type=int, help="number of models")
    ap.add_argument(
        "outdir", type=Path, help="output directory (replaced if it holds a generated project)"
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--change",
        type=int,
        default=None,
        metavar="K",
        help="modify K files of the (generated) project without committing; print their paths",
    )
    args = ap.parse_args(argv)
    outdir: Path = args.outdir.resolve()
    if args.change is not None:
        meta_path = outdir / META_FILE
        fresh = True
        if meta_path.exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            fresh = meta.get("n") != args.n or meta.get("seed") != args.seed
        if fresh:
            generate(args.n, outdir, args.seed)
        for path in apply_change(outdir, args.change, args.seed):
            print(path)
        return 0
    gen = generate(args.n, outdir, args.seed)
    layers = {
        ly: sum(1 for m in gen.models if m.layer == ly)
        for ly in ("staging", "intermediate", "marts")
    }
    print(
        f"generated {len(gen.models)} models {layers} "
        f"({sum(1 for m in gen.models if m.contracted)} contracted, "
        f"{sum(1 for m in gen.models if m.version_cols)} versioned, "
        f"{len(gen.raw_tables)} raw tables) in {outdir}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
