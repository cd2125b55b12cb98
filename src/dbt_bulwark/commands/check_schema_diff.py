"""`bulwark check-schema-diff`: output schema changes against a git base, and who they break.

The base is ``--base REV``, else (pre-push) ``PRE_COMMIT_FROM_REF``, else ``HEAD``;
``--merge-base`` compares with the merge base of HEAD and the main branch (CI). The
head is the working tree (the staged state in a pre-commit run), or ``--head REV`` /
``PRE_COMMIT_TO_REF`` at pre-push. See docs/hooks/check-schema-diff.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dbt_bulwark.cli import add_common_arguments
from dbt_bulwark.findings import FORMATS, Finding, UsageError, report, sort_findings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    for action in parser._actions:  # markdown is a format of this command only
        if action.dest == "format":
            action.choices = (*FORMATS, "markdown")
            action.help = "output format (markdown: a PR-comment summary)"
    parser.add_argument("--merge-base", action="store_true",
                        help="compare with the merge base of HEAD and the main branch "
                             "(schema_diff.main_branch, else origin/HEAD, main, master)")
    parser.add_argument("--head", default=None, metavar="REV",
                        help="git revision to check instead of the working tree "
                             "(default: PRE_COMMIT_TO_REF at pre-push)")


def run(args: argparse.Namespace) -> int:
    from dbt_bulwark import runner
    from dbt_bulwark.checks import regression
    from dbt_bulwark.checks.schema_diff import SchemaDiff
    from dbt_bulwark.checks.schema_diff_report import to_findings, to_markdown
    from dbt_bulwark.project import gitfs
    from dbt_bulwark.project.fs import join
    from dbt_bulwark.project.gitfs import BaseOverlay
    from dbt_bulwark.project.loader import load_project
    from dbt_bulwark.project.model import Project
    from dbt_bulwark.sql.schema import project_dialect

    ctx = runner.open_context(args)
    ws = ctx.ws
    if runner.nothing_to_do(ctx):
        return 0
    if getattr(args, "base_check", True) is False:
        sys.stderr.write("bulwark check-schema-diff: --no-base: nothing to compare\n")
        return 0
    if args.merge_base and not args.base:
        loc = ws.git_location()
        if loc is None:
            raise UsageError("--merge-base needs a git repository")
        branch = runner.project_policy(ctx, None).schema_diff.main_branch or \
            gitfs.default_branch(loc[0])
        if not branch:
            raise UsageError("--merge-base: no main branch found; set schema_diff.main_branch")
        mb = gitfs.merge_base(loc[0], "HEAD", branch)
        base = regression.Base(loc[0], mb, loc[1], f"merge base with {branch}", "manual") \
            if mb else None
    else:
        # no silent skip: git missing, --base outside git, a from/to ref that does not
        # exist are usage errors (exit 2)
        base = regression.resolve_base(ws, args)
    if base is None and ws.git_location() is None:
        sys.stderr.write("bulwark check-schema-diff: not a git repository; nothing to compare\n")
        return 0
    loc = ws.git_location()
    assert loc is not None
    top = loc[0]
    base_rev = base.rev if base is not None else None
    head_rev = args.head or (base.to_rev if base is not None else None)
    if head_rev is not None and not gitfs.rev_exists(top, head_rev):
        raise UsageError(f"--head revision {head_rev!r} does not exist")
    ctx.state["regression_base"] = base   # the runner's base: deletions and renames count

    head_tree = ws.tree_at(head_rev)

    def base_fs_for(root: str) -> Any:
        """The base files of project ``root`` (the runner's: a submodule's own history when
        it sits in one; unchanged files read from disk when the head is the work tree)."""
        if base is None:
            return None
        tree = regression.base_tree(ws, base, root)
        if head_tree is not None and isinstance(tree, BaseOverlay):
            return tree.tree   # the head is a revision: the base entirely from git
        return tree

    def load_head(root: str) -> Project | None:
        if head_tree is None:
            return ws.project(root)
        if not head_tree.is_file(join(root, "dbt_project.yml")):
            return None
        # a revision is read with the installed packages, as the base is
        return load_project(ws.with_installed(head_tree, root), root, ws.cli_vars, ws.cache)

    all_diffs: list[Any] = []

    def check(_ctx: runner.HookContext, head: Project, policy: Any,
              _targets: set[str] | None) -> list[Finding]:
        root = head.root
        base_project = None
        base_fs = base_fs_for(root)
        if base_fs is not None and base_fs.is_file(join(root, "dbt_project.yml")):
            base_project = ws.base_project(base_fs, root)
        dialect, how = project_dialect(head, policy.dialect)
        engine = SchemaDiff(head, base_project, dialect, policy.schema_diff.protected,
                            policy.locked.tag, cache=ws.cache,
                            dbt_version=policy.dbt_version, dialect_how=how)
        diffs = engine.run()
        found = to_findings(diffs, policy.schema_diff.warn_only)
        if base_project is not None and regression.unloaded_files(head):
            # a properties file that does not load: its models are "not checked"
            found = regression.drop_unloaded(head, regression.facts_of(base_project), found)
            kept = {f.node for f in found}
            diffs = [d for d in diffs if d.classification != "breaking"
                     or d.unique_id in kept]
        all_diffs.extend(diffs)
        return found

    try:
        findings = runner.collect(ctx, check, load_findings="changed", base_comparison=False,
                                  load=load_head, every_project_if_none=True)
    finally:
        runner.close(ctx)
        ws.save()

    findings = runner.filter_findings(ctx, findings)
    base_label = base.label if base is not None else "(nothing: no commits yet)"
    fmt = args.format
    out = sys.stdout
    if fmt == "markdown":
        out.write(to_markdown(all_diffs, base_label))
    elif fmt == "json":
        json.dump({"base": base_rev, "head": head_rev or "working tree",
                   "findings": [f.to_dict() for f in sort_findings(findings)],
                   "models": [d.to_dict() for d in all_diffs]}, out, indent=2, default=str)
        out.write("\n")
    else:
        counts: dict[str, int] = {}
        for d in all_diffs:
            counts[d.classification] = counts.get(d.classification, 0) + 1
        summary = ""
        if fmt == "text":
            what = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no model changed"
            summary = f"check-schema-diff against {base_label}: {what}"
        report(findings, fmt, out, summary, totals=fmt == "text")
    return runner.verdict(ctx, findings)
