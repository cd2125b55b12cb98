"""`bulwark ci`: the local CI script -- every layer in order, with timings and a summary.

See :mod:`dbt_bulwark.run.ci` and docs/hooks/ci.md.
"""

from __future__ import annotations

import argparse


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """Where dbt runs (shared with `bulwark baseline`)."""
    parser.add_argument("--target", default=None,
                        help="run dbt on this target of your own profile (default: your "
                             "profile's default target when one is configured for the "
                             "project and its adapter is installed, else embedded DuckDB)")
    parser.add_argument("--profiles-dir", default=None, metavar="DIR",
                        help="where your profiles.yml is (as for dbt; read, never written)")
    parser.add_argument("--embedded", action="store_true",
                        help="always use the embedded DuckDB, even when a profile exists")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """What `bulwark ci` and `bulwark check` share: scope, base, output."""
    from dbt_bulwark.run.ci import OUTPUT_FORMATS

    parser.add_argument("files", nargs="*",
                        help="check these files (default: what changed since the base)")
    parser.add_argument("--all-files", action="store_true",
                        help="static layers check the whole project, not only the changes")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop at the first layer that fails")
    parser.add_argument("--base", default=None, metavar="REV",
                        help="git revision to compare with (default: merge base of HEAD "
                             "and the main branch)")
    from dbt_bulwark.cli import add_base_arguments

    add_base_arguments(parser, base=False)
    parser.add_argument("--project-dir", action="append", default=None, metavar="DIR",
                        help="dbt project directory (repeatable; default: every "
                             "dbt_project.yml found)")
    parser.add_argument("--repo-root", default=None, metavar="DIR",
                        help="repository root (default: git top level, else the current "
                             "directory)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="text",
                        help="output format (markdown: a PR summary)")
    parser.add_argument("--summary-file", default=None, metavar="PATH",
                        help="also append the Markdown summary to this file "
                             "(e.g. $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--vars", default=None, help="YAML/JSON dict of vars, as for dbt --vars")
    parser.add_argument("--no-cache", action="store_true",
                        help="do not read or write the parse cache; dbt runs in a temp dir")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress lines on stderr")
    from dbt_bulwark.cli import add_code_selection

    add_code_selection(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dbt_bulwark.run.ci import LAYERS

    add_run_arguments(parser)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--fast", action="store_true",
                      help="static layers only (the default)")
    mode.add_argument("--full", action="store_true",
                      help="static layers, then dbt build --empty, data quality and baselines")
    mode.add_argument("--layers", default=None, metavar="A,B",
                      help="run these layers: " + ", ".join(LAYERS))
    parser.add_argument("--allow-skipped", action="store_true",
                        help="exit 0 even when a layer was skipped (cannot run here)")
    add_execution_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dbt_bulwark.run.ci import run_ci

    return run_ci(args)
