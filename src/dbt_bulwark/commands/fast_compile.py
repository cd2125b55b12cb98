"""`bulwark fast-compile`: what `dbt parse`/`dbt compile` would reject, without a warehouse.

Default: the nodes the given files affect plus their children (project-wide
reference checks always run); ``--all-files`` or no files: the whole project.
``--dbt`` delegates to real ``dbt parse`` (imports nothing of dbt here: it runs
the ``dbt`` executable) for users who want exactly dbt's verdict.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

from dbt_bulwark.cli import add_common_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--dbt", action="store_true",
                        help="run real `dbt parse` on each project instead (needs dbt and a "
                             "profile; slow, exact)")
    parser.add_argument("--profiles-dir", default=None, metavar="DIR",
                        help="with --dbt: passed to dbt")
    parser.add_argument("--target", default=None, help="with --dbt: passed to dbt")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "dbt", False):
        return run_dbt_parse(args)
    from dbt_bulwark.checks.fast_compile import check
    from dbt_bulwark.runner import run_hook

    return run_hook(args, check, load_findings="all")


def run_dbt_parse(args: argparse.Namespace) -> int:
    """Delegate to `dbt parse` per project; exit 1 when any parse fails."""
    from dbt_bulwark.findings import UsageError
    from dbt_bulwark.runner import open_context

    ctx = open_context(args)
    dbt = shutil.which("dbt") or os.path.join(os.path.dirname(sys.executable), "dbt")
    if not os.path.exists(dbt):
        raise UsageError("--dbt needs dbt installed (pip install dbt-core and an adapter)")
    roots = ctx.ws.project_roots if ctx.all_files else \
        [r for r in ctx.ws.project_roots if r in ctx.ws.affected(ctx.files)]
    status = 0
    for root in roots:
        project_dir = str(ctx.ws.repo_root / root) if root else str(ctx.ws.repo_root)
        cmd = [dbt, "parse", "--project-dir", project_dir]
        if vars_text := getattr(args, "vars", None):
            cmd += ["--vars", vars_text]
        if args.profiles_dir:
            cmd += ["--profiles-dir", args.profiles_dir]
        if args.target:
            cmd += ["--target", args.target]
        sys.stdout.write(f"bulwark fast-compile --dbt: {' '.join(cmd)}\n")
        sys.stdout.flush()
        proc = subprocess.run(cmd, cwd=project_dir, check=False)
        if proc.returncode != 0:
            status = 1
    return status
