"""Reading a template without rendering it must find what the render finds, on real projects.

    python bench/elision_check.py /work/corpus/tuva /work/corpus/mattermost/transform ...
        [--vars '{"claims_enabled": true}']

For every dbt project under each path (packages installed or not), the project is loaded
twice without a cache: as bulwark loads it (dbt-extractor, then the templates whose only
Jinja is inert calls or if blocks read without compiling them), and with every template that
dbt-extractor cannot read rendered. Every node's refs, sources, config calls, Jinja error and
effective config, and every finding, must be equal (a node whose render differs from
itself, e.g. a config read from the clock, is left out). Prints how many templates were
read without a render; exits 1 on any difference.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dbt_bulwark.project import loader
from dbt_bulwark.project.fs import WorkTree


def signature(root: Path, rel: str, cli_vars: dict[str, Any]) -> tuple[Any, Any]:
    project = loader.load_project(WorkTree(root), rel, cli_vars, None)
    nodes = {uid: (n.refs, sorted(n.sources), n.calls, n.jinja_error, n.config)
             for uid, n in project.nodes.items()}
    return nodes, sorted(repr(f) for f in project.findings)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+")
    ap.add_argument("--vars", default="{}", help="--vars as JSON, for every project")
    args = ap.parse_args()
    cli_vars = json.loads(args.vars)
    os.environ["BULWARK_NO_CACHE"] = "1"
    real = loader._ProjectBuilder.elide_inert_calls
    failed = 0
    for path in args.paths:
        root = Path(path).resolve()
        for rel in loader.discover_projects(WorkTree(root)):
            elided: list[str] = []

            def counting(self: Any, pkg: Any, text: str, *rest: Any,
                         elided: list[str] = elided) -> Any:
                out = real(self, pkg, text, *rest)
                if out is not None and not out.get("compile"):
                    elided.append(text)
                return out

            loader._ProjectBuilder.elide_inert_calls = counting  # type: ignore[method-assign]
            with_elision = signature(root, rel, cli_vars)
            loader._ProjectBuilder.elide_inert_calls = lambda *a: None  # type: ignore[method-assign]
            rendered = signature(root, rel, cli_vars)
            again = signature(root, rel, cli_vars)
            loader._ProjectBuilder.elide_inert_calls = real  # type: ignore[method-assign]
            # a node whose render differs from itself (a time read at render): not compared
            varies = {uid for uid in rendered[0] if rendered[0][uid] != again[0].get(uid)}
            for side in (with_elision, rendered):
                for uid in varies:
                    side[0].pop(uid, None)
            same = with_elision == rendered
            failed += not same
            print(f"{'same' if same else 'DIFFERENT'}: {root.name}/{rel or '.'}: "
                  f"{len(with_elision[0])} nodes, {len(set(elided))} templates read "
                  f"without rendering them"
                  + (f" ({len(varies)} not compared: their render varies)" if varies else ""))
            if not same:
                for uid in sorted(set(with_elision[0]) | set(rendered[0])):
                    if with_elision[0].get(uid) != rendered[0].get(uid):
                        print(f"  {uid}:\n    elided:   {with_elision[0].get(uid)}\n"
                              f"    rendered: {rendered[0].get(uid)}")
                extra = set(with_elision[1]) ^ set(rendered[1])
                for f in sorted(extra)[:20]:
                    print(f"  finding only one way: {f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
