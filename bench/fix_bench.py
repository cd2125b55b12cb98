#!/usr/bin/env python3
"""Time ``bulwark check-contracts --fix`` on one properties file describing N models.

Usage:
    python bench/fix_bench.py [--models 200] [--repeat 3] [--workdir bench/out/fix]

Writes a DuckDB dbt project whose ``models/_models.yml`` lists N models, each tagged
critical (so ``contracts.select`` requires a contract) with one column declared and
no contract: ``--fix`` must enforce N contracts and add the missing typed columns, all
in that one file. Every timed run starts from the same file (restored untimed), and
runs with ``--no-cache`` (after one untimed run that byte-compiles the modules, as an
install does). Prints the median wall clock and CPU time (whole process;
CPU time is what to compare on a shared machine) and checks
that the fix left nothing to report.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def generate(root: Path, n: int) -> str:
    if root.exists():
        shutil.rmtree(root)
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(
        "name: fixbench\nprofile: fixbench\nconfig-version: 2\n"
        "models:\n  fixbench:\n    +materialized: table\n")
    (root / "bulwark.yml").write_text("dialect: duckdb\n")
    lines = ["version: 2", "", "models:"]
    for i in range(n):
        (root / "models" / f"m{i:04d}.sql").write_text(
            f"select cast({i} as integer) as id, cast('x' as varchar) as label_{i},\n"
            f"       cast(1.5 as double) as amount, current_date as as_of\n")
        lines += [f"  - name: m{i:04d}   # model {i}",
                  f"    description: 'Model number {i}.'",
                  "    config:",
                  "      tags: [critical]",
                  "    columns:",
                  "      - name: id",
                  "        data_tests: [unique, not_null]"]
    text = "\n".join(lines) + "\n"
    (root / "models" / "_models.yml").write_text(text)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default=str(BENCH_DIR / "out" / "fix"))
    ap.add_argument("--bulwark", default=str(Path(sys.executable).with_name("bulwark")))
    args = ap.parse_args(argv)
    root = Path(args.workdir).resolve()
    text = generate(root, args.models)
    yml = root / "models" / "_models.yml"
    cmd = [args.bulwark, "check-contracts", "--fix", "--all-files", "--no-cache",
           "--project-dir", str(root), "--repo-root", str(root)]
    # what an installed hook runs: byte-compiled modules (pip writes them at install; a
    # PYTHONDONTWRITEBYTECODE environment would time the compiling of our own sources
    # in every run). One untimed run writes them.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    yml.write_text(text)
    subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
    times: list[float] = []
    cpu: list[float] = []
    for _ in range(args.repeat):
        yml.write_text(text)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        if proc.returncode != 1 or "BLK2" in proc.stdout:
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-2000:])
            return 1
    after = subprocess.run(cmd[:2] + cmd[3:], cwd=root, capture_output=True, text=True)
    if after.returncode != 0:
        sys.stderr.write("after --fix, findings remain:\n" + after.stdout[-2000:])
        return 1
    print(f"--fix on one properties file of {args.models} models: median "
          f"{statistics.median(times):.2f} s wall (min {min(times):.2f}, max {max(times):.2f}), "
          f"{statistics.median(cpu):.2f} s CPU, {args.repeat} runs; load average "
          f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
