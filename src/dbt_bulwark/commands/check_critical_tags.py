"""`bulwark check-critical-tags`: critical models carry their tags and protections.

See docs/hooks/check-critical-tags.md. Findings BLK301-BLK312; ``--fix`` adds missing
required tags to the model's properties YAML and exits 1 when it changed a file.
"""

from __future__ import annotations

import argparse

from dbt_bulwark.cli import add_common_arguments
from dbt_bulwark.findings import EXIT_FINDINGS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--fix", action="store_true",
                        help="add missing required tags to the models' properties YAML "
                        "(exit code 1 when a file was changed)")


def run(args: argparse.Namespace) -> int:
    from dbt_bulwark import runner
    from dbt_bulwark.checks import critical

    ctx = runner.open_context(args)
    if runner.nothing_to_do(ctx):
        return 0
    findings = runner.collect(ctx, critical.check)
    changed: list[str] = []
    if args.fix:
        findings, changed = critical.apply_tag_fixes(ctx, findings)
    rc = runner.finish(ctx, findings, critical.summary_line(ctx))
    return EXIT_FINDINGS if changed else rc
