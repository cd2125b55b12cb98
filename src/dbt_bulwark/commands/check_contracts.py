"""`bulwark check-contracts`: contract presence, completeness and agreement with the SQL.

``--fix`` enforces missing contracts and adds missing columns (with the types
inferred from the SQL) to the models' properties files, then checks again and
exits 1 when it changed a file, as pre-commit expects of a fixer.
"""

from __future__ import annotations

import argparse

from dbt_bulwark.cli import add_common_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--fix", action="store_true",
                        help="add `contract: {enforced: true}` and missing columns with their "
                             "inferred data_type to the models' properties YAML")


def run(args: argparse.Namespace) -> int:
    from dbt_bulwark.checks.contracts import apply_fixes, check
    from dbt_bulwark.findings import EXIT_FINDINGS
    from dbt_bulwark.runner import close, collect, finish, nothing_to_do, open_context

    ctx = open_context(args)
    if nothing_to_do(ctx):
        return 0
    findings = collect(ctx, check)
    if not getattr(args, "fix", False):
        return finish(ctx, findings)
    plans = ctx.state.get("contract_fixes") or []
    if not plans:
        return finish(ctx, findings)
    first = findings
    result = apply_fixes(ctx.ws.repo_root, plans)
    if not result.changed:
        return finish(ctx, findings + result.findings)
    # check again on the edited files (the fix must not leave anything it could do)
    ctx.ws.save()
    close(ctx)
    again = open_context(args)
    # the re-check reuses this run's parses (YAML, static extraction, parse renders) and
    # inferred columns, on disk or (--no-cache) in memory only; every key is the content's
    # hash, so the edited properties file is parsed again
    again.ws.cache, again.ws.analysis_cache = ctx.ws.cache, ctx.ws.analysis_cache
    args_fix, args.fix = args.fix, False
    try:
        findings = collect(again, check)
    finally:
        args.fix = args_fix
    again.notes = result.notes + [
        f"bulwark check-contracts: --fix changed {len(result.changed)} file(s); "
        "review and stage them"]
    # why a model was left as it was is only known to the fixing pass: keep saying it
    unfixed = [f for f in first if f.code == "BLK221"]
    code = finish(again, findings + result.findings + unfixed)
    return max(code, EXIT_FINDINGS)
