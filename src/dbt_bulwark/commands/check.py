"""`bulwark check`: every static hook at once (fast-compile, critical tags, contracts,
schema diff) on one project load, with the same summary as `bulwark ci --fast`.

It is `bulwark ci` restricted to the static layers; see :mod:`dbt_bulwark.ci`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dbt_bulwark.commands.ci import add_run_arguments

    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dbt_bulwark.ci import STATIC, run_ci

    args.fast, args.full, args.layers = False, False, ",".join(STATIC)
    args.allow_skipped = False
    args.target, args.profiles_dir, args.embedded = None, None, False
    return run_ci(args)
