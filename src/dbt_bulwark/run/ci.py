"""`bulwark ci`: every layer in order, each with its wall time and verdict, then a summary.

Layers (in this order):

=================  ========  ================================================================
layer              kind      what
=================  ========  ================================================================
fast-compile       static    what dbt parse/compile would reject (``fast_compile.check``)
critical-tags      static    critical models carry their tags and protections
contracts          static    contracts present, complete, agreeing with the SQL
schema-diff        static    output schema changes against the base and who they break
build-empty        dbt       ``dbt build --empty`` of the modified models and their children
data-quality       dbt       tests of critical + modified models; ERROR failures fail
baselines          dbt       critical models' output compared with .bulwark/baselines/
=================  ========  ================================================================

``--fast`` (the default) runs the static layers, ``--full`` all of them, ``--layers``
a chosen few. The static layers run on ONE workspace load (the schema-diff of a
change in a forked child beside the others, :func:`_start_beside`); the
coupling to each hook is the :data:`STATIC_LAYERS` adapter table below (the lead
fixes it there if a hook's API shifts). The base is the merge base of HEAD with
the main branch (``ci.main_branch``, else ``origin/HEAD``/main/master), or
``--base``; the static layers check what changed since it (``--all-files``:
everything). The dbt layers share one :class:`~dbt_bulwark.run.dbt_exec.DbtSession`
per project.

A layer is *passed*, *failed* (findings at or above ``fail_on``, or dbt
failures), *skipped* (cannot run here: hook not available, dbt or the adapter
not installed, no data; the reason is printed) or *not run* (``--fail-fast``
stopped earlier). Exit 0 only when every layer passed (``--allow-skipped``
also accepts skipped layers), 1 otherwise, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dbt_bulwark.findings import (
    Finding,
    UsageError,
    markdown_cell,
    report,
    sort_findings,
)

STATIC = ("fast-compile", "critical-tags", "contracts", "schema-diff")
EXECUTION = ("build-empty", "data-quality", "baselines")
LAYERS = STATIC + EXECUTION
OUTPUT_FORMATS = ("text", "markdown", "json", "github", "sarif")


# ----------------------------------------------------------------------------- adapters

def _schema_diff_check(ctx: Any, project: Any, policy: Any, targets: set[str] | None
                       ) -> list[Finding]:
    """check-schema-diff in the runner's ``check`` shape, against ``ctx.state['ci_base']``."""
    from dbt_bulwark.checks.schema_diff import SchemaDiff
    from dbt_bulwark.checks.schema_diff_report import to_findings
    from dbt_bulwark.project.fs import join
    from dbt_bulwark.sql.schema import project_dialect

    tree = ctx.state.get("ci_base_tree")
    if ctx.state.get("regression_base") is not None:   # a submodule: its own history
        from dbt_bulwark.checks.regression import base_tree

        tree = base_tree(ctx.ws, ctx.state["regression_base"], project.root)
    base = None
    if tree is not None and tree.is_file(join(project.root, "dbt_project.yml")):
        base = ctx.ws.base_project(tree, project.root)
    dialect, how = project_dialect(project, policy.dialect)
    diffs = SchemaDiff(project, base, dialect, policy.schema_diff.protected,
                       policy.locked.tag, cache=ctx.ws.cache,
                       dbt_version=policy.dbt_version, dialect_how=how).run()
    counts = ctx.state.setdefault("ci_counts", {})
    for d in diffs:
        counts[d.classification] = counts.get(d.classification, 0) + 1
    return to_findings(diffs, policy.schema_diff.warn_only)


@dataclass(frozen=True)
class StaticLayer:
    module: str                     # the hook module
    check: str | Callable[..., list[Finding]]   # its runner-shaped check, or an adapter
    command: str                    # the command module (for its argument defaults)
    needs_base: bool = False


STATIC_LAYERS: dict[str, StaticLayer] = {
    "fast-compile": StaticLayer("dbt_bulwark.checks.fast_compile", "check",
                                "dbt_bulwark.commands.fast_compile"),
    "critical-tags": StaticLayer("dbt_bulwark.checks.critical", "check",
                                 "dbt_bulwark.commands.check_critical_tags"),
    "contracts": StaticLayer("dbt_bulwark.checks.contracts", "check",
                             "dbt_bulwark.commands.check_contracts"),
    "schema-diff": StaticLayer("dbt_bulwark.checks.schema_diff", _schema_diff_check,
                               "dbt_bulwark.commands.check_schema_diff", needs_base=True),
}


# ----------------------------------------------------------------------------- results

@dataclass
class LayerResult:
    name: str
    status: str = "not run"          # passed | failed | skipped | error | not run
    seconds: float = 0.0
    summary: str = ""
    findings: list[Finding] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.name, "status": self.status, "seconds": round(self.seconds, 3),
                "summary": self.summary, "details": self.details,
                "findings": [f.to_dict() for f in sort_findings(self.findings)]}


@dataclass
class Plan:
    args: argparse.Namespace
    ws: Any
    layers: list[str]
    base: str | None
    base_label: str
    files: list[str]
    all_files: bool
    git_top: Path | None
    policy: Any
    state: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- progress

class Progress:
    """A spinner line on a TTY; plain lines (one per step) otherwise."""

    FRAMES = "|/-\\"

    def __init__(self, out: TextIO, enabled: bool = True):
        self.out = out
        self.tty = enabled and hasattr(out, "isatty") and out.isatty()
        self.enabled = enabled
        self.layer = ""
        self.frame = 0
        self.last = 0.0
        self.seen: set[str] = set()

    def start(self, layer: str) -> None:
        self.layer = layer
        self.seen.clear()
        if not self.enabled:
            return
        if self.tty:
            self.update("starting")
        else:
            self.out.write(f"[ci] {layer} ...\n")
            self.out.flush()

    def update(self, message: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            now = time.monotonic()
            if now - self.last < 0.08:
                return
            self.last = now
            self.frame = (self.frame + 1) % len(self.FRAMES)
            line = f"{self.FRAMES[self.frame]} {self.layer}: {message}"
            self.out.write("\r\033[K" + line[:150])
            self.out.flush()
            return
        step = message.split(":", 1)[0]
        if step not in self.seen:
            self.seen.add(step)
            self.out.write(f"[ci] {self.layer}: {step}\n")
            self.out.flush()

    def done(self, res: LayerResult) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.out.write("\r\033[K")
        self.out.write(f"[ci] {res.name}: {res.status} in {res.seconds:.2f}s"
                       + (f" ({res.summary})" if res.summary else "") + "\n")
        self.out.flush()


# ----------------------------------------------------------------------------- planning

def choose_layers(args: argparse.Namespace, policy: Any) -> list[str]:
    if args.layers:
        wanted = [x.strip() for x in args.layers.split(",") if x.strip()]
        unknown = [x for x in wanted if x not in LAYERS]
        if unknown:
            raise UsageError(f"unknown layer(s) {', '.join(unknown)}; "
                             f"layers: {', '.join(LAYERS)}")
        return [x for x in LAYERS if x in wanted]
    if args.full:
        return list(LAYERS)
    if not args.fast and policy is not None and policy.ci.layers:
        wanted = [str(x) for x in policy.ci.layers]
        unknown = [x for x in wanted if x not in LAYERS]
        if unknown:
            raise UsageError(f"ci.layers: unknown layer(s) {', '.join(unknown)}; "
                             f"layers: {', '.join(LAYERS)}")
        return [x for x in LAYERS if x in wanted]
    return list(STATIC)


def resolve_base(args: argparse.Namespace, ws: Any, policy: Any
                 ) -> tuple[Path | None, str | None, str]:
    """(git top, base revision, label). The base is None outside git or without commits."""
    from dbt_bulwark.project import gitfs

    top = gitfs.repo_root(ws.repo_root)
    if top is None:
        if args.base:
            raise UsageError("--base needs a git repository")
        return None, None, "no base (not a git repository)"
    if args.base:
        if not gitfs.rev_exists(top, args.base):
            raise UsageError(f"--base revision {args.base!r} does not exist")
        return top, args.base, args.base
    if not gitfs.has_commits(top):
        return top, None, "no base (no commits yet)"
    branch = (policy.ci.main_branch if policy is not None else None) \
        or gitfs.default_branch(top)
    if branch:
        mb = gitfs.merge_base(top, "HEAD", branch)
        if mb:
            return top, mb, f"merge base of HEAD and {branch} ({mb[:10]})"
        return top, None, f"no base (HEAD shares no history with {branch})"
    return top, "HEAD", "HEAD (no main branch found)"


def make_plan(args: argparse.Namespace) -> Plan:
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.project import gitfs
    from dbt_bulwark.project.workspace import open_workspace

    ws = open_workspace(args.project_dir, args.repo_root, args.vars, not args.no_cache)
    root0 = ws.project_roots[0] if ws.project_roots else None
    policy = load_policy(ws.fs, root0)
    layers = choose_layers(args, policy)
    top, base, label = resolve_base(args, ws, policy)
    files = [ws.relative(f) for f in args.files or []]
    all_files = bool(args.all_files)
    if not files and not all_files:
        if base is None:
            all_files = True           # nothing to diff against: everything is new
        else:
            assert top is not None
            changed = gitfs.changed_files(top, base)
            prefix = ""
            try:
                prefix = ws.repo_root.resolve().relative_to(top.resolve()).as_posix()
            except ValueError:
                prefix = ""
            if prefix and prefix != ".":
                changed = [c[len(prefix) + 1:] for c in changed if c.startswith(prefix + "/")]
            files = changed
    # only what the checked projects hold counts (and is printed)
    files = [f for f in files if ws.project_root_for(f) is not None]
    return Plan(args, ws, layers, base, label, files, all_files, top, policy)


# ----------------------------------------------------------------------------- static layers

def _layer_args(spec: StaticLayer, plan: Plan) -> argparse.Namespace:
    ns = argparse.Namespace()
    try:
        cmd = importlib.import_module(spec.command)
        parser = argparse.ArgumentParser(add_help=False)
        cmd.add_arguments(parser)
        ns = parser.parse_args([])
    except (ImportError, AttributeError, SystemExit, argparse.ArgumentError):
        pass
    a = plan.args
    ns.files = list(plan.files)
    ns.all_files = plan.all_files
    ns.project_dir = a.project_dir
    ns.repo_root = a.repo_root
    ns.vars = a.vars
    ns.no_cache = a.no_cache
    ns.format = "text"
    ns.fix = False
    ns.base = plan.base
    return ns


def run_static(name: str, plan: Plan, first: bool) -> LayerResult:
    from dbt_bulwark.runner import HookContext, collect, filter_findings, verdict

    res = LayerResult(name)
    spec = STATIC_LAYERS[name]
    check: Any = spec.check
    try:
        module = importlib.import_module(spec.module)
        if isinstance(check, str):
            check = getattr(module, check)
    except (ImportError, AttributeError) as exc:
        res.status = "skipped"
        res.summary = f"not available ({spec.module}: {exc})"
        return res
    if spec.needs_base:
        if plan.base is None:
            res.status = "passed"
            res.summary = f"{plan.base_label}: nothing to compare"
            return res
        plan.state["ci_base_tree"] = plan.ws.tree_at(plan.base)
    ctx = HookContext(args=_layer_args(spec, plan), ws=plan.ws, files=list(plan.files),
                      all_files=plan.all_files)
    ctx.state.update({k: v for k, v in plan.state.items() if k.startswith("ci_base")})
    from dbt_bulwark.checks.regression import ci_base

    ctx.state["regression_base"] = ci_base(plan)
    if ctx.state["regression_base"] is not None and not spec.needs_base:
        ctx.state["critical_base"] = (plan.git_top, plan.base, ctx.state["regression_base"].prefix)
    findings = collect(ctx, check, include_load_findings=first, load_findings="all")
    ctx.args.select_codes = getattr(plan.args, "select_codes", None)
    ctx.args.ignore_codes = getattr(plan.args, "ignore_codes", None)
    findings = filter_findings(ctx, findings, hook=name, report_directives=first,
                               with_loader=first)
    res.findings = findings
    res.details.extend(ctx.notes)
    errors = sum(1 for f in findings if f.severity == "error" and not f.existing)
    warnings = sum(1 for f in findings if f.severity == "warning" and not f.existing)
    existing = sum(1 for f in findings if f.existing)
    res.status = "failed" if verdict(ctx, findings) else "passed"
    scope = "all files" if plan.all_files else f"{len(plan.files)} changed file(s)"
    res.summary = f"{errors} error(s), {warnings} warning(s); {scope}"
    if existing:
        res.summary += f"; {existing} existing at the base"
    for cov in ctx.state.get("coverage", []):
        if first and cov["models"]:
            from dbt_bulwark.checks.regression import coverage_line

            res.details.append(coverage_line(cov))
            plan.state.setdefault("coverage", []).append(cov)
    counts = ctx.state.get("ci_counts")
    if counts:
        res.summary += "; " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    return res


def _start_beside(plan: Plan) -> dict[str, Callable[[], tuple[LayerResult, float] | None]]:
    """The schema-diff layer of a change, started in a forked child beside the other static
    layers: it infers the changed models' ancestors with their types (fast-compile, without
    them), so on two cores neither waits for the other. The child inherits the project
    load, done here first (the one every layer shares). Layer name -> a function waiting
    for the child's (result, seconds), None if it died (the layer then runs here); {} when
    nothing is started (all files, no base, ``--fail-fast``, one core, no fork, or
    schema-diff the first static layer)."""
    static = [n for n in plan.layers if n in STATIC]
    if plan.all_files or not plan.files or plan.base is None or plan.args.fail_fast or \
            "schema-diff" not in static or static[0] == "schema-diff":
        return {}
    try:
        plan.ws.affected(plan.files)
    except Exception:  # noqa: BLE001 - the layers meet it again and report it
        return {}
    from dbt_bulwark.cache import template_store
    from dbt_bulwark.parallel import in_child

    def work() -> tuple[LayerResult, float]:
        t0 = time.perf_counter()
        return run_static("schema-diff", plan, False), time.perf_counter() - t0

    waiter = in_child(work, [plan.ws.cache, plan.ws.analysis_cache, template_store()])
    return {} if waiter is None else {"schema-diff": waiter}


# ----------------------------------------------------------------------------- dbt layers

class _Sessions:
    """One DbtSession per project, opened on first use; closed at the end."""

    def __init__(self, plan: Plan, progress: Progress):
        self.plan = plan
        self.progress = progress
        self.sessions: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}

    def get(self, root: str) -> Any:
        from dbt_bulwark.run.dbt_exec import DbtSession, DbtUnavailable

        if root in self.unavailable:
            raise DbtUnavailable(self.unavailable[root])
        if root not in self.sessions:
            a = self.plan.args
            target = a.target or (self.plan.policy.ci.target if self.plan.policy else None)
            try:
                self.sessions[root] = DbtSession(
                    self.plan.ws.project(root), self.plan.ws.repo_root, target=target,
                    profiles_dir=a.profiles_dir, embedded=a.embedded,
                    cli_vars=self.plan.ws.cli_vars, use_cache=not a.no_cache,
                    progress=self.progress.update)
            except DbtUnavailable as exc:
                self.unavailable[root] = str(exc)
                raise
        return self.sessions[root]

    def close(self) -> None:
        for s in self.sessions.values():
            s.close()


def _targets(plan: Plan, root: str) -> set[str] | None:
    if plan.all_files:
        return None
    hit = plan.ws.affected(plan.files).get(root)
    if hit is None:
        return set()
    return None if "*" in hit else hit


def _merge(res: LayerResult, label: str, outcome: Any, many: bool) -> None:
    prefix = f"[{label}] " if many else ""
    res.findings.extend(outcome.findings)
    res.details.extend(prefix + d for d in outcome.details)
    res.summary = "; ".join(filter(None, [res.summary, prefix + outcome.summary]))


def _combine(statuses: list[str]) -> str:
    """A layer over several projects: failed beats skipped beats passed."""
    if any(s in ("failed", "error") for s in statuses):
        return "failed"
    if any(s == "skipped" for s in statuses):
        return "skipped"
    return "passed"


def run_execution(name: str, plan: Plan, sessions: _Sessions) -> LayerResult:
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.run.dbt_exec import DbtUnavailable, dbt_missing_reason
    from dbt_bulwark.run.quality import LayerOutcome

    res = LayerResult(name)
    missing = dbt_missing_reason()
    if missing:
        res.status, res.summary = "skipped", missing
        return res
    roots = list(plan.ws.project_roots)
    statuses: list[str] = []
    for root in roots:
        label = root or plan.ws.project(root).name
        try:
            session = sessions.get(root)
        except DbtUnavailable as exc:
            statuses.append("skipped")
            _merge(res, label, LayerOutcome("skipped", str(exc)), len(roots) > 1)
            continue
        policy = load_policy(plan.ws.fs, root)
        try:
            if name == "build-empty":
                outcome = _build_empty(session, plan, root)
            elif name == "data-quality":
                outcome = _data_quality(session, plan, root, policy)
            else:
                outcome = _baselines(session, policy)
        except DbtUnavailable as exc:
            outcome = LayerOutcome("skipped", str(exc))
        if not any(d.startswith("engine:") for d in res.details):
            res.details.insert(0, f"engine: {session.engine.description}")
        statuses.append(outcome.status)
        _merge(res, label, outcome, len(roots) > 1)
    res.status = _combine(statuses)
    return res


def _build_empty(session: Any, plan: Plan, root: str) -> Any:
    from dbt_bulwark.run.quality import build_empty

    return build_empty(session, _targets(plan, root))


def _data_quality(session: Any, plan: Plan, root: str, policy: Any) -> Any:
    from dbt_bulwark.project.model import Node
    from dbt_bulwark.project.selector import select
    from dbt_bulwark.run.quality import data_quality

    project = session.project
    spec = policy.data_quality.select
    if spec is None:
        spec = " ".join(f"tag:{t}" for t in policy.critical.tags or ["critical"])
    elif isinstance(spec, list):
        spec = " ".join(str(s) for s in spec)
    chosen = {n.unique_id for n in select(project, spec, None, ["model"])
              if isinstance(n, Node) and n.package_name == project.name}
    targets = _targets(plan, root)
    if targets:
        chosen |= {u for u in targets if u in project.nodes
                   and project.nodes[u].resource_type == "model"
                   and project.nodes[u].package_name == project.name}
    nodes = [project.nodes[u] for u in sorted(chosen)]
    return data_quality(session, nodes)


def _baselines(session: Any, policy: Any) -> Any:
    from dbt_bulwark.run.baseline import check_baselines
    from dbt_bulwark.run.quality import LayerOutcome

    result = check_baselines(session, policy, None)
    return LayerOutcome(result.status, result.summary, result.findings, result.details)


# ----------------------------------------------------------------------------- running

def run_ci(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None
           ) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    t_start = time.perf_counter()
    plan = make_plan(args)
    if not plan.ws.project_roots:
        err.write("bulwark ci: no dbt_project.yml found; nothing to check\n")
        return 2
    if any(name in EXECUTION for name in plan.layers):
        from dbt_bulwark.run.dbt_exec import dbt_missing_reason, project_adapter_for

        if dbt_missing_reason():
            target = args.target or (plan.policy.ci.target if plan.policy else None)
            adapters = {project_adapter_for(plan.ws.project(r), plan.ws.repo_root, target,
                                            args.profiles_dir) for r in plan.ws.project_roots}
            adapters.discard(None)
            adapter = sorted(a for a in adapters if a)[0] if adapters else None
            err.write(f"bulwark ci: the dbt layers need dbt: {dbt_missing_reason(adapter)}\n")
            return 2
    progress = Progress(err, enabled=not args.quiet)
    sessions = _Sessions(plan, progress)
    results = [LayerResult(name) for name in plan.layers]
    if args.format == "text":
        scope = "all files" if plan.all_files else f"{len(plan.files)} changed file(s)"
        out.write(f"bulwark ci: {len(plan.layers)} layer(s); base: {plan.base_label}; "
                  f"{scope}\n")
        out.flush()
    first_static = True
    stop = False
    beside = _start_beside(plan)
    try:
        for res in results:
            if stop:
                res.summary = "not run (--fail-fast)"
                continue
            progress.start(res.name)
            t0 = time.perf_counter()
            took: float | None = None
            try:
                got = beside.pop(res.name)() if res.name in beside else None
                if got is not None:
                    done, took = got
                    first_static = False
                elif res.name in STATIC:
                    done = run_static(res.name, plan, first_static)
                    first_static = False
                else:
                    done = run_execution(res.name, plan, sessions)
            except UsageError:
                raise
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken layer must not hide the rest
                from dbt_bulwark.cache import log_exception

                log = log_exception(exc, f"ci layer {res.name}", plan.ws.repo_root)
                done = LayerResult(res.name, "error",
                                   summary=f"internal error: {type(exc).__name__}: {exc} "
                                           f"(traceback in {log})")
            res.status, res.summary = done.status, done.summary
            res.findings, res.details = done.findings, done.details
            res.seconds = took if took is not None else time.perf_counter() - t0
            progress.done(res)
            if args.format == "text":
                _print_layer_text(res, out)
            if args.fail_fast and res.status in ("failed", "error"):
                stop = True
    finally:
        sessions.close()
        shared = plan.state.get("regression_shared_base")
        if shared is not None:
            shared.close()
        plan.ws.close()   # ci_base_tree is one of its trees
        plan.ws.save()
    total = time.perf_counter() - t_start
    code = verdict(results, args.allow_skipped)
    if args.format == "text":
        out.write(summary_text(results, total, code))
    elif args.format == "markdown":
        out.write(summary_markdown(results, total, code, plan.base_label))
    elif args.format == "json":
        json.dump({"result": "passed" if code == 0 else "failed", "base": plan.base,
                   "base_label": plan.base_label, "seconds": round(total, 3),
                   "coverage": plan.state.get("coverage", []),
                   "layers": [r.to_dict() for r in results]}, out, indent=2, default=str)
        out.write("\n")
    elif args.format == "sarif":
        report([f for r in results for f in r.findings], "sarif", out)
    else:   # github: annotations, then the plain summary
        report([f for r in results for f in r.findings], "github", out)
        out.write(summary_text(results, total, code))
    if args.summary_file:
        with open(args.summary_file, "a", encoding="utf-8") as fh:
            fh.write(summary_markdown(results, total, code, plan.base_label))
    return code


def verdict(results: list[LayerResult], allow_skipped: bool = False) -> int:
    ok = ("passed", "skipped") if allow_skipped else ("passed",)
    return 0 if all(r.status in ok for r in results) else 1


def _print_layer_text(res: LayerResult, out: TextIO) -> None:
    out.write(f"\n== {res.name}: {res.status.upper()} ({res.seconds:.2f}s)"
              + (f" - {res.summary}" if res.summary else "") + "\n")
    for d in res.details:
        out.write(f"   {d}\n")
    if res.findings:
        buf = io.StringIO()
        report(res.findings, "text", buf)
        out.write(buf.getvalue())
    out.flush()


_MARK = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP", "error": "ERROR",
         "not run": "-"}


def summary_text(results: list[LayerResult], total: float, code: int) -> str:
    w = max([len(r.name) for r in results] + [5])
    lines = ["", "Summary", f"  {'layer':<{w}}  {'status':<8} {'time':>7}  details"]
    for r in results:
        lines.append(f"  {r.name:<{w}}  {_MARK.get(r.status, r.status):<8} "
                     f"{r.seconds:>6.2f}s  {r.summary}")
    bad = [r.name for r in results if r.status not in ("passed",)]
    word = "PASSED" if code == 0 else "FAILED"
    tail = f" (not passed: {', '.join(bad)})" if bad else ""
    lines.append(f"bulwark ci {word}{tail} in {total:.2f}s")
    return "\n".join(lines) + "\n"


def summary_markdown(results: list[LayerResult], total: float, code: int, base: str) -> str:
    icon = {"passed": "✅ passed", "failed": "❌ failed", "skipped": "⚠️ skipped",
            "error": "💥 error", "not run": "⏭️ not run"}
    head = "✅ passed" if code == 0 else "❌ failed"
    lines = [f"## bulwark ci: {head}", "",
             f"Base: {markdown_cell(base)} · total {total:.1f}s", "",
             "| layer | status | time | details |", "|---|---|---:|---|"]
    for r in results:
        lines.append(f"| {r.name} | {icon.get(r.status, r.status)} | {r.seconds:.1f}s | "
                     f"{markdown_cell(r.summary)} |")
    lines.append("")
    for r in results:
        if not r.findings and not r.details:
            continue
        n = len(r.findings)
        lines.append(f"<details><summary>{r.name}: {n} finding(s)</summary>")
        lines.append("")
        lines.append("```text")
        lines.extend(r.details)
        buf = io.StringIO()
        report(r.findings, "text", buf)
        lines.extend(buf.getvalue().splitlines())
        lines.append("```")
        lines.append("")
        lines.append("</details>")
        lines.append("")
    return "\n".join(lines) + "\n"
