"""`bulwark baseline capture|check [selector]`: output baselines of critical models (runs dbt).

``capture`` builds the selected models (default: ``baselines.select``, i.e.
``tag:critical``) and writes one JSON per model under ``.bulwark/baselines/``;
``check`` rebuilds and compares. See :mod:`dbt_bulwark.run.baseline` and docs/hooks/ci.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dbt_bulwark.commands.ci import add_execution_arguments

    parser.add_argument("action", choices=("capture", "check"),
                        help="capture: write baselines; check: compare with them")
    parser.add_argument("select", nargs="*",
                        help="dbt selector of the models (default: baselines.select)")
    parser.add_argument("--project-dir", action="append", default=None, metavar="DIR",
                        help="dbt project directory (repeatable; default: every "
                             "dbt_project.yml found)")
    parser.add_argument("--repo-root", default=None, metavar="DIR")
    parser.add_argument("--format", choices=("text", "json", "github"), default="text")
    parser.add_argument("--vars", default=None, help="YAML/JSON dict of vars, as for dbt --vars")
    parser.add_argument("--no-cache", action="store_true",
                        help="dbt runs in a temporary directory")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the SQL the baselines run for each model (columns from "
                             "the YAML) on the project's adapter, and run nothing")
    add_execution_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dbt_bulwark.findings import EXIT_USAGE, exit_code, report
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.project.workspace import open_workspace
    from dbt_bulwark.run.baseline import capture_baselines, check_baselines
    from dbt_bulwark.run.dbt_exec import DbtSession, DbtUnavailable

    ws = open_workspace(args.project_dir, args.repo_root, args.vars, not args.no_cache)
    if not ws.project_roots:
        sys.stderr.write("bulwark baseline: no dbt_project.yml found\n")
        return EXIT_USAGE
    selector = " ".join(args.select) or None
    if args.dry_run:
        return _dry_run(ws, selector, args)
    findings = []
    runs = []
    code = 0   # each project's findings judged by its own fail_on
    failed = False
    for root in ws.project_roots:
        project = ws.project(root)
        policy = load_policy(ws.fs, root)
        errors = [f for f in project.findings if f.severity == "error"]
        if errors:
            report(errors, "text", sys.stderr)
            sys.stderr.write(f"bulwark baseline: project {project.name} does not load; "
                             "fix the errors above first\n")
            return 1
        try:
            with DbtSession(project, ws.repo_root, target=args.target,
                            profiles_dir=args.profiles_dir, embedded=args.embedded,
                            cli_vars=ws.cli_vars, use_cache=not args.no_cache) as session:
                sys.stderr.write(f"bulwark baseline {args.action}: {project.name} on "
                                 f"{session.engine.description}\n")
                if args.action == "capture":
                    result = capture_baselines(session, policy, selector)
                else:
                    result = check_baselines(session, policy, selector)
        except DbtUnavailable as exc:
            sys.stderr.write(f"bulwark baseline: {exc}\n")
            return EXIT_USAGE
        failed = failed or result.status == "failed"
        code = max(code, exit_code(result.findings, policy.fail_on))
        findings.extend(result.findings)
        runs.append((project.name, result))
    ws.save()
    if args.format == "json":
        json.dump({"action": args.action, "projects": [
            {"project": name, "status": r.status, "summary": r.summary, "details": r.details,
             "written": r.written, "findings": [f.to_dict() for f in r.findings]}
            for name, r in runs]}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        if args.format == "text":
            for name, r in runs:
                prefix = f"[{name}] " if len(runs) > 1 else ""
                for d in r.details:
                    sys.stdout.write(f"{prefix}{d}\n")
        report(findings, args.format, sys.stdout)
        if args.format == "text":
            for name, r in runs:
                label = f" [{name}]" if len(runs) > 1 else ""
                sys.stdout.write(f"bulwark baseline {args.action}{label}: {r.status}: {r.summary}\n")
    return 1 if failed else code


def _dry_run(ws: Any, selector: str | None, args: argparse.Namespace) -> int:
    """Print the stats/content-hash SQL per selected model; no dbt needed."""
    from dbt_bulwark.findings import EXIT_USAGE
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.run.baseline import columns_sql, select_models, stats_sql
    from dbt_bulwark.run.dbt_exec import project_adapter_for

    for root in ws.project_roots:
        project = ws.project(root)
        policy = load_policy(ws.fs, root)
        adapter = project_adapter_for(project, ws.repo_root, args.target,
                                      args.profiles_dir) or "duckdb"
        if args.embedded:
            adapter = "duckdb"
        nodes = select_models(project, policy, selector)
        if not nodes:
            sys.stderr.write(f"bulwark baseline: {project.name}: no models selected\n")
            return EXIT_USAGE if selector else 0
        for node in nodes:
            cols = [(c.name, str(c.data_type)) for c in node.columns if c.data_type]
            sys.stdout.write(f"-- {project.name}.{node.name} on {adapter} "
                             "(Jinja: dbt show --inline renders it)\n")
            if not cols:
                sys.stdout.write("-- no typed columns in the YAML: the columns are read from "
                                 "the built relation first:\n" + columns_sql([node]) + ";\n\n")
                continue
            sys.stdout.write(stats_sql(node, cols, adapter) + ";\n\n")
    return 0
