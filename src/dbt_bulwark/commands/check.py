"""`bulwark check`: every static hook at once (fast-compile, critical tags, contracts,
schema diff) on one project load, with the same summary as `bulwark ci --fast`.

It is `bulwark ci` restricted to the static layers; see :mod:`dbt_bulwark.ci`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dbt_bulwark.ci import OUTPUT_FORMATS

    parser.add_argument("files", nargs="*",
                        help="check these files (default: what changed since the base)")
    parser.add_argument("--all-files", action="store_true",
                        help="check the whole project(s), not only the changes")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop at the first hook that fails")
    parser.add_argument("--base", default=None, metavar="REV",
                        help="git revision to compare with (default: merge base of HEAD "
                             "and the main branch)")
    parser.add_argument("--project-dir", action="append", default=None, metavar="DIR",
                        help="dbt project directory (repeatable; default: every "
                             "dbt_project.yml found)")
    parser.add_argument("--repo-root", default=None, metavar="DIR")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="text")
    parser.add_argument("--summary-file", default=None, metavar="PATH",
                        help="also append the Markdown summary to this file")
    parser.add_argument("--vars", default=None, help="YAML/JSON dict of vars, as for dbt --vars")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from dbt_bulwark.ci import STATIC, run_ci

    args.fast, args.full, args.layers = False, False, ",".join(STATIC)
    args.allow_skipped = False
    args.target, args.profiles_dir, args.embedded = None, None, False
    return run_ci(args)
