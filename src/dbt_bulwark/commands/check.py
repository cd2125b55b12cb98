"""`bulwark check` (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
import sys

from dbt_bulwark.cli import add_common_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write("bulwark check: not implemented yet\n")
    return 0
