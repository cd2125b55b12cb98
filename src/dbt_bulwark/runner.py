"""The shared shape of every hook: load, pick targets, check, report, exit code.

A hook supplies one function ``check(ctx, project, policy, targets)`` returning
findings; :func:`run_hook` does the rest the same way for every hook: repository
and project discovery, mapping pre-commit's file list to affected nodes
(``targets`` is None for "the whole project"), policy loading per project, load
problems of the touched files, ``exclude`` globs, output format and exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from dbt_bulwark.findings import Finding, exit_code, report
from dbt_bulwark.policy import Policy, load_policy
from dbt_bulwark.project import Project
from dbt_bulwark.workspace import Workspace, open_workspace


@dataclass
class HookContext:
    args: argparse.Namespace
    ws: Workspace
    files: list[str]                       # changed files, repo-relative
    all_files: bool
    notes: list[str] = field(default_factory=list)   # printed after the findings (stderr)
    state: dict[str, Any] = field(default_factory=dict)


Check = Callable[[HookContext, Project, Policy, "set[str] | None"], list[Finding]]


def open_context(args: argparse.Namespace) -> HookContext:
    ws = open_workspace(getattr(args, "project_dir", None), getattr(args, "repo_root", None),
                        getattr(args, "vars", None), not getattr(args, "no_cache", False))
    files = [ws.relative(f) for f in getattr(args, "files", []) or []]
    all_files = bool(getattr(args, "all_files", False)) or not files
    return HookContext(args=args, ws=ws, files=files, all_files=all_files)


def collect(ctx: HookContext, check: Check, include_load_findings: bool = True,
            load_findings: str = "errors") -> list[Finding]:
    """Run ``check`` on every project the change touches; return all findings.

    Problems met while loading (invalid YAML, unreadable files...) of the touched files
    are added: only errors by default (a hook cannot check what it cannot read), every
    severity with ``load_findings="all"`` (fast-compile: what ``dbt parse`` reports).
    """
    ws = ctx.ws
    affected = {} if ctx.all_files else ws.affected(ctx.files)
    roots = ws.project_roots if ctx.all_files else [r for r in ws.project_roots if r in affected]
    findings: list[Finding] = []
    changed = set(ctx.files)
    for root in roots:
        project = ws.project(root)
        policy = load_policy(ws.fs, root)
        targets = None if ctx.all_files or "*" in affected.get(root, set()) else affected[root]
        if include_load_findings:
            findings.extend(f for f in project.findings
                            if (ctx.all_files or f.path in changed)
                            and (load_findings == "all" or f.severity == "error"))
        findings.extend(check(ctx, project, policy, targets))
        excludes = policy.get("exclude")
        if excludes:
            findings = [f for f in findings if not any(fnmatchcase(f.path, g) for g in excludes)]
        ctx.state.setdefault("fail_on", policy.get("fail_on"))
    return findings


def finish(ctx: HookContext, findings: list[Finding], summary: str = "") -> int:
    fmt = getattr(ctx.args, "format", "text")
    findings = filter_findings(ctx, findings)
    report(findings, fmt, sys.stdout, summary if fmt == "text" else "", totals=fmt == "text")
    for note in ctx.notes:
        sys.stderr.write(note + "\n")
    ctx.ws.save()
    return exit_code(findings, ctx.state.get("fail_on", "error"))


def filter_findings(ctx: HookContext, findings: list[Finding], hook: str | None = None,
                    report_directives: bool = True, with_loader: bool | None = None
                    ) -> list[Finding]:
    """Inline suppressions and ``--select``/``--ignore``/policy code selection
    (:func:`dbt_bulwark.suppressions.apply`): the one filter every hook's output passes."""
    from dbt_bulwark import suppressions

    hook = hook or getattr(ctx.args, "bulwark_hook", None)
    return suppressions.apply(
        findings, ctx.ws, files=ctx.files, all_files=ctx.all_files, hook=hook,
        report_directives=report_directives,
        with_loader=hook == "fast-compile" if with_loader is None else with_loader,
        select=suppressions.codes_arg(getattr(ctx.args, "select_codes", None)),
        ignore=suppressions.codes_arg(getattr(ctx.args, "ignore_codes", None)))


def run_hook(args: argparse.Namespace, check: Check, summary: str = "",
             load_findings: str = "errors") -> int:
    ctx = open_context(args)
    if not ctx.ws.project_roots:
        sys.stderr.write("bulwark: no dbt_project.yml found; nothing to check\n")
        return 0
    findings = collect(ctx, check, load_findings=load_findings)
    return finish(ctx, findings, summary)
