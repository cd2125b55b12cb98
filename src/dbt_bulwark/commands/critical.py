"""`bulwark critical suggest`: rank models by downstream reach and suggest critical tags.

    bulwark critical suggest [--select SEL] [--top N] [--write] [--format text|json]

The ranking (see :func:`dbt_bulwark.checks.critical.score_of`) counts direct and
transitive downstream models, exposures fed, a marts folder and the model's tests.
``--write`` adds ``critical.tags`` to the properties YAML of the listed models that
do not carry them yet (lossless edit under ``config: tags:``; the model entry or file is
created if missing) and says what the new tags require (``critical.require``: contract,
owner, description, tested primary key) and which of it each model lacks.
``--write --with-protections`` also writes what bulwark can: an owner placeholder
(``config: meta: owner:``, the last git author of the model's SQL file) and an enforced
contract with the columns and types inferred from the SQL (the ``check-contracts --fix``
planner and writer); then it re-checks and lists what is left to do by hand -- exactly
what ``check-critical-tags`` / ``check-contracts`` will report on the next commit.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from dbt_bulwark.findings import EXIT_FINDINGS, EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sp = sub.add_parser("suggest", help="rank models by downstream reach, suggest critical tags",
                        description="Rank models by downstream reach (direct and transitive "
                        "children, exposures, marts path, tests) and suggest critical tags.")
    sp.add_argument("-s", "--select", nargs="+", default=None,
                    help="only rank models matching this dbt selector")
    sp.add_argument("--top", type=int, default=10, metavar="N",
                    help="how many models to list (0 = all; default 10)")
    sp.add_argument("--write", action="store_true",
                    help="add the critical tags to the listed models that lack them, and say "
                         "what the tags will require (critical.require)")
    sp.add_argument("--with-protections", action="store_true",
                    help="with --write: also write what bulwark can of those protections: an "
                         "owner placeholder (config.meta.owner: the last git author of the "
                         "model's file) and an enforced contract (as check-contracts --fix)")
    sp.add_argument("--format", choices=("text", "json"), default="text")
    sp.add_argument("--project-dir", action="append", default=None, metavar="DIR",
                    help="dbt project directory (repeatable; default: every dbt_project.yml)")
    sp.add_argument("--repo-root", default=None, metavar="DIR")
    sp.add_argument("--vars", default=None, help="YAML/JSON dict of vars, as for dbt --vars")
    sp.add_argument("--no-cache", action="store_true")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "action", None) != "suggest":
        sys.stderr.write("usage: bulwark critical suggest [--select SEL] [--top N] [--write] "
                         "[--format text|json]\n")
        return 2
    return suggest(args)


def suggest(args: argparse.Namespace) -> int:
    from dbt_bulwark.checks import critical
    from dbt_bulwark.findings import report
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.project.workspace import open_workspace

    if args.with_protections:
        args.write = True
    ws = open_workspace(args.project_dir, args.repo_root, args.vars, not args.no_cache)
    if not ws.project_roots:
        sys.stderr.write("bulwark: no dbt_project.yml found\n")
        return EXIT_OK
    rows: list[tuple[int, Any]] = []
    edits: list[critical.TagEdit] = []
    blocked: list[Any] = []
    for root in ws.project_roots:
        project = ws.project(root)
        problems = [f for f in project.findings if f.severity == "error"]
        if problems:
            report(problems, "text", sys.stderr)
        cp = critical.critical_policy(load_policy(ws.fs, root))
        ranked = critical.rank(project, cp, args.select)
        if args.top and args.top > 0:
            ranked = ranked[:args.top]
        for i, s in enumerate(ranked, 1):
            rows.append((i, s))
            if args.write and not s.tagged and cp.tags:
                missing = [t for t in cp.tags if t not in s.node.tags]
                edit = critical.TagEdit(s.node, missing,
                                        critical.properties_file_for(project, s.node))
                why = critical.fix_blocker(ws.repo_root, project, edit)
                if why is None:
                    edits.append(edit)
                else:
                    blocked.append(why)
    changed: list[str] = []
    errors: list[Any] = []
    done: set[str] = set()
    if edits:
        changed, errors, done = critical.add_tags(ws.repo_root, edits)
    errors = blocked + errors
    ws.save()
    if done:   # as --fix does: reload; a written tag the project does not carry is an error
        errors += _not_taken(args, edits, done)
    guidance: list[str] = []
    still: list[Any] = []
    extra: list[str] = []
    if args.write and done:
        extra, guidance, still = _protections(args, ws, edits, done)
        errors += [f for f in still if f.code in ("BLK320", "BLK220")]
    out = sys.stdout
    if args.format == "json":
        items = []
        for i, s in rows:
            d = s.to_dict(i)
            d["written"] = s.node.unique_id in done
            items.append(d)
        json.dump({"suggestions": items,
                   "changed_files": changed + [r for r in extra if r not in changed],
                   "errors": [f"{f.path}:{f.line}: {f.message}" for f in errors],
                   "guidance": guidance,
                   "still_needed": [f.to_dict() if hasattr(f, "to_dict") else f.text()
                                    for f in still if f.code not in ("BLK320", "BLK220")]},
                  out,
                  indent=2, default=str)
        out.write("\n")
    else:
        out.write(_table(rows, multi=len(ws.project_roots) > 1, done=done))
        for rel in changed:
            out.write(f"added tags in {rel}\n")
        for rel in extra:
            out.write(f"wrote protections in {rel}\n")
        for line in guidance:
            out.write(line + "\n")
        for f in errors:
            sys.stderr.write(f"bulwark critical suggest: {f.path}:{f.line}: {f.message}\n")
    return EXIT_FINDINGS if errors else EXIT_OK


def _not_taken(args: argparse.Namespace, edits: list[Any], done: set[str]) -> list[Any]:
    """A BLK321 for each written tag the reloaded project does not carry (dbt would not
    see it); such a model leaves ``done``."""
    from dbt_bulwark.findings import Finding
    from dbt_bulwark.project.workspace import open_workspace

    fresh = open_workspace(args.project_dir, args.repo_root, args.vars, False)
    nodes: dict[str, Any] = {}
    for root in fresh.project_roots:
        nodes.update(fresh.project(root).nodes)
    out: list[Any] = []
    for e in edits:
        uid = e.node.unique_id
        node = nodes.get(uid)
        if uid not in done or (node is not None and set(e.tags) <= set(node.tags)):
            continue
        done.discard(uid)
        out.append(Finding(e.path, 0, 0, "BLK321",
                           f"--write wrote tag {', '.join(map(repr, e.tags))} for "
                           f"'{e.node.label}' in {e.path}, but the reloaded project "
                           "still does not carry it (dbt would not see it)",
                           hint="set the tags where dbt reads them (`config: tags:` of the "
                           "model's entry, SQL config(), dbt_project.yml +tags) by hand",
                           node=uid))
    return out


def _protections(args: argparse.Namespace, ws: Any, edits: list[Any], done: set[str]
                 ) -> tuple[list[str], list[str], list[Any]]:
    """After tags were written: what they require and, with --with-protections, write the
    owner and the contract. Returns (changed files, lines to print, findings left)."""
    from dbt_bulwark.checks import contracts, critical
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.project.workspace import open_workspace

    def reload() -> Any:
        return open_workspace(args.project_dir, args.repo_root, args.vars, False)

    tagged = [e.node for e in edits if e.node.unique_id in done]
    by_root: dict[str, list[str]] = {}
    for root in ws.project_roots:
        names = {n.unique_id for n in ws.project(root).nodes.values()}
        by_root[root] = [n.unique_id for n in tagged if n.unique_id in names]
    changed: list[str] = []
    lines: list[str] = []
    left: list[Any] = []
    fresh = reload()
    for root, uids in by_root.items():
        if not uids:
            continue
        project = fresh.project(root)
        policy = load_policy(fresh.fs, root)
        cp = critical.critical_policy(policy)
        need = critical.required_protections(cp)
        words = ", ".join(critical.PROTECTIONS[k] for k in need) or "nothing more"
        lines.append(f"the new tags make {len(uids)} model(s) critical; each needs {words} "
                     "(critical.require), or check-critical-tags/check-contracts fail the next "
                     "commit")
        nodes = [project.nodes[u] for u in uids if u in project.nodes]
        missing = {n.unique_id: critical.missing_protections(project, cp, n) for n in nodes}
        for n in nodes:
            if missing[n.unique_id]:
                lines.append(f"  {n.label}: missing "
                             + ", ".join(k.replace("_", " ") for k in missing[n.unique_id]))
        if not args.with_protections:
            if any(missing.values()):
                lines.append("  (--write --with-protections writes the owner and the contract "
                             "where it can)")
            continue
        if "owner" in need:
            lacking = [n for n in nodes if "owner" in missing[n.unique_id]]
            files, skipped, written = critical.write_owners(fresh.repo_root, project, lacking)
            changed += files
            left += skipped
            for uid, who in sorted(written.items()):
                lines.append(f"  {project.nodes[uid].label}: owner set to "
                             f"'{who}' (last git author of its file: a placeholder to review)")
        if "contract" in need:
            again = reload().project(root)
            todo = [again.nodes[u] for u in uids if u in again.nodes]
            plans, refused = contracts.plan_contracts(again, policy, todo, fresh.repo_root)
            result = contracts.apply_fixes(fresh.repo_root, plans)
            changed += [r for r in result.changed if r not in changed]
            left += refused + result.findings
            lines += [f"  {note}" for note in result.notes]
        # what is left: exactly what the hooks will report for these models
        final = reload()
        project = final.project(root)
        statuses = critical.classify(project, cp)
        for uid in uids:
            st = statuses.get(uid)
            if st is not None:
                left += critical.protection_findings(project, st, cp)
        left += [f for f in contracts.check(None, project, policy, set(uids))
                 if f.severity == "error"]
    todo_left = [f for f in left if f.code not in ("BLK320", "BLK220")]
    if args.with_protections:
        if todo_left:
            lines.append("still to do by hand (bulwark cannot write these; the next commit's "
                         "check-critical-tags/check-contracts report exactly these):")
            lines += [f"  {f.path}:{f.line}: {f.code} {f.message}" for f in todo_left]
        else:
            lines.append("nothing left: check-critical-tags and check-contracts pass for "
                         "these models")
    return changed, lines, left


def _table(rows: list[tuple[int, Any]], multi: bool, done: set[str]) -> str:
    head = ["rank", "model", "score", "direct", "downstream", "exposures", "tests", "tagged",
            "reason"]
    if multi:
        head.insert(1, "project")
    lines: list[list[str]] = [head]
    for i, s in rows:
        name = s.node.label
        tagged = "yes" if s.tagged else ("added" if s.node.unique_id in done else "no")
        row = [str(i), name, f"{s.score:g}", str(s.reach.direct), str(s.reach.downstream),
               str(len(s.reach.exposures)), str(s.tests), tagged, s.reason()]
        if multi:
            row.insert(1, s.project.name)
        lines.append(row)
    if len(lines) == 1:
        return "no models to rank\n"
    widths = [max(len(r[c]) for r in lines) for c in range(len(head) - 1)]
    numeric = {"rank", "score", "direct", "downstream", "exposures", "tests"}
    out = []
    for r in lines:
        cells = [r[c].rjust(widths[c]) if head[c] in numeric else r[c].ljust(widths[c])
                 for c in range(len(head) - 1)]
        out.append("  ".join(cells + [r[-1]]).rstrip())
    return "\n".join(out) + "\n"
