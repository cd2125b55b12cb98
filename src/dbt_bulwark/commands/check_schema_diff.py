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
from dbt_bulwark.findings import FORMATS, Finding, UsageError, exit_code, report, sort_findings


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
    from dbt_bulwark import gitfs
    from dbt_bulwark.fs import join
    from dbt_bulwark.loader import load_project
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.runner import open_context
    from dbt_bulwark.schema import project_dialect
    from dbt_bulwark.schema_diff import BaseOverlay, SchemaDiff, to_findings, to_markdown

    ctx = open_context(args)
    ws = ctx.ws
    if not ws.project_roots:
        sys.stderr.write("bulwark: no dbt_project.yml found; nothing to check\n")
        return 0
    from dbt_bulwark import regression

    repo_policy = load_policy(ws.fs)
    if getattr(args, "base_check", True) is False:
        sys.stderr.write("bulwark check-schema-diff: --no-base: nothing to compare\n")
        return 0
    if args.merge_base and not args.base:
        loc = ws.git_location()
        if loc is None:
            raise UsageError("--merge-base needs a git repository")
        branch = repo_policy.get("schema_diff.main_branch") or gitfs.default_branch(loc[0])
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
    top, prefix = loc
    base_rev = base.rev if base is not None else None
    head_rev = args.head or (base.to_rev if base is not None else None)
    if head_rev is not None and not gitfs.rev_exists(top, head_rev):
        raise UsageError(f"--head revision {head_rev!r} does not exist")

    if ctx.all_files:
        roots = list(ws.project_roots)
    else:
        roots = []
        for f in ctx.files:
            r = ws.project_root_for(f)
            if r is not None and r not in roots:
                roots.append(r)
        # a deleted file is not passed by pre-commit: every project is checked when nothing
        # else matched (cheap: only changed models are analysed)
        if not roots:
            roots = list(ws.project_roots)

    head_tree = ws.tree_at(head_rev)
    overlay: Any = None

    def base_fs_for(root: str) -> Any:
        """The base files of project ``root`` (a submodule's own history when it sits in
        one); for the work tree as head, unchanged files are read from disk."""
        nonlocal overlay
        if base is None:
            return None
        tree = regression.base_tree(ws, base, root)
        if tree is None or head_tree is not None or not isinstance(tree, gitfs.GitTree):
            return tree
        if overlay is None:
            cut = len(prefix) + 1 if prefix else 0
            changed_rel = [p[cut:] for p in gitfs.changed_files(top, base.rev)
                           if not prefix or p.startswith(prefix + "/")]
            overlay = BaseOverlay(tree, ws.fs, changed_rel)
        return overlay
    findings: list[Finding] = []
    all_diffs: list[Any] = []
    fail_on = "error"
    changed = set(ctx.files)
    try:
        for root in roots:
            if head_tree is not None:
                if not head_tree.is_file(join(root, "dbt_project.yml")):
                    continue
                # a revision is read with the installed packages, as the base is
                head = load_project(ws.with_installed(head_tree, root), root, ws.cli_vars,
                                    ws.cache)
            else:
                head = ws.project(root)
            base_project = None
            base_fs = base_fs_for(root)
            if base_fs is not None and base_fs.is_file(join(root, "dbt_project.yml")):
                base_project = ws.base_project(base_fs, root)
            policy = load_policy(ws.fs, root)
            fail_on = policy.get("fail_on")
            dialect, _how = project_dialect(head, policy.get("dialect"))
            engine = SchemaDiff(head, base_project, dialect, policy.get("schema_diff.protected"),
                                policy.get("locked.tag"), cache=ws.cache,
                                dbt_version=policy.get("dbt_version"))
            diffs = engine.run()
            found = to_findings(diffs, bool(policy.get("schema_diff.warn_only")))
            if base_project is not None and regression.unloaded_files(head):
                # a properties file that does not load: its models are "not checked"
                found = regression.drop_unloaded(head, regression.facts_of(base_project),
                                                 found)
                kept = {f.node for f in found}
                diffs = [d for d in diffs if d.classification != "breaking"
                         or d.unique_id in kept]
            all_diffs.extend(diffs)
            found.extend(f for f in head.findings if f.path in changed and f.severity == "error")
            excludes = policy.get("exclude")
            if excludes:
                from fnmatch import fnmatchcase

                found = [f for f in found if not any(fnmatchcase(f.path, g) for g in excludes)]
            findings.extend(found)
    finally:
        if head_tree is not None:
            head_tree.close()
        if base is not None:
            base.close()
        ws.save()

    from dbt_bulwark.runner import filter_findings

    findings = filter_findings(ctx, findings)
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
    return exit_code(findings, fail_on)
