"""The `bulwark` command line: a thin dispatcher that imports only the command it runs.

Each command lives in ``dbt_bulwark.commands.<module>`` and exposes
``add_arguments(parser)`` and ``run(args) -> int``. Nothing here imports dbt,
sqlglot or ruamel: start-up stays cheap for every hook.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from dbt_bulwark.findings import EXIT_FINDINGS, EXIT_USAGE, FORMATS, UsageError

EXIT_INTERNAL = 3   # an unexpected error in bulwark itself (traceback in the log file)

# command name -> (module under dbt_bulwark.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("check", "run every static hook at once (fast-compile, tags, contracts, schema diff)"),
    "fast-compile": ("fast_compile", "catch what dbt parse/compile would reject, without a warehouse"),
    "check-contracts": ("check_contracts", "contract presence, completeness and SQL agreement"),
    "check-critical-tags": ("check_critical_tags", "critical models carry their tags and protections"),
    "check-schema-diff": ("check_schema_diff", "output schema changes against a git base and who they break"),
    "critical": ("critical", "rank models by downstream reach and suggest critical tags"),
    "ls": ("ls", "list resources like `dbt ls`, without dbt"),
    "ci": ("ci", "the local CI script: every layer in order with a summary"),
    "baseline": ("baseline", "capture or check output baselines of critical models (runs dbt)"),
}


def add_common_arguments(parser: argparse.ArgumentParser, files: bool = True) -> None:
    """Options every hook shares: files from pre-commit, project selection, output format."""
    if files:
        parser.add_argument("files", nargs="*", help="changed files (as passed by pre-commit)")
        parser.add_argument("--all-files", action="store_true",
                            help="check the whole project(s), not only what the files affect")
    parser.add_argument("--project-dir", action="append", default=None, metavar="DIR",
                        help="dbt project directory (repeatable; default: every dbt_project.yml found)")
    parser.add_argument("--repo-root", default=None, metavar="DIR",
                        help="repository root (default: git top level, else the current directory)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format")
    parser.add_argument("--vars", default=None,
                        help="YAML/JSON dict of vars, as for dbt --vars")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the parse cache")
    add_base_arguments(parser)
    add_code_selection(parser)
    # the hook's name (its code families decide which unused suppressions it reports)
    parser.set_defaults(bulwark_hook=parser.prog.split()[-1] if parser.prog else None)


def add_code_selection(parser: argparse.ArgumentParser) -> None:
    """``--select`` / ``--ignore`` of finding codes (by code or prefix, comma-separated,
    repeatable); bulwark.yml has the same as ``select:`` / ``ignore:``."""
    parser.add_argument("--select", dest="select_codes", action="append", default=None,
                        metavar="CODES",
                        help="report only these codes or prefixes, e.g. BLK1,BLK201 "
                             "(default: bulwark.yml `select`, else all)")
    parser.add_argument("--ignore", dest="ignore_codes", action="append", default=None,
                        metavar="CODES",
                        help="never report these codes or prefixes, e.g. BLK131 (added to "
                             "bulwark.yml `ignore`)")


def add_base_arguments(parser: argparse.ArgumentParser, base: bool = True) -> None:
    """The git base every hook compares with (regression.py)."""
    if base:
        parser.add_argument("--base", default=None, metavar="REV",
                            help="git revision to compare with (default: HEAD at pre-commit, "
                                 "PRE_COMMIT_FROM_REF at pre-push)")
    parser.add_argument("--no-base", dest="base_check", action="store_false",
                        help="do not compare with a base revision: every finding counts")
    parser.add_argument("--all-findings", action="store_true",
                        help="findings already present at the base revision count too")


def _top_parser() -> argparse.ArgumentParser:
    from dbt_bulwark import __version__

    parser = argparse.ArgumentParser(
        prog="bulwark",
        description="Fast, warehouse-free checks for dbt projects.",
        epilog="Commands:\n" + "\n".join(f"  {k:<22}{v[1]}" for k, v in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dbt-bulwark {__version__}")
    parser.add_argument("command", nargs="?", help="one of the commands below")
    return parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _hook_commands() -> frozenset[str]:
    from dbt_bulwark.checks.regression import HOOK_COMMANDS

    return HOOK_COMMANDS


def _tune_gc() -> None:
    """A command is a short process that builds many small objects (YAML nodes, SQL
    trees) and drops few cycles: collect the youngest generation every 50,000
    allocations instead of 700 (~8% of a 200-model --fix), same verdicts."""
    import gc

    threshold = gc.get_threshold()
    if threshold[0] and threshold[0] < 50_000:
        gc.set_threshold(50_000, threshold[1], threshold[2])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        top = _top_parser()
        top.parse_args(argv or ["--help"])
        return EXIT_USAGE
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.stderr.write(f"bulwark: unknown command {name!r}; try `bulwark --help`\n")
        return EXIT_USAGE
    module = importlib.import_module(f"dbt_bulwark.commands.{COMMANDS[name][0]}")
    _tune_gc()
    parser = _Parser(prog=f"bulwark {name}", description=COMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    from dbt_bulwark.project.gitfs import one_run

    try:
        with one_run():
            return _run_command(name, module, args)
    except UsageError as exc:
        sys.stderr.write(f"bulwark {name}: error: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _broken_pipe()
    except Exception as exc:  # noqa: BLE001 - the one place an unexpected error is reported
        if isinstance(exc, OSError) and exc.errno == errno.EPIPE:
            return _broken_pipe()
        return _internal_error(name, args, exc)


def _run_command(name: str, module: Any, args: argparse.Namespace) -> int:
    """The command's exit code (an always_run hook on a commit without dbt files: 0)."""
    if name in _hook_commands() and not getattr(args, "files", None) and \
            not getattr(args, "all_files", False) and os.environ.get("PRE_COMMIT"):
        from dbt_bulwark.checks.regression import no_dbt_change

        if no_dbt_change(args):
            return 0   # an always_run hook on a commit without dbt files: nothing to do
    code = int(module.run(args))
    sys.stdout.flush()   # a closed pipe shows here, not at interpreter exit
    return code


def _broken_pipe() -> int:
    """The reader went away (``bulwark ls | head -1``): stop quietly, as Python's own
    documentation recommends (stdout pointed at devnull so the exit flush cannot fail)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return EXIT_FINDINGS


def _file_in_progress(exc: BaseException) -> str | None:
    """The file being processed when ``exc`` was raised, read from the innermost frame of
    bulwark that has one (a ``node``/``res`` with a path, or a path variable)."""
    tb = exc.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if not frame.f_globals.get("__name__", "").startswith("dbt_bulwark"):
            continue
        local = frame.f_locals
        for name in ("node", "res", "target"):
            path = getattr(local.get(name), "repo_path", None)
            if isinstance(path, str) and path:
                return path
        for name in ("rp", "repo_path", "path", "rel"):
            value = local.get(name)
            if isinstance(value, str) and value and "/" in value or \
                    isinstance(value, str) and value.endswith((".sql", ".yml", ".yaml", ".py")):
                return str(value)
    return None


def _internal_error(name: str, args: argparse.Namespace, exc: BaseException) -> int:
    """One line on stderr (command, file, cause, where the traceback went), exit 3."""
    from dbt_bulwark.cache import log_exception
    from dbt_bulwark.project.workspace import find_repo_root

    where = _file_in_progress(exc)
    try:
        repo_root: Path | None = find_repo_root(getattr(args, "repo_root", None))
    except OSError:   # no working directory: the temp directory
        repo_root = None
    log = log_exception(exc, f"bulwark {name}{f' (while processing {where})' if where else ''}",
                        repo_root)
    what = str(exc).splitlines()[0][:300] if str(exc) else ""
    sys.stderr.write(
        f"bulwark {name}: internal error{f' while processing {where}' if where else ''}: "
        f"{exc.__class__.__name__}{': ' + what if what else ''} (traceback in {log}; "
        "please report it)\n")
    return EXIT_INTERNAL


def entry() -> None:
    """The ``bulwark`` command: :func:`main`, then an exit that runs every exit handler
    (``atexit``, ``weakref.finalize``, logging) but skips tearing down the interpreter's
    objects one by one -- a quarter of a second after a 200-model run, for memory the
    operating system takes back anyway. Falls back to a normal exit when a non-daemon
    thread still runs or the output cannot be flushed."""
    code = main()
    _quick_exit(code)


def _quick_exit(code: int) -> None:
    import atexit
    import threading

    main_thread = threading.main_thread()
    if any(t is not main_thread and t.is_alive() and not t.daemon
           for t in threading.enumerate()):
        raise SystemExit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise SystemExit(code) from None
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
