#!/usr/bin/env python3
"""Per-model cost of sqlglot column analysis (dbt_bulwark.sql.columns) on a medium model:
output columns, unknown columns and column uses of the lineage query of
tests/test_columns.py, each run on a fresh text (a comment defeats the caches).

    python bench/columns_bench.py [--models 20] [--repeat 3] [--max-ms 100]

Prints the median per-model milliseconds of --repeat runs; with --max-ms, exits 1 when
the median is above it. Moved here from the unit tests (issue 15): a wall-clock limit in a
unit test fails on a loaded machine and passes on a fast one whatever the code does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def per_model_ms(models: int, run: int) -> float:
    from test_columns import LINEAGE_SQL, UPSTREAM

    from dbt_bulwark.sql.columns import column_uses, find_unknown_columns, infer_output_columns

    started = time.perf_counter()
    for i in range(models):
        sql = LINEAGE_SQL + f"\n-- {run} {i}"  # defeat the caches
        infer_output_columns(sql, "duckdb", UPSTREAM)
        find_unknown_columns(sql, "duckdb", UPSTREAM)
        column_uses(sql, "duckdb", UPSTREAM, "__ref__orders", "status")
    return (time.perf_counter() - started) * 1000 / models


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max-ms", type=float, default=None,
                    help="exit 1 when the median per-model time is above this")
    args = ap.parse_args(argv)
    times = [per_model_ms(args.models, r) for r in range(args.repeat)]
    median = statistics.median(times)
    print(f"columns: {median:.1f} ms per model (median of {args.repeat}; "
          f"min {min(times):.1f}, max {max(times):.1f}; {args.models} models a run)")
    if args.max_ms is not None and median > args.max_ms:
        print(f"columns: above --max-ms {args.max_ms:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
