#!/usr/bin/env python3
"""Generate a small dbt project (DuckDB) around ONE wide model, to measure how bulwark's
column and type inference grows with the width of a query.

    python bench/generate_wide.py OUTDIR --ctes 50 --columns 200 [--unions 0]

The project: a seed ``raw`` with ``--columns`` columns (header + one row) and a model
``wide`` made of ``--ctes`` CTEs; CTE ``i`` selects every column of CTE ``i-1`` by name,
qualified by an alias, a few as expressions (casts, arithmetic, ``coalesce``), and joins
the previous CTE to itself every tenth step; the final select names every column of the
last CTE. With ``--unions N`` the final select is a chain of N ``union all`` branches over
the last CTE followed by an ``order by`` of output columns (the shape that was quadratic
on real projects). A ``downstream`` model selects a few columns of ``wide``, so checking
it needs ``wide``'s output schema. The tree is committed in a fresh git repository.

Standard library only; the same arguments give byte-identical files.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path


def wide_sql(ctes: int, columns: int, unions: int) -> str:
    cols = [f"c{j:04d}" for j in range(columns)]
    parts = []
    prev = "{{ ref('raw') }}"
    for i in range(ctes):
        alias = f"t{i}"
        items = []
        for j, c in enumerate(cols):
            if j % 7 == 3:
                items.append(f"cast({alias}.{c} as bigint) as {c}")
            elif j % 7 == 5:
                items.append(f"coalesce({alias}.{c}, 0) + 1 as {c}")
            else:
                items.append(f"{alias}.{c}")
        join = ""
        if i and i % 10 == 0:
            join = f"\n    join {prev} as j{i} on j{i}.{cols[0]} = {alias}.{cols[0]}"
        parts.append(f"cte_{i} as (\n    select\n        " + ",\n        ".join(items)
                     + f"\n    from {prev} as {alias}{join}\n    where {alias}.{cols[0]} is not null\n)")
        prev = f"cte_{i}"
    body = "with\n" + ",\n".join(parts) + "\n"
    final = "select\n    " + ",\n    ".join(cols) + f"\nfrom {prev}"
    if unions:
        branches = [final + f"\nwhere {cols[0]} >= {k}" for k in range(unions)]
        final = "\nunion all\n".join(branches) + f"\norder by {cols[0]}, {cols[-1]}"
    return body + final + "\n"


def generate(outdir: Path, ctes: int, columns: int, unions: int = 0) -> None:
    if outdir.exists():
        shutil.rmtree(outdir)
    (outdir / "models").mkdir(parents=True)
    (outdir / "seeds").mkdir()
    (outdir / "dbt_project.yml").write_text(
        "name: wide\nversion: '1.0.0'\nconfig-version: 2\nprofile: wide\n"
        "model-paths: ['models']\nseed-paths: ['seeds']\n")
    (outdir / "profiles.yml").write_text(
        "wide:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: wide.duckdb\n")
    cols = [f"c{j:04d}" for j in range(columns)]
    (outdir / "seeds" / "raw.csv").write_text(",".join(cols) + "\n"
                                              + ",".join("1" for _ in cols) + "\n")
    (outdir / "models" / "wide.sql").write_text(wide_sql(ctes, columns, unions))
    (outdir / "models" / "downstream.sql").write_text(
        f"select {cols[0]}, {cols[-1]} from {{{{ ref('wide') }}}}\n")
    (outdir / ".gitignore").write_text(".bulwark-cache/\ntarget/\nlogs/\n*.duckdb\n")
    env = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
           "PATH": "/usr/bin:/bin"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com",
                 "commit", "-qm", "wide model"]):
        subprocess.run(cmd, cwd=outdir, check=True, env=env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outdir")
    ap.add_argument("--ctes", type=int, default=10)
    ap.add_argument("--columns", type=int, default=20)
    ap.add_argument("--unions", type=int, default=0)
    args = ap.parse_args()
    generate(Path(args.outdir), args.ctes, args.columns, args.unions)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
