"""`bulwark ls`: list resources like `dbt ls`, from files alone (no dbt, no profile)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dbt_bulwark.findings import EXIT_OK, Finding, report
from dbt_bulwark.project.model import Node, Project, Resource

CONFIG_KEYS = ("tags", "materialized", "enabled", "contract", "access", "meta", "group",
               "on_schema_change")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--select", nargs="+", default=None, help="dbt selector")
    parser.add_argument("--exclude", nargs="+", default=None, help="dbt selector to exclude")
    parser.add_argument("--resource-type", action="append", default=None,
                        help="model, seed, snapshot, source, exposure, analysis, test")
    parser.add_argument("--indirect-selection", default="eager",
                        choices=("eager", "cautious", "buildable", "empty"),
                        help="how tests attached to selected nodes are selected (as in dbt)")
    parser.add_argument("--output", choices=("name", "path", "json", "selector"), default="name")
    parser.add_argument("--include-disabled", action="store_true",
                        help="also list disabled nodes (json: config.enabled is false)")
    parser.add_argument("--project-dir", action="append", default=None, metavar="DIR")
    parser.add_argument("--repo-root", default=None)
    parser.add_argument("--vars", default=None)
    parser.add_argument("--no-cache", action="store_true")


def resource_json(project: Project, res: Resource) -> dict[str, Any]:
    conf = getattr(res, "config", {}) or {}
    config = {k: conf.get(k) for k in CONFIG_KEYS if k in conf}
    config["tags"] = res.tags
    if "contract" in config and isinstance(config["contract"], dict):
        config["contract"] = {"enforced": bool(config["contract"].get("enforced"))}
    return {
        "unique_id": res.unique_id,
        "name": res.name,
        "resource_type": res.resource_type,
        "package_name": res.package_name,
        "original_file_path": res.original_file_path,
        "version": getattr(res, "version", None),
        "config": config,
        # like dbt's manifest: a disabled node's refs are not resolved
        "depends_on": {"nodes": list(getattr(res, "depends_on", []) or [])
                       if getattr(res, "enabled", True) else []},
    }


def run(args: argparse.Namespace) -> int:
    from dbt_bulwark.project.selector import select
    from dbt_bulwark.project.workspace import open_workspace

    ws = open_workspace(args.project_dir, args.repo_root, args.vars, not args.no_cache)
    out = sys.stdout
    problems: list[Finding] = []
    for project in ws.projects():
        problems.extend(f for f in project.findings if f.severity in ("error", "warning"))
        chosen = select(project, args.select, args.exclude, args.resource_type,
                        args.indirect_selection)
        if not args.resource_type:  # like `dbt ls`: analyses only when asked for
            chosen = [r for r in chosen if r.resource_type != "analysis"]
        if args.include_disabled:
            for nodes in project.disabled.values():
                chosen.extend(n for n in nodes
                              if not args.resource_type or n.resource_type in args.resource_type)
            chosen.extend(project.disabled_sources.values())
            chosen.extend(t for t in project.disabled_tests.values()
                          if not args.resource_type or t.resource_type in args.resource_type)
        for res in chosen:
            if args.output == "json":
                out.write(json.dumps(resource_json(project, res), default=str) + "\n")
            elif args.output == "path":
                out.write(res.original_file_path + "\n")
            elif args.output == "selector":
                out.write(".".join(res.fqn) + "\n")
            else:
                out.write(_name(res) + "\n")
    ws.save()
    if problems:
        report(problems, "text", sys.stderr)
    return EXIT_OK


def _name(res: Resource) -> str:
    if isinstance(res, Node):
        return ".".join(res.fqn)
    return ".".join(res.fqn)
