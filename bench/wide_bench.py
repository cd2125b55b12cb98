#!/usr/bin/env python3
"""Scaling of `bulwark check --all-files` with the width of ONE model (bench/generate_wide.py)
and with the number of models (bench/generate_project.py): wall time, CPU time (user+sys,
less sensitive to other load on a shared machine) and peak RSS, cold (no .bulwark-cache/).

    python bench/wide_bench.py [--repeat 3] [--bulwark PATH ...] [--sizes 500,2000,5000]
                               [--out bench/results-scaling.md]

Each (shape, bulwark) cell is the median of --repeat runs measured with /usr/bin/time.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

WIDE_SHAPES = [  # (label, ctes, columns, unions)
    ("10 CTEs x 50 cols", 10, 50, 0),
    ("50 CTEs x 50 cols", 50, 50, 0),
    ("200 CTEs x 50 cols", 200, 50, 0),
    ("10 CTEs x 20 cols", 10, 20, 0),
    ("10 CTEs x 200 cols", 10, 200, 0),
    ("10 CTEs x 1000 cols", 10, 1000, 0),
    ("union of 10 x 20 cols", 2, 20, 10),
    ("union of 50 x 20 cols", 2, 20, 50),
    ("union of 200 x 20 cols", 2, 20, 200),
]


def timed(cmd: list[str], cwd: Path, timeout: float) -> tuple[float, float, int, int]:
    """(wall s, cpu s, max RSS KiB, exit code) of one run."""
    fd, out = tempfile.mkstemp()
    os.close(fd)
    try:
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", out, *cmd], cwd=cwd,
                              capture_output=True, text=True, timeout=timeout)
        wall, user, sys_, rss = Path(out).read_text().split()[-4:]
        return float(wall), float(user) + float(sys_), int(rss), proc.returncode
    except subprocess.TimeoutExpired:
        return float("nan"), float("nan"), 0, -1
    finally:
        os.unlink(out)


def measure(bulwark: str, project: Path, repeat: int, timeout: float
            ) -> tuple[float, float, int, int]:
    runs = []
    for _ in range(repeat):
        shutil.rmtree(project / ".bulwark-cache", ignore_errors=True)
        runs.append(timed([bulwark, "check", "--all-files", "-q"], project, timeout))
        if runs[-1][3] < 0:
            break
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            max(r[2] for r in runs), max(r[3] for r in runs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bulwark", action="append", default=None,
                    help="bulwark executable(s) to compare (default: next to this Python)")
    ap.add_argument("--sizes", default="500,2000,5000", help="generated project sizes ('' = none)")
    ap.add_argument("--shapes", default=None, help="comma-separated indexes into WIDE_SHAPES")
    ap.add_argument("--workdir", default=str(HERE / "out" / "wide"))
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    bulwarks = args.bulwark or [str(Path(sys.executable).with_name("bulwark"))]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    from generate_wide import generate as gen_wide

    rows = ["| shape | bulwark | wall s | CPU s | peak RSS MiB | exit |",
            "|---|---|---:|---:|---:|---:|"]

    def emit(label: str, b: str, res: tuple[float, float, int, int]) -> None:
        wall, cpu, rss, rc = res
        rows.append(f"| {label} | `{b}` | {wall:.2f} | {cpu:.2f} | {rss / 1024:.0f} | {rc} |")
        print(rows[-1], flush=True)

    shapes = WIDE_SHAPES if args.shapes is None else \
        [WIDE_SHAPES[int(i)] for i in args.shapes.split(",") if i]
    for label, ctes, cols, unions in shapes:
        project = work / f"w{ctes}_{cols}_{unions}"
        gen_wide(project, ctes, cols, unions)
        for b in bulwarks:
            emit(f"one model: {label}", b, measure(b, project, args.repeat, args.timeout))
    for size in [int(s) for s in args.sizes.split(",") if s]:
        project = work / f"p{size}"
        if not (project / "dbt_project.yml").exists():
            subprocess.run([sys.executable, str(HERE / "generate_project.py"), str(size),
                            str(project)], check=True, capture_output=True)
        for b in bulwarks:
            emit(f"{size} generated models", b, measure(b, project, args.repeat, args.timeout))
    text = "\n".join(rows) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
