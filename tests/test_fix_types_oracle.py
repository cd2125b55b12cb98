"""Oracle: the types ``check-contracts --fix`` writes are the types DuckDB reports.

A project of contracted models without ``data_type`` -- one model per expression:
now()/current_timestamp/current_date, date arithmetic, sums and averages of integers
and decimals, count, window functions, string functions, casts, case, coalesce over
mixed types -- is fixed by ``bulwark check-contracts --fix``; then real ``dbt build``
on DuckDB must pass every contract it enforced (dbt-duckdb compares the declared
types with what the warehouse reports, precision and scale included). A type that is
not certain is not written: the model's contract is left for a human, with a BLK221
naming the column -- and the test checks that only expressions whose DuckDB type
really is ambiguous from the SQL alone end up there.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.oracle, pytest.mark.slow]

SRC = """
select cast(3 as integer) as i, cast(7 as bigint) as bi, cast(2.5 as decimal(10, 2)) as d,
       cast('abc' as varchar) as s, cast('2024-01-02' as date) as dt,
       cast('2024-01-02 03:04:05' as timestamp) as ts, cast(1.5 as double) as f,
       true as b, cast(null as integer) as ni
"""

# name -> (select list over ref('src') as t, group by / window needs nothing special)
EXPRESSIONS: dict[str, str] = {
    "now_fn": "now()",
    "current_ts": "current_timestamp",
    "current_dt": "current_date",
    "date_plus_interval": "dt + interval 1 day",
    "date_plus_days": "dt + 3",
    "ts_minus_interval": "ts - interval '1 hour'",
    "date_trunc_month": "date_trunc('month', dt)",
    "date_diff_days": "date_diff('day', dt, cast('2024-02-01' as date))",
    "extract_year": "extract(year from dt)",
    "ts_to_date": "cast(ts as date)",
    "sum_int": "sum(i)",
    "sum_bigint": "sum(bi)",
    "sum_decimal": "sum(d)",
    "avg_int": "avg(i)",
    "avg_decimal": "avg(d)",
    "count_star": "count(*)",
    "count_col": "count(s)",
    "min_str": "min(s)",
    "max_ts": "max(ts)",
    "row_number_win": "row_number() over (order by i)",
    "rank_win": "rank() over (order by i)",
    "sum_win": "sum(i) over ()",
    "lag_win": "lag(s) over (order by i)",
    "upper_str": "upper(s)",
    "length_str": "length(s)",
    "concat_str": "concat(s, 'x')",
    "pipe_concat": "s || 'x'",
    "substr_str": "substr(s, 1, 2)",
    "replace_str": "replace(s, 'a', 'b')",
    "cast_bigint": "cast(i as bigint)",
    "cast_decimal": "cast(i as decimal(18, 4))",
    "cast_double": "cast(d as double)",
    "cast_varchar": "cast(i as varchar)",
    "case_str": "case when i > 0 then 'pos' else 'neg' end",
    "case_int": "case when b then 1 else 0 end",
    "coalesce_int": "coalesce(ni, 0)",
    "coalesce_int_decimal": "coalesce(ni, d)",
    "coalesce_double_int": "coalesce(f, i)",
    "int_plus": "i + 1",
    "int_times_bigint": "i * bi",
    "int_div": "i / 2",
    "decimal_times": "d * 2",
    "double_plus": "f + 1",
    "bool_not": "not b",
    "int_literal": "42",
    "str_literal": "'x'",
}

AGGREGATES = {"sum_int", "sum_bigint", "sum_decimal", "avg_int", "avg_decimal", "count_star",
              "count_col", "min_str", "max_ts"}

# what DuckDB reports but the SQL alone cannot make certain for every warehouse version:
# these may be left untyped (never typed wrongly)
MAY_BE_UNCERTAIN = {"sum_int", "sum_bigint", "sum_decimal", "avg_int", "avg_decimal",
                    "int_div", "decimal_times", "coalesce_int_decimal", "coalesce_double_int",
                    "sum_win", "date_diff_days", "extract_year", "date_trunc_month",
                    "date_plus_interval", "ts_minus_interval", "date_plus_days",
                    "int_times_bigint", "length_str", "count_star", "count_col",
                    "row_number_win", "rank_win", "now_fn", "current_ts", "case_int",
                    "int_literal", "coalesce_int", "int_plus", "double_plus", "lag_win",
                    "replace_str"}


def make_project(root: Path) -> None:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: types_oracle\nprofile: types_oracle\nconfig-version: 2\n"
        "models:\n  types_oracle:\n    +materialized: table\n")
    (root / "bulwark.yml").write_text("dialect: duckdb\n")
    (root / "models" / "src.sql").write_text(SRC)
    lines = ["version: 2", "", "models:"]
    for name, expr in EXPRESSIONS.items():
        sql = f"select {expr} as {name} from {{{{ ref('src') }}}} as t\n"
        (root / "models" / f"{name}.sql").write_text(sql)
        lines += [f"  - name: {name}", "    config:", "      tags: [critical]"]
    (root / "models" / "_models.yml").write_text("\n".join(lines) + "\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)


def bulwark(root: Path, *args: str) -> tuple[int, list[dict]]:
    from dbt_bulwark import cli

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["check-contracts", "--all-files", "--format", "json", "--repo-root",
                         str(root), "--project-dir", str(root), "--no-cache", *args])
    return code, json.loads(buf.getvalue())["findings"]


def test_fixed_types_pass_dbt_build_on_duckdb(tmp_path: Path) -> None:
    import dbt_oracle
    from test_contracts_oracle import dbt_build

    dbt_oracle.require_dbt()
    root = tmp_path / "types_oracle"
    make_project(root)
    code, findings = bulwark(root, "--fix")
    assert code == 1
    data = yaml.safe_load((root / "models" / "_models.yml").read_text())
    entries = {m["name"]: m for m in data["models"]}
    enforced = {n for n, m in entries.items()
                if (m.get("config") or {}).get("contract", {}).get("enforced")}
    untyped = {n for n, m in entries.items() if n not in enforced}
    unfixed = {f["node"].split(".")[-1] for f in findings if f["code"] == "BLK221"}
    # every model left alone is said so, and only for an expression whose type is ambiguous
    assert untyped == unfixed, (untyped, unfixed)
    assert untyped <= MAY_BE_UNCERTAIN, untyped - MAY_BE_UNCERTAIN
    assert len(enforced) >= len(EXPRESSIONS) // 2, sorted(untyped)
    for name in untyped:
        cols = entries[name].get("columns") or []
        assert all(not c.get("data_type") for c in cols if c["name"] == name)
    # real dbt build on DuckDB: every contract the fix enforced holds
    results = dbt_build(root)
    failed = {uid.split(".")[-1]: r.get("message") for uid, r in results.items()
              if uid.startswith("model.") and r["status"] != "success"}
    assert not failed, failed
    built = {uid.split(".")[-1] for uid, r in results.items() if uid.startswith("model.")}
    assert enforced <= built
    shutil.rmtree(tmp_path / f"_target_{root.name}", ignore_errors=True)
