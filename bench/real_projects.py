"""Run every static hook on real dbt projects (clean trees) and count findings by severity.

    python bench/real_projects.py DIR [DIR ...] [--without-packages] [--out FILE]

Each DIR is a dbt project (a folder with dbt_project.yml). With --without-packages the
project is copied to a temp dir without dbt_packages/ first (a fresh clone: no `dbt deps`).
Prints a Markdown table: project, models, per hook the exit code and errors/warnings/infos.
The bar is "nothing above info": any error or warning row is a false positive to look at.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOOKS = ("fast-compile", "check-contracts", "check-critical-tags", "check-schema-diff")


def run_hook(bulwark: str, hook: str, project: Path) -> tuple[int, dict[str, int], list[str], float]:
    cmd = [bulwark, hook, "--all-files", "--project-dir", str(project), "--format", "json"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=project)
    took = time.perf_counter() - start
    counts = {"error": 0, "warning": 0, "info": 0}
    samples: list[str] = []
    try:
        data = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        return proc.returncode, counts, [(proc.stderr or proc.stdout).strip()[-300:]], took
    for f in data.get("findings", []):
        counts[f.get("severity", "error")] = counts.get(f.get("severity", "error"), 0) + 1
        if f.get("severity") in ("error", "warning") and len(samples) < 3:
            samples.append(f"{f['path']}:{f['line']}: {f['code']} {f['message'][:120]}")
    if "Traceback" in proc.stderr:
        samples.append("TRACEBACK: " + proc.stderr.strip().splitlines()[-1])
    return proc.returncode, counts, samples, took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("projects", nargs="+")
    ap.add_argument("--without-packages", action="store_true")
    ap.add_argument("--bulwark", default=str(Path(sys.executable).with_name("bulwark")))
    args = ap.parse_args()
    print("| project | models | packages | " + " | ".join(HOOKS) + " |")
    print("|---|---:|---|" + "---|" * len(HOOKS))
    details: list[str] = []
    for raw in args.projects:
        src = Path(raw).resolve()
        with tempfile.TemporaryDirectory() as tmp:
            project = src
            if args.without_packages:
                project = Path(tmp) / src.name
                shutil.copytree(src, project, symlinks=True,
                                ignore=shutil.ignore_patterns("dbt_packages", "target", "logs",
                                                              ".bulwark-cache"))
            models = sum(1 for _ in project.rglob("*.sql")
                         if "dbt_packages" not in _.parts and "target" not in _.parts)
            cells = []
            for hook in HOOKS:
                rc, counts, samples, took = run_hook(args.bulwark, hook, project)
                cells.append(f"exit {rc}: {counts['error']}E {counts['warning']}W "
                             f"{counts['info']}I ({took:.1f}s)")
                details.extend(f"- {src.name} {hook}: {s}" for s in samples)
            pkgs = "removed" if args.without_packages else "as checked out"
            print(f"| {src.name} | {models} | {pkgs} | " + " | ".join(cells) + " |")
    if details:
        print("\nErrors and warnings (first three per hook):")
        print("\n".join(details))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
