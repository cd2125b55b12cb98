"""The shared shape of every hook: load, pick targets, check, report, exit code.

A hook supplies one function ``check(ctx, project, policy, targets)`` returning
findings; :func:`run_hook` does the rest the same way for every hook: repository
and project discovery, mapping pre-commit's file list to affected nodes
(``targets`` is None for "the whole project"), policy loading per project, load
problems of the touched files, ``exclude`` globs, output format and exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from dbt_bulwark.checks.regression import is_dbt_file, no_dbt_change
from dbt_bulwark.findings import EXIT_OK, Finding, exit_code, report
from dbt_bulwark.policy import Policy, load_policy
from dbt_bulwark.project.model import Project
from dbt_bulwark.project.workspace import Workspace, open_workspace


@dataclass
class HookContext:
    args: argparse.Namespace
    ws: Workspace
    files: list[str]                       # changed files, repo-relative
    all_files: bool
    notes: list[str] = field(default_factory=list)   # printed after the findings (stderr)
    state: dict[str, Any] = field(default_factory=dict)


Check = Callable[[HookContext, Project, Policy, "set[str] | None"], list[Finding]]


def nothing_to_do(ctx: HookContext) -> bool:
    """Print why and return True when the run has nothing to check."""
    if ctx.state.get("no_dbt_change"):
        return True    # silent: pre-commit ran an always_run hook on a commit without dbt files
    if not ctx.ws.project_roots:
        sys.stderr.write("bulwark: no dbt_project.yml found; nothing to check\n")
        return True
    return False


def open_context(args: argparse.Namespace) -> HookContext:
    if not getattr(args, "files", None) and not getattr(args, "all_files", False) and \
            os.environ.get("PRE_COMMIT") and no_dbt_change(args):
        from pathlib import Path

        from dbt_bulwark.project.fs import WorkTree

        root = Path(getattr(args, "repo_root", None) or os.getcwd())
        ctx = HookContext(args=args, ws=Workspace(root, WorkTree(root), []), files=[],
                          all_files=False)
        ctx.state["no_dbt_change"] = True
        return ctx
    ws = open_workspace(getattr(args, "project_dir", None), getattr(args, "repo_root", None),
                        getattr(args, "vars", None), not getattr(args, "no_cache", False))
    files = [ws.relative(f) for f in getattr(args, "files", []) or []]
    explicit_all = bool(getattr(args, "all_files", False))
    # pre-commit runs an always_run hook with no file when none of its files changed:
    # the change itself (from git) says what to check, maybe nothing
    from_git = not files and not explicit_all and bool(os.environ.get("PRE_COMMIT"))
    ctx = HookContext(args=args, ws=ws, files=files, all_files=explicit_all or not files)
    if from_git:
        ctx.all_files = False
        ctx.state["files_from_git"] = True
    return ctx


def prepare_base(ctx: HookContext) -> None:
    """Resolve the base revision once (regression.py) and add what the change removed."""
    if ctx.state.get("regression_ready"):
        return
    ctx.state["regression_ready"] = True
    from dbt_bulwark.checks import regression

    if "regression_base" in ctx.state:   # chosen by the caller (ci.py)
        base = ctx.state["regression_base"]
    else:
        base = regression.resolve_base(ctx.ws, ctx.args)
        ctx.state["regression_base"] = base
        ctx.state.setdefault("critical_base",
                             (base.top, base.rev, base.prefix) if base is not None else None)
    if base is None:
        if ctx.state.get("files_from_git"):
            ctx.all_files = True    # nothing to diff against (no commits): everything
        return
    # --all-findings counts existing findings everywhere; fail_on_existing is each
    # project's own (verdict)
    base.count_existing = base.count_existing or bool(getattr(ctx.args, "all_findings", False))
    if ctx.all_files and not ctx.state.get("files_from_git"):
        return
    if base.stage == "ci":   # the plan's files already hold deletions and renames
        removed = [p for p in ctx.files if not ctx.ws.fs.is_file(p)]
        changes: list[tuple[str, str, str]] = []
    else:
        changes = regression.name_status(base)
        removed = regression.removed_paths(changes)
    removed = [p for p in removed if ctx.ws.project_root_for(p) is not None]
    ctx.state["regression_removed"] = removed
    if ctx.state.get("files_from_git"):
        ctx.files = sorted({new for _st, _old, new in changes if is_dbt_file(new)}
                           | set(removed))
    else:
        ctx.files = sorted(set(ctx.files) | set(removed))


def collect(ctx: HookContext, check: Check, include_load_findings: bool = True,
            load_findings: str = "errors", base_comparison: bool = True,
            load: Callable[[str], Project | None] | None = None,
            every_project_if_none: bool = False) -> list[Finding]:
    """Run ``check`` on every project the change touches; return all findings.

    Problems met while loading (invalid YAML, unreadable files...) of the touched files
    are added: only errors by default (a hook cannot check what it cannot read), every
    severity with ``load_findings="all"`` (fast-compile: what ``dbt parse`` reports), the
    errors of the changed files only (even with ``--all-files``) with ``"changed"``
    (check-schema-diff: what it cannot compare it says itself, BLK009/BLK431).
    Each project is checked under its own policy (:func:`project_policy`: ``exclude``
    here, ``fail_on`` in :func:`verdict`). ``base_comparison=False``: the hook is itself
    a comparison with the base (check-schema-diff), its findings are not compared again.
    ``load(root)``: the project to check (default: the work tree's), None to skip it.
    ``every_project_if_none``: when the changed files touch no project, check them all.
    """
    ws = ctx.ws
    prepare_base(ctx)
    from dbt_bulwark.checks import regression

    affected = {} if ctx.all_files else ws.affected(ctx.files)
    roots = ws.project_roots if ctx.all_files else [r for r in ws.project_roots if r in affected]
    if not roots and every_project_if_none:
        roots = ws.project_roots
    findings: list[Finding] = []
    changed = set(ctx.files)

    def load_filter(f: Finding) -> bool:
        in_scope = f.path in changed if load_findings == "changed" else \
            ctx.all_files or f.path in changed
        return in_scope and (load_findings == "all" or f.severity == "error")

    compare = base_comparison and ctx.state.get("regression_base") is not None
    for root in roots:
        project = ws.project(root) if load is None else load(root)
        if project is None:
            continue
        policy = project_policy(ctx, root)
        targets = None if root not in affected or "*" in affected[root] else affected[root]
        if compare and targets is not None and ctx.state.get("regression_removed"):
            more = regression.removed_targets(ctx, root, project)
            targets = None if more is None else targets | more
        found: list[Finding] = []
        if include_load_findings:
            found.extend(f for f in project.findings if load_filter(f))
        found.extend(check(ctx, project, policy, targets))
        if compare:
            found = regression.compare(ctx, check, root, project, policy, targets, found,
                                       load_filter if include_load_findings
                                       else (lambda f: False))
        excludes = policy.exclude
        if excludes:
            found = [f for f in found if not any(fnmatchcase(f.path, g) for g in excludes)]
        findings.extend(found)
        ctx.state.setdefault("coverage", []).append(
            regression.coverage(project, targets, found))
    return findings


def project_policy(ctx: HookContext, root: str | None) -> Policy:
    """The policy of project ``root`` (the repository's own for None), read once a run."""
    policies: dict[str | None, Policy] = ctx.state.setdefault("policies", {})
    if root not in policies:
        policies[root] = load_policy(ctx.ws.fs, root)
    return policies[root]


def verdict(ctx: HookContext, findings: list[Finding]) -> int:
    """The exit code: each finding judged by the policy of the project it belongs to
    (``fail_on``, ``fail_on_existing``), so one project's leniency never lets another's
    error pass, nor its strictness fail another's warning."""
    base = ctx.state.get("regression_base")
    everything = bool(getattr(ctx.args, "all_findings", False)) or \
        bool(base is not None and base.count_existing)
    groups: dict[tuple[str, bool], list[Finding]] = {}
    for f in findings:
        policy = project_policy(ctx, ctx.ws.project_root_for(f.path))
        key = (str(policy.fail_on), everything or policy.fail_on_existing)
        groups.setdefault(key, []).append(f)
    return max((exit_code(fs, fail_on, existing) for (fail_on, existing), fs in groups.items()),
               default=EXIT_OK)


def close(ctx: HookContext) -> None:
    """Stop the git processes the run started (the base's trees, the workspace's)."""
    base = ctx.state.get("regression_base")
    if base is not None:
        base.close()
    ctx.ws.close()


def finish(ctx: HookContext, findings: list[Finding], summary: str = "") -> int:
    from dbt_bulwark.checks.regression import coverage_line

    fmt = getattr(ctx.args, "format", "text")
    findings = filter_findings(ctx, findings)
    cov = ctx.state.get("coverage", [])
    report(findings, fmt, sys.stdout, summary if fmt == "text" else "", totals=fmt == "text",
           coverage=cov if fmt == "json" else None)
    for note in ctx.notes:
        sys.stderr.write(note + "\n")
    if fmt == "text":
        for item in cov:
            if item["models"]:
                sys.stderr.write(coverage_line(item) + "\n")
    ctx.ws.save()
    close(ctx)
    return verdict(ctx, findings)


def filter_findings(ctx: HookContext, findings: list[Finding], hook: str | None = None,
                    report_directives: bool = True, with_loader: bool | None = None
                    ) -> list[Finding]:
    """Inline suppressions and ``--select``/``--ignore``/policy code selection
    (:func:`dbt_bulwark.checks.suppressions.apply`): the one filter every hook's output passes."""
    from dbt_bulwark.checks import suppressions

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
    if nothing_to_do(ctx):
        return 0
    findings = collect(ctx, check, load_findings=load_findings)
    return finish(ctx, findings, summary)
