"""`bulwark critical suggest`: rank models by downstream reach and suggest critical tags.

    bulwark critical suggest [--select SEL] [--top N] [--write] [--format text|json]

The ranking (see :func:`dbt_bulwark.critical.score_of`) counts direct and
transitive downstream models, exposures fed, a marts folder and the model's tests.
``--write`` adds ``critical.tags`` to the properties YAML of the listed models that
do not carry them yet (lossless edit; the model entry or file is created if missing).
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
                    help="add the critical tags to the listed models that lack them")
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
    from dbt_bulwark import critical
    from dbt_bulwark.findings import report
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.workspace import open_workspace

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
    out = sys.stdout
    if args.format == "json":
        items = []
        for i, s in rows:
            d = s.to_dict(i)
            d["written"] = s.node.unique_id in done
            items.append(d)
        json.dump({"suggestions": items, "changed_files": changed,
                   "errors": [f"{f.path}:{f.line}: {f.message}" for f in errors]}, out,
                  indent=2, default=str)
        out.write("\n")
    else:
        out.write(_table(rows, multi=len(ws.project_roots) > 1, done=done))
        for rel in changed:
            out.write(f"added tags in {rel}\n")
        for f in errors:
            sys.stderr.write(f"bulwark critical suggest: {f.path}:{f.line}: {f.message}\n")
    return EXIT_FINDINGS if errors else EXIT_OK


def _table(rows: list[tuple[int, Any]], multi: bool, done: set[str]) -> str:
    head = ["rank", "model", "score", "direct", "downstream", "exposures", "tests", "tagged",
            "reason"]
    if multi:
        head.insert(1, "project")
    lines: list[list[str]] = [head]
    for i, s in rows:
        name = s.node.name if s.node.version is None else f"{s.node.name}.v{s.node.version}"
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
