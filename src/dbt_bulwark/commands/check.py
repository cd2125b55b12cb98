"""`bulwark check`: every static hook at once (fast-compile, critical tags, contracts,
schema diff) on one project load, with the same summary as `bulwark ci --fast`.

It is `bulwark ci` restricted to the static layers; see :mod:`dbt_bulwark.run.ci`. It is also
the combined pre-commit hook (``id: bulwark``): ``--checks`` picks the checks by hook id
(``fast-compile,check-contracts``) or layer name (``contracts``); under pre-commit the
schema diff compares with ``HEAD`` (or the pushed range's base at pre-push), like the
``check-schema-diff`` hook, unless ``--base`` says otherwise.
"""

from __future__ import annotations

import argparse
import os

# hook id -> layer name (layer names are accepted as they are)
HOOK_LAYERS = {
    "fast-compile": "fast-compile",
    "check-critical-tags": "critical-tags",
    "check-contracts": "contracts",
    "check-schema-diff": "schema-diff",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dbt_bulwark.commands.ci import add_run_arguments

    add_run_arguments(parser)
    parser.add_argument("--checks", default=None, metavar="A,B",
                        help="run only these checks, by hook id or layer name (default: "
                             "all of " + ", ".join(HOOK_LAYERS) + ")")


def checks_to_layers(text: str | None) -> str:
    """The ``--layers`` value for a ``--checks`` value (unknown names are passed through,
    so that the layer chooser reports them as a usage error)."""
    from dbt_bulwark.run.ci import STATIC

    if not text:
        return ",".join(STATIC)
    names = [x.strip() for x in text.split(",") if x.strip()]
    return ",".join(HOOK_LAYERS.get(n, n) for n in names) or ",".join(STATIC)


def _hook_base(args: argparse.Namespace) -> str | None:
    """Under pre-commit, the base the per-hook check-schema-diff would use."""
    if args.base or not os.environ.get("PRE_COMMIT"):
        return args.base
    from_ref = os.environ.get("PRE_COMMIT_FROM_REF")
    if from_ref:
        return from_ref
    from dbt_bulwark.project import gitfs

    top = gitfs.repo_root(args.repo_root or ".")
    return "HEAD" if top is not None and gitfs.has_commits(top) else None


def run(args: argparse.Namespace) -> int:
    from dbt_bulwark.run.ci import STATIC, run_ci

    layers = checks_to_layers(getattr(args, "checks", None))
    unknown = [x for x in layers.split(",") if x not in STATIC]
    if unknown:
        import sys

        print(f"bulwark check: unknown check(s) {', '.join(unknown)}; checks: "
              f"{', '.join(HOOK_LAYERS)}", file=sys.stderr)
        return 2
    args.fast, args.full, args.layers = False, False, layers
    args.base = _hook_base(args)
    args.allow_skipped = False
    args.target, args.profiles_dir, args.embedded = None, None, False
    return run_ci(args)
