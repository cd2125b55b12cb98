"""The execution layers that run dbt on the models: ``build --empty`` and the data-quality gate.

* :func:`build_empty` -- ``dbt build --empty`` of the modified models and their
  children: the database itself compiles every query and checks every enforced
  contract (dbt's preflight), on zero rows. On the embedded DuckDB, seeds are
  loaded first and the unmodified ancestors are built empty too, so that refs
  resolve.
* :func:`data_quality` -- ``dbt build`` (with data) of the selected models
  (default: critical and modified), then every test result from dbt's own run
  results: an ERROR-severity failure fails the gate, WARN results are listed.
  Reported per model: tests run, failed, warned.

Both take a :class:`~dbt_bulwark.run.dbt_exec.DbtSession` and return a
:class:`LayerOutcome`; they never import dbt themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dbt_bulwark.findings import Finding
from dbt_bulwark.project.model import Node, Project

if TYPE_CHECKING:  # pragma: no cover
    from dbt_bulwark.run.dbt_exec import DbtSession, Invocation, NodeResult

BUILDABLE = ("model", "snapshot", "seed")

# code -> (severity, one-line meaning); docs/hooks/ci.md documents each.
CODES: dict[str, tuple[str, str]] = {
    "BLK510": ("error", "the database rejected the model in `dbt build --empty` (SQL or contract)"),
    "BLK511": ("error", "a data test errored or failed in `dbt build --empty`"),
    "BLK512": ("error", "a unit test failed"),
    "BLK513": ("warning", "`dbt build --empty` cannot build the model on this adapter: an alias "
                          "after ref() (a dbt --empty limitation, not a bug in the model)"),
    "BLK520": ("error", "an ERROR-severity data test failed"),
    "BLK521": ("warning", "a WARN-severity data test failed"),
    "BLK522": ("error", "a selected model failed to build for the data-quality gate"),
    "BLK523": ("error", "dbt could not run the step at all (parse or project error)"),
}


@dataclass
class ModelTests:
    name: str
    run: int = 0
    failed: int = 0
    warned: int = 0
    skipped: int = 0
    built: str = ""            # the model's own status in the run


@dataclass
class LayerOutcome:
    """What an execution layer found; ``status`` is passed | failed | skipped."""

    status: str
    summary: str
    findings: list[Finding] = field(default_factory=list)
    details: list[str] = field(default_factory=list)   # printed under the layer
    per_model: dict[str, ModelTests] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)   # unique_id -> reason


def model_closure(project: Project, targets: set[str] | None) -> list[Node]:
    """Modified models (and seeds/snapshots) plus every model/snapshot downstream."""
    if targets is None:
        return [n for n in project.nodes.values()
                if n.resource_type in BUILDABLE and n.package_name == project.name]
    out: set[str] = set()
    for uid in targets:
        node = project.nodes.get(uid)
        if node is not None and node.resource_type in BUILDABLE:
            out.add(uid)
        for child in project.descendants(uid):
            cnode = project.nodes.get(child)
            if cnode is not None and cnode.resource_type in ("model", "snapshot"):
                out.add(child)
    return [project.nodes[u] for u in sorted(out)]


def _ancestors(project: Project, nodes: list[Node]) -> list[Node]:
    chosen = {n.unique_id for n in nodes}
    out: set[str] = set()
    for n in nodes:
        for anc in project.ancestors(n.unique_id):
            node = project.nodes.get(anc)
            if node is not None and node.resource_type in ("model", "snapshot") \
                    and anc not in chosen:
                out.add(anc)
    return [project.nodes[u] for u in sorted(out)]


def _project_file(project: Project, original_file_path: str) -> str:
    return f"{project.root}/{original_file_path}" if project.root else original_file_path


def test_location(project: Project, r: NodeResult) -> tuple[str, int]:
    """Where the user edits a test: its YAML entry (generic) or its SQL file (singular)."""
    parent = project.nodes.get(r.attached or "") or project.sources.get(r.attached or "")
    if parent is not None and r.test_name:
        pools = []
        if r.column:
            col = next((c for c in parent.columns if c.name.lower() == r.column.lower()), None)
            if col is not None:
                pools.append(col.tests)
        pools.append(parent.tests)
        for pool in pools:
            for t in pool:
                if t.short_name == r.test_name.rsplit(".", 1)[-1]:
                    return t.repo_path, t.line
        if isinstance(parent, Node) and parent.patch_path:
            return parent.patch_path, parent.patch_line
    if r.path:
        return _project_file(project, r.path), 1 if r.path.endswith(".sql") else 0
    return (parent.repo_path if parent is not None else project.root or "."), 0


def _label(project: Project, uid: str | None) -> str:
    node = project.get(uid or "")
    if node is None:
        return uid or "?"
    if isinstance(node, Node) and node.version is not None:
        return node.label
    return node.name if node.resource_type != "source" else node.unique_id.split(".", 2)[-1]


def _node_finding(project: Project, r: NodeResult, code: str, message: str, hint: str,
                  severity: str = "error") -> Finding:
    node = project.nodes.get(r.unique_id)
    path, line = (node.repo_path, 1) if node is not None else (project.root or ".", 0)
    if node is not None and "contract" in r.message.lower() and node.patch_path:
        path, line = node.patch_path, node.patch_line
    elif node is not None:
        line = _line_in_source(node.raw_code, r.message) or line
    return Finding(path, line, 0, code, message, severity, hint, r.unique_id)


# dbt's --empty rewrite of `{{ ref('x') }} as o`; PostgreSQL (and others) reject the alias
_EMPTY_ALIAS = re.compile(r"_dbt_limit_subq_\w+\s+(as\b|\w+\s*\^)", re.I)

_DB_LINE = re.compile(r"LINE \d+:\s*(?P<text>.+?)\s*\^")


def _line_in_source(raw: str, message: str) -> int | None:
    """The source line of the SQL text a database error quotes (``LINE n: <text> ^``)."""
    m = _DB_LINE.search(message)
    if not m:
        return None
    text = m.group("text").strip()
    hits = [i for i, ln in enumerate(raw.splitlines(), 1) if text and text in ln]
    if not hits:
        token = re.split(r"[\s(,]", text, maxsplit=1)[0]
        hits = [i for i, ln in enumerate(raw.splitlines(), 1) if len(token) > 2 and token in ln]
    return hits[0] if len(hits) == 1 else None


def _invocation_failed(inv: Invocation, what: str, session: DbtSession) -> Finding | None:
    if inv.success or inv.results:
        return None
    return Finding(session.project.root or ".", 0, 0, "BLK523",
                   f"{what} could not run: {inv.error or 'unknown error'}", "error",
                   f"see the dbt log: {session.log_path()}")


# ----------------------------------------------------------------------------- build --empty

def build_empty(session: DbtSession, targets: set[str] | None) -> LayerOutcome:
    project = session.project
    nodes = model_closure(project, targets)
    if not nodes:
        return LayerOutcome("passed", "no modified models: nothing to build")
    skipped: dict[str, str] = {}
    buildable = []
    for n in nodes:
        why = session.cannot_build_reason(n.unique_id)
        if why:
            skipped[n.unique_id] = why
        else:
            buildable.append(n)
    out = LayerOutcome("passed", "", skipped=skipped)
    for uid, why in sorted(skipped.items()):
        out.details.append(f"skipped {_label(project, uid)}: {why}")
    if not buildable:
        out.status = "skipped"
        out.summary = f"cannot build any of the {len(nodes)} modified model(s) here"
        return out
    steps: list[Invocation] = []
    seed = session.seed()
    if seed is not None:
        steps.append(seed)
        bad = _invocation_failed(seed, "dbt seed", session)
        if bad is not None:
            out.findings.append(bad)
    if session.engine.isolated:
        ancestors = [a for a in _ancestors(project, buildable)
                     if a.unique_id not in session.built_with_data
                     and not session.cannot_build_reason(a.unique_id)]
        if ancestors:
            inv = session.invoke(["run", "--empty", "--select",
                                  *sorted({_sel(a) for a in ancestors})],
                                 "dbt run --empty (upstream)")
            steps.append(inv)
            for r in inv.results:
                if r.status == "error":
                    out.findings.append(_node_finding(
                        project, r, "BLK510",
                        f"upstream model {_label(project, r.unique_id)} does not build: "
                        f"{r.message}", "fix the model's SQL"))
    inv = session.build(buildable, empty=True, label="dbt build --empty")
    steps.append(inv)
    bad = _invocation_failed(inv, "dbt build --empty", session)
    if bad is not None:
        out.findings.append(bad)
    models = tests = 0
    for r in inv.results:
        if r.resource_type in BUILDABLE:
            models += 1
            if r.status == "error" and _EMPTY_ALIAS.search(r.message):
                out.findings.append(_node_finding(
                    project, r, "BLK513",
                    f"`dbt build --empty` cannot build {_label(project, r.unique_id)} on "
                    f"{session.engine.adapter}: --empty turns `{{{{ ref(...) }}}} as x` into "
                    f"`(select ... limit 0) _dbt_limit_subq_... as x`, which the database "
                    f"rejects ({r.message})",
                    "read the ref in a CTE and alias the CTE: "
                    "`with x as (select * from {{ ref('...') }})`; the model itself is fine",
                    severity="warning"))
            elif r.status == "error":
                out.findings.append(_node_finding(
                    project, r, "BLK510",
                    f"the database rejected {_label(project, r.unique_id)} in "
                    f"`dbt build --empty`: {r.message}",
                    "fix the SQL or the contract so that they agree; "
                    "`dbt build --empty -s <model>` reproduces it"))
        elif r.resource_type == "unit_test":
            tests += 1
            if r.status in ("fail", "error"):
                out.findings.append(_node_finding(
                    project, r, "BLK512", f"unit test {r.unique_id.split('.')[-1]} failed: "
                    f"{r.message}", "fix the model or the unit test's expected rows"))
        elif r.resource_type == "test":
            tests += 1
            if r.status in ("fail", "error") and r.severity == "ERROR":
                path, line = test_location(project, r)
                out.findings.append(Finding(
                    path, line, 0, "BLK511",
                    f"test {_test_label(r)} on {_label(project, r.attached)} "
                    f"{'errored' if r.status == 'error' else 'failed'} on empty tables: "
                    f"{r.message}", "error", "a test that fails on zero rows is wrong SQL",
                    r.unique_id))
    seconds = sum(s.seconds for s in steps)
    out.details.append(f"{models} node(s), {tests} test(s) built/run empty in {seconds:.1f}s "
                       f"on {session.engine.description}")
    errors = [f for f in out.findings if f.severity == "error"]
    if errors:
        out.status = "failed"
        if session.engine.substitute_for:
            out.status = "skipped"
            out.summary = (f"{len(errors)} failure(s) on DuckDB standing in for "
                           f"{session.engine.substitute_for}: may be dialect differences")
            return out
        out.summary = f"{len(errors)} model(s)/test(s) rejected by the database"
    else:
        out.summary = f"{models} node(s) built empty, {tests} test(s) ran"
        if skipped:
            out.summary += f"; {len(skipped)} skipped"
        aliased = sum(1 for f in out.findings if f.code == "BLK513")
        if aliased:
            out.summary += f"; {aliased} not buildable empty on {session.engine.adapter} (BLK513)"
    return out


def _sel(node: Node) -> str:
    from dbt_bulwark.run.dbt_exec import selector_for

    return selector_for(node)


def _test_label(r: NodeResult) -> str:
    if r.test_name:
        return f"{r.test_name}({r.column})" if r.column else r.test_name
    return r.unique_id.split(".")[2] if r.unique_id.count(".") >= 2 else r.unique_id


# ----------------------------------------------------------------------------- data quality

def data_quality(session: DbtSession, nodes: list[Node]) -> LayerOutcome:
    project = session.project
    if not nodes:
        return LayerOutcome("passed", "no critical or modified models: nothing to test")
    out = LayerOutcome("passed", "")
    runnable: list[Node] = []
    for n in nodes:
        why = session.no_data_reason(n) or session.cannot_build_reason(n.unique_id)
        if why:
            out.skipped[n.unique_id] = why
        else:
            runnable.append(n)
    for uid, why in sorted(out.skipped.items()):
        out.details.append(f"skipped {_label(project, uid)}: {why}")
    if not runnable:
        out.status = "skipped"
        out.summary = f"no data for any of the {len(nodes)} selected model(s)"
        return out
    seed = session.seed()
    if seed is not None:
        bad = _invocation_failed(seed, "dbt seed", session)
        if bad is not None:
            out.findings.append(bad)
    selectors = sorted({("+" if session.engine.isolated else "") + _sel(n)
                        for n in runnable})
    inv = session.invoke(["build", "--select", *selectors], "dbt build (data quality)")
    bad = _invocation_failed(inv, "dbt build", session)
    if bad is not None:
        out.findings.append(bad)
    chosen = {n.unique_id for n in runnable}
    for n in runnable:
        out.per_model[n.unique_id] = ModelTests(_label(project, n.unique_id))
    for r in inv.results:
        if r.resource_type in BUILDABLE:
            if r.status == "success":
                session.built_with_data.add(r.unique_id)
            if r.unique_id in out.per_model:
                out.per_model[r.unique_id].built = r.status
            if r.status == "error":
                out.findings.append(_node_finding(
                    project, r, "BLK522", f"{_label(project, r.unique_id)} failed to build: "
                    f"{r.message}", "fix the model; its tests could not run"))
            continue
        if r.resource_type not in ("test", "unit_test"):
            continue
        owner = r.attached if r.resource_type == "test" else _unit_owner(project, r)
        if owner not in chosen and r.status in ("pass", "success", "skipped"):
            continue   # tests of upstream nodes are reported only when they fail
        stats = out.per_model.get(owner or "")
        if stats is None:
            stats = out.per_model.setdefault(owner or r.unique_id,
                                             ModelTests(_label(project, owner)))
        if r.status == "skipped":
            stats.skipped += 1
            continue
        stats.run += 1
        if r.resource_type == "unit_test":
            if r.status in ("fail", "error"):
                stats.failed += 1
                out.findings.append(_node_finding(
                    project, r, "BLK512", f"unit test {r.unique_id.split('.')[-1]} failed: "
                    f"{r.message}", "fix the model or the unit test's expected rows"))
            continue
        path, line = test_location(project, r)
        failures = f"{r.failures} failing row(s)" if r.failures else r.message
        if r.status == "warn" or (r.status == "fail" and r.severity == "WARN"):
            stats.warned += 1
            out.findings.append(Finding(
                path, line, 0, "BLK521",
                f"test {_test_label(r)} on {_label(project, owner)} warned: {failures}",
                "warning", "WARN-severity tests do not fail the gate; fix the data or the test",
                r.unique_id))
        elif r.status in ("fail", "error"):
            stats.failed += 1
            verb = "errored" if r.status == "error" else "failed"
            out.findings.append(Finding(
                path, line, 0, "BLK520",
                f"test {_test_label(r)} on {_label(project, owner)} {verb}: {failures}",
                "error", "fix the model or the data; `dbt test -s <model>` shows the rows "
                "(`--store-failures` keeps them)", r.unique_id))
    failed = sum(s.failed for s in out.per_model.values())
    warned = sum(s.warned for s in out.per_model.values())
    run = sum(s.run for s in out.per_model.values())
    width = max([len(s.name) for s in out.per_model.values()] + [5])
    out.details.append(f"{'model':<{width}}  tests  failed  warned")
    for _uid, s in sorted(out.per_model.items(), key=lambda kv: kv[1].name):
        flag = "" if s.built in ("", "success") else f"  (build: {s.built})"
        out.details.append(f"{s.name:<{width}}  {s.run:>5}  {s.failed:>6}  {s.warned:>6}{flag}")
    build_errors = [f for f in out.findings if f.code in ("BLK522", "BLK523", "BLK512")]
    if failed or build_errors:
        out.status = "failed"
        if session.engine.substitute_for and not failed:
            out.status = "skipped"
            out.summary = (f"models failed to build on DuckDB standing in for "
                           f"{session.engine.substitute_for}")
            return out
        out.summary = f"{failed} ERROR test failure(s)" + (
            f", {len(build_errors)} build error(s)" if build_errors else "")
    else:
        out.summary = f"{run} test(s) on {len(runnable)} model(s): 0 failed"
    if warned:
        out.summary += f", {warned} warned"
    if out.skipped:
        out.summary += f"; {len(out.skipped)} model(s) without data skipped"
    return out


def _unit_owner(project: Project, r: NodeResult) -> str | None:
    # unit_test.<package>.<model>.<test name>
    parts = r.unique_id.split(".")
    if len(parts) >= 4:
        node = project.model_by_name(parts[2])
        return node.unique_id if node is not None else None
    return None
