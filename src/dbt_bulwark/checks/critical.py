"""Critical models: which they are, what protects them, what a change took away.

Used by ``bulwark check-critical-tags`` and ``bulwark critical suggest``.

* :func:`critical_policy` reads the ``critical.*`` / ``locked.*`` policy keys.
* :func:`classify` decides which models of a project are critical, and why: a model
  carrying one of ``critical.tags`` or the ``locked.tag`` is critical (zero-config
  default); the policy may add ``critical.select`` (dbt selector syntax),
  ``min_downstream``, ``feeds_exposures`` and ``public``.
* :func:`check` (the hook's ``check`` for :func:`dbt_bulwark.runner.run_hook`) reports
  missing tags (BLK301), description (BLK302), owner (BLK303), tested primary key
  (BLK304) and, against the base revision, removed protection tags (BLK310), a
  disabled or deleted critical model (BLK311) and removed tests (BLK312).
* :func:`apply_tag_fixes` / :func:`add_tags` write missing tags into the model's
  properties YAML with :class:`dbt_bulwark.yaml_edit.PropertiesEditor`.
* :func:`rank` scores models by downstream reach for ``critical suggest``.

Only models of the root project (not of installed packages) are considered. The
module imports nothing heavy at import time; git and the YAML editor are imported
inside the functions that need them.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from dbt_bulwark.findings import Finding, UsageError
from dbt_bulwark.policy import Policy
from dbt_bulwark.project.fs import join
from dbt_bulwark.project.model import DataTest, Node, Project

CODES: dict[str, str] = {
    "BLK301": "a critical (or locked) model lacks a required tag",
    "BLK302": "a critical model has no description",
    "BLK303": "a critical model has no owner (meta.owner or a group with an owner)",
    "BLK304": "a critical model has no tested primary key",
    "BLK310": "a protection tag present at the base revision was removed",
    "BLK311": "a model critical at the base revision was disabled or deleted",
    "BLK312": "tests of a locked (or critical) model present at the base revision were removed",
    "BLK320": "--fix could not write a properties file (unsafe target, alias, invalid YAML)",
    "BLK321": "--fix wrote tags that the reloaded project still does not show",
}

# Resource types that count as "downstream reach" (tests and analyses do not).
REACH_TYPES = frozenset({"model", "snapshot", "seed"})
POLICY_FILES = ("bulwark.yml", "pyproject.toml")
_BASE_CACHE_VERSION = 1


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class CriticalPolicy:
    tags: tuple[str, ...]
    locked_tag: str
    select: Any
    min_downstream: int | None
    feeds_exposures: bool
    public: bool
    require: dict[str, bool]
    check_base: bool

    @property
    def marker_tags(self) -> tuple[str, ...]:
        """Tags that make a model critical by themselves: ``critical.tags`` + ``locked.tag``."""
        out = list(self.tags)
        if self.locked_tag and self.locked_tag not in out:
            out.append(self.locked_tag)
        return tuple(out)

    @property
    def has_rules(self) -> bool:
        return bool(self.select) or self.min_downstream is not None or self.feeds_exposures \
            or self.public

    def key(self) -> str:
        return repr((self.tags, self.locked_tag, self.select, self.min_downstream,
                     self.feeds_exposures, self.public))


def critical_policy(policy: Policy) -> CriticalPolicy:
    crit = policy.critical
    return CriticalPolicy(
        tags=tuple(str(t) for t in crit.tags if str(t)),
        locked_tag=policy.locked.tag,
        select=crit.select,
        min_downstream=crit.min_downstream,
        feeds_exposures=crit.feeds_exposures,
        public=crit.public,
        require=dataclasses.asdict(crit.require),
        check_base=crit.check_base,
    )


# --------------------------------------------------------------------------- graph reach


@dataclass
class Reach:
    direct: int            # direct children that are models/snapshots/seeds
    downstream: int        # transitive children that are models/snapshots/seeds
    exposures: list[str]   # names of exposures fed, directly or transitively


def reach_all(project: Project) -> dict[str, Reach]:
    """Downstream reach of every node, in one pass over the DAG (bitsets, O(edges))."""
    resources = [r for r in project.resources()
                 if r.resource_type in REACH_TYPES or r.resource_type == "exposure"]
    index = {r.unique_id: i for i, r in enumerate(resources)}
    count_mask = 0
    exposure_mask = 0
    for r in resources:
        if r.resource_type == "exposure":
            exposure_mask |= 1 << index[r.unique_id]
        else:
            count_mask |= 1 << index[r.unique_id]
    children = project.children_map()
    memo: dict[str, int] = {}
    for start in index:
        if start in memo:
            continue
        # iterative post-order DFS; a cycle (invalid in dbt) just stops the walk
        stack: list[tuple[str, bool]] = [(start, False)]
        on_path: set[str] = set()
        while stack:
            uid, done = stack.pop()
            if done:
                on_path.discard(uid)
                bits = 0
                for child in children.get(uid, ()):
                    if child in index:
                        bits |= (1 << index[child]) | memo.get(child, 0)
                memo[uid] = bits
                continue
            if uid in memo or uid in on_path:
                continue
            on_path.add(uid)
            stack.append((uid, True))
            for child in children.get(uid, ()):
                if child in index and child not in memo and child not in on_path:
                    stack.append((child, False))
    names = {index[r.unique_id]: r.name for r in resources if r.resource_type == "exposure"}
    out: dict[str, Reach] = {}
    for uid, bits in memo.items():
        direct = sum(1 for c in children.get(uid, ()) if c in index
                     and (count_mask >> index[c]) & 1)
        exp_bits = bits & exposure_mask
        exposures = sorted(names[i] for i in names if (exp_bits >> i) & 1)
        out[uid] = Reach(direct, _popcount(bits & count_mask), exposures)
    return out


def _popcount(value: int) -> int:
    return bin(value).count("1")


# --------------------------------------------------------------------------- classification


@dataclass
class Status:
    node: Node
    reasons: list[str] = field(default_factory=list)
    locked: bool = False
    required: bool = False       # selected by a policy rule, not only by its own tag

    @property
    def label(self) -> str:
        return "locked" if self.locked else "critical"


def own_models(project: Project) -> list[Node]:
    return [n for n in project.models(include_packages=False)]


def required_by_policy(project: Project, cp: CriticalPolicy,
                       reach: dict[str, Reach] | None = None) -> dict[str, list[str]]:
    """unique_id -> reasons, for the models the policy's rules select (tags not counted)."""
    out: dict[str, list[str]] = {}
    models = {n.unique_id: n for n in own_models(project)}
    if cp.select:
        from dbt_bulwark.project.selector import select

        try:
            chosen = select(project, cp.select, resource_types=["model"])
        except UsageError as exc:
            raise UsageError(f"critical.select: {exc}") from None
        for res in chosen:
            if res.unique_id in models:
                out.setdefault(res.unique_id, []).append("matches critical.select")
    if cp.min_downstream is not None or cp.feeds_exposures:
        reach = reach if reach is not None else reach_all(project)
    if cp.min_downstream is not None and reach is not None:
        for uid in models:
            r = reach.get(uid)
            n = (r.downstream + len(r.exposures)) if r else 0
            if n >= cp.min_downstream:
                out.setdefault(uid, []).append(
                    f"{n} downstream models/exposures (critical.min_downstream: "
                    f"{cp.min_downstream})")
    if cp.feeds_exposures:
        for exp in project.exposures.values():
            for parent in exp.depends_on:
                if parent in models:
                    out.setdefault(parent, []).append(f"feeds exposure '{exp.name}'")
    if cp.public:
        for uid, node in models.items():
            if node.access == "public":
                out.setdefault(uid, []).append("access: public")
    return out


def classify(project: Project, cp: CriticalPolicy,
             reach: dict[str, Reach] | None = None) -> dict[str, Status]:
    """The critical models of ``project`` (own models only) and why each is critical."""
    out: dict[str, Status] = {}
    markers = cp.marker_tags
    for node in own_models(project):
        tags = node.tags
        have = [t for t in markers if t in tags]
        if have:
            st = out.setdefault(node.unique_id, Status(node))
            st.reasons.append("tagged " + ", ".join(f"'{t}'" for t in have))
            st.locked = bool(cp.locked_tag) and cp.locked_tag in tags
    for uid, reasons in required_by_policy(project, cp, reach).items():
        st = out.setdefault(uid, Status(project.nodes[uid]))
        st.reasons.extend(reasons)
        st.required = True
    return out


# --------------------------------------------------------------------------- protections


def _enabled_test(test: DataTest) -> bool:
    from dbt_bulwark.project.config import truthy

    return truthy(test.config.get("enabled", True))


def _constraint_types(items: list[dict[str, Any]]) -> set[str]:
    return {str(c.get("type", "")).lower() for c in items if isinstance(c, dict)}


def primary_key(node: Node) -> str | None:
    """How the model's primary key is protected, or None.

    Accepted: a column with ``unique`` and ``not_null`` tests (``not_null`` may be a
    constraint), a ``primary_key`` constraint on a column or the model, a
    ``dbt_utils.unique_combination_of_columns`` model test, or a model-level
    ``unique``/``not_null`` pair on the same ``column_name``. Disabled tests do not count.
    """
    per_column: dict[str, set[str]] = {}
    for col in node.columns:
        names = per_column.setdefault(col.name.lower(), set())
        names.update(t.short_name for t in col.tests if _enabled_test(t))
        cons = _constraint_types(col.constraints)
        if "primary_key" in cons:
            return f"column '{col.name}' has a primary_key constraint"
        if "not_null" in cons:
            names.add("not_null")
    for test in node.tests:
        if not _enabled_test(test):
            continue
        if test.short_name == "unique_combination_of_columns":
            cols = test.kwargs.get("combination_of_columns")
            shown = ", ".join(map(str, cols)) if isinstance(cols, list) else "columns"
            return f"unique_combination_of_columns({shown}) is tested"
        column = test.kwargs.get("column_name")
        if isinstance(column, str) and test.short_name in ("unique", "not_null"):
            per_column.setdefault(column.lower(), set()).add(test.short_name)
    if "primary_key" in _constraint_types(node.constraints):
        return "the model has a primary_key constraint"
    for name, tests in per_column.items():
        if {"unique", "not_null"} <= tests:
            return f"'{name}' is tested unique + not_null"
        if "primary_key" in tests:  # dbt_constraints.primary_key
            return f"'{name}' has a primary_key test"
    return None


def owner(project: Project, node: Node) -> str | None:
    """``meta.owner`` (top-level or ``config.meta``, any level) or the model's group owner."""
    value = node.meta.get("owner")
    if value not in (None, "", [], {}):
        return f"meta.owner: {value}"
    group = node.config.get("group")
    if isinstance(group, str) and group:
        found = _group_owner(project, group)
        if found:
            return f"group '{group}' ({found})"
    return None


def _group_owner(project: Project, group: str) -> str | None:
    for data in project.yaml_files.values():
        groups = data.get("groups") if isinstance(data, dict) else None
        for entry in groups if isinstance(groups, list) else []:
            if isinstance(entry, dict) and entry.get("name") == group:
                own = entry.get("owner")
                if isinstance(own, dict):
                    for key in ("name", "email"):
                        if own.get(key):
                            return str(own[key])
                return None
    return None


def entry_position(node: Node) -> tuple[str, int]:
    """Where to point for a property the user adds in YAML: the entry, else the SQL file."""
    if node.patch_path:
        return node.patch_path, node.patch_line or 1
    return node.repo_path, 1


def generic_test_keys(node: Node) -> Counter[tuple[str, str]]:
    """Multiset of (test name, column) of the model's enabled generic tests."""
    keys: Counter[tuple[str, str]] = Counter()
    for col in node.columns:
        for t in col.tests:
            if _enabled_test(t):
                keys[(t.test_name, col.name.lower())] += 1
    for t in node.tests:
        if _enabled_test(t):
            column = t.kwargs.get("column_name")
            keys[(t.test_name, str(column).lower() if isinstance(column, str) else "")] += 1
    return keys


# --------------------------------------------------------------------------- the hook


def check(ctx: Any, project: Project, policy: Policy, targets: set[str] | None) -> list[Finding]:
    """The ``check`` of :func:`dbt_bulwark.runner.run_hook` for ``check-critical-tags``."""
    cp = critical_policy(policy)
    statuses = classify(project, cp)
    stats = ctx.state.setdefault("critical", {"critical": 0, "locked": 0, "no_contract": []})
    findings: list[Finding] = []
    base_tags: dict[str, set[str]] = {}
    base_findings: list[Finding] = []
    if cp.check_base and getattr(ctx.args, "base_check", True):
        base_findings, base_tags = compare_with_base(ctx, project, policy, cp, targets)
    for uid, st in sorted(statuses.items()):
        node = st.node
        stats["critical"] += 1
        stats["locked"] += int(st.locked)
        if cp.require.get("contract", True) and not node.contract_enforced:
            stats["no_contract"].append(node.label)
        if targets is not None and uid not in targets:
            continue
        findings.extend(protection_findings(project, st, cp, base_tags.get(uid, set())))
    return findings + base_findings


def protection_findings(project: Project, st: Status, cp: CriticalPolicy,
                        had_at_base: set[str] | None = None) -> list[Finding]:
    node = st.node
    label = node.label
    why = "; ".join(st.reasons)
    path, line = entry_position(node)
    out: list[Finding] = []
    missing = [t for t in cp.tags if t not in node.tags]
    if missing:
        shown = ", ".join(f"'{t}'" for t in missing)
        what = "locked model" if st.locked else "critical model"
        msg = f"{what} '{label}' is missing tag {shown} ({why})"
        removed = sorted(set(missing) & (had_at_base or set()))
        if removed:
            msg += "; it had it at the base revision"
        out.append(Finding(path, line, 1, "BLK301", msg, hint=f"add `tags: [{', '.join(missing)}]` "
                           "under the model's `config:` in YAML (`bulwark check-critical-tags "
                           "--fix` does it)", node=node.unique_id,
                           extra={"tags": missing}))
    if cp.require.get("description", True) and not node.description.strip():
        out.append(Finding(path, line, 1, "BLK302",
                           f"critical model '{label}' has no description ({why})",
                           hint="add `description:` to the model's YAML entry",
                           node=node.unique_id))
    if cp.require.get("owner", True) and owner(project, node) is None:
        group = node.config.get("group")
        detail = f"; its group '{group}' has no owner" if isinstance(group, str) and group \
            else ""
        out.append(Finding(path, line, 1, "BLK303",
                           f"critical model '{label}' has no owner{detail} ({why})",
                           hint="set `config: {meta: {owner: ...}}` or `config: {group: ...}` "
                           "with a group that has an owner", node=node.unique_id))
    if cp.require.get("primary_key", True) and primary_key(node) is None:
        out.append(Finding(path, line, 1, "BLK304",
                           f"critical model '{label}' has no tested primary key ({why})",
                           hint="add `data_tests: [unique, not_null]` to its key column, a "
                           "`primary_key` constraint, or dbt_utils.unique_combination_of_columns",
                           node=node.unique_id))
    return out


# --------------------------------------------------------------------------- base revision


@dataclass
class BaseModel:
    """What protected a model at the base revision (plain data: it is cached)."""

    unique_id: str
    label: str
    repo_path: str
    patch_path: str | None
    tags: list[str]              # marker tags it carried at base
    locked: bool
    required: bool               # selected by a rule of the base policy
    tests: dict[tuple[str, str], int]


def _git_base(ctx: Any) -> tuple[Any, str, str] | None:
    """(git top level, base revision, prefix of the workspace inside it), or None."""
    if "critical_base" in ctx.state:
        return ctx.state["critical_base"]
    from dbt_bulwark.project import gitfs

    found: tuple[Any, str, str] | None = None
    loc = ctx.ws.git_location()
    if loc is not None:
        base = gitfs.resolve_base(loc[0], getattr(ctx.args, "base", None))
        if base is not None:
            found = (loc[0], base, loc[1])
    elif getattr(ctx.args, "base", None):
        raise UsageError("--base needs a git repository")
    ctx.state["critical_base"] = found
    return found


def _base_tree(ctx: Any) -> Any:
    found = _git_base(ctx)
    return ctx.ws.tree_at(found[1]) if found else None


def _summarise_base(project: Project, cp: CriticalPolicy) -> list[BaseModel]:
    out = []
    for uid, st in classify(project, cp).items():
        node = st.node
        out.append(BaseModel(uid, node.label, node.repo_path, node.patch_path,
                             [t for t in cp.marker_tags if t in node.tags], st.locked,
                             st.required, dict(generic_test_keys(node))))
    return out


def compare_with_base(ctx: Any, project: Project, policy: Policy, cp: CriticalPolicy,
                      targets: set[str] | None) -> tuple[list[Finding], dict[str, set[str]]]:
    """Findings for protection the change removed, and the base marker tags per model."""
    from dbt_bulwark.policy import load_policy

    changed = set(ctx.files)
    fs = ctx.ws.fs
    if targets is not None and not targets and not any(
            not fs.is_file(f) for f in changed if _under(f, project.root)):
        return [], {}
    if _git_base(ctx) is None:
        return [], {}
    tree = _base_tree(ctx)
    if tree is None or not tree.is_file(join(project.root, "dbt_project.yml")):
        return [], {}
    try:
        base_policy: Policy | None = load_policy(tree, project.root)
    except UsageError:
        base_policy = None
    policy_changed = base_policy is None or base_policy != policy
    base_cp = critical_policy(base_policy) if base_policy is not None else cp
    cache = ctx.ws.cache
    # the base is read with the installed packages: their stamp is part of its tree id
    base_fs = ctx.ws.with_installed(tree, project.root)
    key = ("critical-base", _BASE_CACHE_VERSION, base_fs.tree_id, project.root,
           repr(sorted((str(k), repr(v)) for k, v in ctx.ws.cli_vars.items())))
    summary = cache.get(key) if cache is not None else None
    base_project: Project | None = None

    def load_base() -> Project:
        nonlocal base_project
        if base_project is None:
            base_project = ctx.ws.base_project(base_fs, project.root)
        return base_project

    if summary is None:
        summary = _summarise_base(load_base(), base_cp)
        if cache is not None:
            cache.put(key, summary)
    base_tags = {bm.unique_id: set(bm.tags) for bm in summary}
    now_required: dict[str, list[str]] | None = None

    def still_required(bm: BaseModel) -> bool:
        nonlocal now_required
        if now_required is None:
            now_required = required_by_policy(project, cp)
        if bm.unique_id in project.nodes:
            return bm.unique_id in now_required
        return bm.unique_id in required_by_policy(load_base(), cp)

    def excused(bm: BaseModel) -> bool:
        return policy_changed and not still_required(bm)

    findings: list[Finding] = []
    disabled = {uid: nodes[0] for uid, nodes in project.disabled.items() if nodes}
    for bm in summary:
        if not (targets is None or bm.unique_id in targets or bm.repo_path in changed
                or (bm.patch_path and bm.patch_path in changed) or not fs.is_file(bm.repo_path)):
            continue
        what = "locked" if bm.locked else "critical"
        node = project.nodes.get(bm.unique_id)
        if node is None:
            if excused(bm):
                continue
            off = disabled.get(bm.unique_id)
            if off is not None:
                path, line = off.where("enabled")
                findings.append(Finding(
                    path, line or 1, 1, "BLK311",
                    f"{what} model '{bm.label}' is disabled by this change (it was enabled and "
                    f"{what} at the base revision)",
                    hint="keep it enabled, or change the policy (bulwark.yml) in the same "
                    "change if it is no longer critical", node=bm.unique_id))
            else:
                findings.append(Finding(
                    bm.repo_path, 0, 0, "BLK311",
                    f"{what} model '{bm.label}' was deleted or renamed (it was {what} at the "
                    "base revision)",
                    hint="restore it, or change the policy (bulwark.yml) in the same change if "
                    "it is no longer critical", node=bm.unique_id))
            continue
        lost = [t for t in bm.tags if t not in node.tags]
        required_now = classify_one(project, cp, node, now_required_cache=ctx.state)
        reported_by_301 = set(cp.tags) if required_now else set()
        lost_here = [t for t in lost if t not in reported_by_301]
        if lost_here and not excused(bm):
            path, line = node.where("tags")
            shown = ", ".join(f"'{t}'" for t in lost_here)
            findings.append(Finding(
                path, line or 1, 1, "BLK310",
                f"model '{bm.label}' lost tag {shown} (it was {what} at the base revision)",
                hint="restore the tag, or change the policy (bulwark.yml) in the same change "
                "to record that it is no longer critical", node=bm.unique_id))
        removed = Counter(bm.tests) - generic_test_keys(node)
        if removed and not excused(bm):
            items = sorted(removed.elements())
            shown = ", ".join(f"{name}({col})" if col else name for name, col in items[:5])
            if len(items) > 5:
                shown += f", ... ({len(items)} in all)"
            path, line = entry_position(node)
            findings.append(Finding(
                path, line, 1, "BLK312",
                f"tests of {what} model '{bm.label}' were removed: {shown}",
                severity="error" if bm.locked else "warning",
                hint="restore the tests (a locked model's tests may not be removed), or change "
                "the policy in the same change", node=bm.unique_id))
    return findings, base_tags


def classify_one(project: Project, cp: CriticalPolicy, node: Node,
                 now_required_cache: dict[str, Any]) -> bool:
    """Whether ``node`` is critical now (tags or policy rules); memoised per project."""
    key = f"critical_now:{project.root}:{cp.key()}"
    if key not in now_required_cache:
        now_required_cache[key] = set(classify(project, cp))
    return node.unique_id in now_required_cache[key]


def _under(path: str, root: str) -> bool:
    return not root or path == root or path.startswith(root + "/")


# --------------------------------------------------------------------------- fixing


def properties_file_for(project: Project, node: Node) -> str:
    """The repo path of the properties YAML that should describe ``node``.

    Its own entry's file when it has one; else the YAML file in the model's folder
    that already describes the most models; else ``<folder>/schema.yml``.
    """
    if node.patch_path:
        return node.patch_path
    folder = node.repo_path.rsplit("/", 1)[0] if "/" in node.repo_path else ""
    best: tuple[int, str] | None = None
    for rp, data in project.yaml_files.items():
        here = rp.rsplit("/", 1)[0] if "/" in rp else ""
        if here != folder or not isinstance(data, dict):
            continue
        models = data.get("models")
        if not isinstance(models, list):
            continue
        score = (len(models), rp)
        if best is None or score[0] > best[0] or (score[0] == best[0] and rp < best[1]):
            best = score
    if best is not None:
        return best[1]
    return join(folder, "schema.yml")


@dataclass
class TagEdit:
    node: Node
    tags: list[str]
    path: str            # repo path of the properties file


def add_tags(repo_root: Any, edits: list[TagEdit]) -> tuple[list[str], list[Finding], set[str]]:
    """Apply tag edits file by file, under each entry's ``config: tags:`` (where dbt
    reads a model's tags). Returns (changed files, BLK320 findings for what could not be
    written, done uids). Only regular files inside ``repo_root`` are written."""
    from dbt_bulwark.yaml_edit import PropertiesEditor, YamlEditError

    by_file: dict[str, list[TagEdit]] = {}
    for e in edits:
        by_file.setdefault(e.path, []).append(e)
    changed: list[str] = []
    errors: list[Finding] = []
    done: set[str] = set()

    def refused(rel: str, line: int | None, e: TagEdit, why: str) -> Finding:
        return Finding(rel, line or 0, 1 if line else 0, "BLK320",
                       f"--fix could not add tag {', '.join(map(repr, e.tags))} to "
                       f"'{e.node.label}': {why}",
                       hint="add the tags under the model's `config: tags:` by hand",
                       node=e.node.unique_id)

    for rel, items in sorted(by_file.items()):
        target = os.path.join(str(repo_root), rel)
        ok: list[str] = []
        try:
            editor = PropertiesEditor(target, repo_root)
            for e in items:
                mark = editor.mark()   # one model's edits are all or nothing
                try:
                    entry = editor.model(e.node.name, e.node.version)
                    if entry is None:
                        continue
                    editor.add_tags(entry, e.tags)
                    ok.append(e.node.unique_id)
                except YamlEditError as exc:
                    editor.rollback(mark)
                    errors.append(refused(rel, exc.line, e, exc.message))
                    done.add(e.node.unique_id)   # reported: not again if the save fails
            if editor.save():
                changed.append(rel)
            done.update(ok)
        except (YamlEditError, OSError) as exc:
            msg = exc.message if isinstance(exc, YamlEditError) else str(exc)
            line = exc.line if isinstance(exc, YamlEditError) else None
            errors.extend(refused(rel, line, e, msg) for e in items
                          if e.node.unique_id not in done)
    done -= {f.node for f in errors if f.node}
    return changed, errors, done


def apply_tag_fixes(ctx: Any, findings: list[Finding]) -> tuple[list[Finding], list[str]]:
    """Add the tags BLK301 findings ask for. Returns (findings after the fix, changed files).

    After writing, the project is reloaded and checked again (as ``check-contracts
    --fix`` does): the findings returned are those of the fixed project, plus a BLK320
    per edit that was refused and a BLK321 for a model whose written tags the reload
    does not show (a fix that did not take effect is an error, never a silent pass)."""

    edits: list[TagEdit] = []
    blocked: list[Finding] = []
    for f in findings:
        if f.code != "BLK301" or not f.node:
            continue
        node = None
        for project in ctx.ws.projects():
            node = project.nodes.get(f.node)
            if node is not None and node.package_name == project.name:
                edit = TagEdit(node, list(f.extra.get("tags") or []),
                               properties_file_for(project, node))
                why = fix_blocker(ctx.ws.repo_root, project, edit)
                if why is not None:
                    blocked.append(why)
                else:
                    edits.append(edit)
                break
    if not edits:
        return findings + blocked, []
    changed, errors, done = add_tags(ctx.ws.repo_root, edits)
    errors = blocked + errors
    if not changed:
        return findings + errors, []
    for rel in changed:
        ctx.notes.append(f"bulwark check-critical-tags: added tags in {rel}")
    again = recheck(ctx)
    wanted = {e.node.unique_id: e for e in edits if e.node.unique_id in done}
    out: list[Finding] = []
    for f in again:
        e = wanted.get(f.node)
        if f.code == "BLK301" and e is not None:
            out.append(Finding(f.path, f.line, f.col, "BLK321",
                               f"--fix wrote tag {', '.join(map(repr, e.tags))} for "
                               f"'{e.node.label}' in {e.path}, but the reloaded project "
                               "still does not carry it (dbt would not see it)",
                               hint="set the tags where dbt reads them (`config: tags:` of the "
                               "model's entry, SQL config(), dbt_project.yml +tags) by hand",
                               node=f.node))
        else:
            out.append(f)
    return out + errors, changed


def fix_blocker(repo_root: Any, project: Project, edit: TagEdit) -> Finding | None:
    """A BLK320 when a properties file that could describe the model failed to load
    (an entry written now would describe it twice once that file is repaired)."""
    from dbt_bulwark.yaml_edit import unloaded_properties

    found = unloaded_properties(project, repo_root, edit.node.name)
    if found is None:
        return None
    bad, line, why = found
    return Finding(bad, line, 1 if line else 0, "BLK320",
                   f"--fix does not tag '{edit.node.label}': {bad} {why} and may "
                   "describe it; an entry written now would describe it twice (dbt parse "
                   "fails) once that file is repaired",
                   hint=f"repair {bad} first, then run --fix again", node=edit.node.unique_id)


def recheck(ctx: Any) -> list[Finding]:
    """Reload the project from disk and run the check again, without fixing."""
    from dbt_bulwark import runner

    ctx.ws.save()
    args = ctx.args
    fix, args.fix = getattr(args, "fix", False), False
    try:
        again = runner.open_context(args)
        try:
            return runner.collect(again, check)
        finally:
            runner.close(again)
    finally:
        args.fix = fix


# what ``critical.require`` keys ask of a critical model, in words
PROTECTIONS = {"contract": "an enforced contract", "owner": "an owner (meta.owner or a group)",
               "description": "a description", "primary_key": "a tested primary key"}


def required_protections(cp: CriticalPolicy) -> list[str]:
    """The ``critical.require`` keys in force (each defaults to true)."""
    return [k for k in PROTECTIONS if cp.require.get(k, True)]


def missing_protections(project: Project, cp: CriticalPolicy, node: Node) -> list[str]:
    """The required protections ``node`` lacks (keys of :data:`PROTECTIONS`)."""
    have = {"contract": node.contract_enforced,
            "owner": owner(project, node) is not None,
            "description": bool(node.description.strip()),
            "primary_key": primary_key(node) is not None}
    return [k for k in required_protections(cp) if not have[k]]


def git_author(repo_root: Any, rel: str) -> str | None:
    """The last author of ``rel`` in git (``Name <email>``), or None (no git, no commit)."""
    from dbt_bulwark.project import gitfs

    try:
        proc = gitfs.run_git(repo_root, "log", "-1", "--format=%an%x00%ae", "--", rel,
                             timeout=30)
    except gitfs.GitError:
        return None
    name, _, email = gitfs._decode(proc.stdout).strip().partition("\0")
    if not (name or email):
        return None
    return f"{name} <{email}>" if name and email else (name or email)


def write_owners(repo_root: Any, project: Project, nodes: list[Node]
                 ) -> tuple[list[str], list[Finding], dict[str, str]]:
    """Write ``config: meta: owner:`` (the last git author of the model's SQL file, a
    placeholder to review) for the nodes without an owner. Returns (changed files,
    BLK320 findings, uid -> owner written)."""
    from dbt_bulwark.yaml_edit import PropertiesEditor, YamlEditError

    by_file: dict[str, list[tuple[Node, str]]] = {}
    skipped: list[Finding] = []
    for node in nodes:
        who = git_author(repo_root, node.repo_path)
        if who is None:
            skipped.append(Finding(*entry_position(node), 1, "BLK320",
                                   f"no owner written for '{node.label}': git has no "
                                   f"author for {node.repo_path}",
                                   hint="set `config: {meta: {owner: ...}}` by hand",
                                   node=node.unique_id))
            continue
        by_file.setdefault(properties_file_for(project, node), []).append((node, who))
    changed: list[str] = []
    written: dict[str, str] = {}
    reported: set[str] = set()

    def owner_refused(rel: str, line: int | None, n: Node, why: str) -> Finding:
        return Finding(rel, line or 0, 1 if line else 0, "BLK320",
                       f"no owner written for '{n.label}': {why}",
                       hint="set `config: {meta: {owner: ...}}` by hand", node=n.unique_id)

    for rel, items in sorted(by_file.items()):
        try:
            editor = PropertiesEditor(os.path.join(str(repo_root), rel), repo_root)
            for node, who in items:
                mark = editor.mark()   # one model's edits are all or nothing
                try:
                    entry = editor.model(node.name, node.version)
                    if entry is not None and editor.set_config(entry, "meta", {"owner": who}):
                        written[node.unique_id] = who
                except YamlEditError as exc:
                    editor.rollback(mark)
                    reported.add(node.unique_id)
                    skipped.append(owner_refused(rel, exc.line, node, exc.message))
            if editor.save():
                changed.append(rel)
        except (YamlEditError, OSError) as exc:
            msg = exc.message if isinstance(exc, YamlEditError) else str(exc)
            line = exc.line if isinstance(exc, YamlEditError) else None
            skipped.extend(owner_refused(rel, line, n, msg) for n, _ in items
                           if n.unique_id not in reported)
            for n, _ in items:
                written.pop(n.unique_id, None)
    return changed, skipped, written


def summary_line(ctx: Any) -> str:
    stats = ctx.state.get("critical")
    if not stats or not stats["critical"]:
        return ""
    text = f"check-critical-tags: {stats['critical']} critical model(s)"
    if stats["locked"]:
        text += f" ({stats['locked']} locked)"
    missing = stats["no_contract"]
    if missing:
        shown = ", ".join(sorted(missing)[:5]) + (", ..." if len(missing) > 5 else "")
        text += (f"; {len(missing)} without an enforced contract ({shown}): "
                 "see check-contracts")
    return text


# --------------------------------------------------------------------------- suggest


@dataclass
class Suggestion:
    project: Project
    node: Node
    reach: Reach
    tests: int
    marts: bool
    score: float
    tagged: bool

    def reason(self) -> str:
        parts: list[str] = []
        r = self.reach
        if r.exposures:
            shown = ", ".join(r.exposures[:3]) + (", ..." if len(r.exposures) > 3 else "")
            parts.append(f"feeds {len(r.exposures)} exposure(s) ({shown})")
        if r.downstream:
            parts.append(f"{r.downstream} downstream model(s), {r.direct} direct")
        if self.marts:
            parts.append("in marts")
        if self.tests:
            parts.append(f"{self.tests} test(s)")
        return "; ".join(parts) or "no downstream reach"

    def to_dict(self, rank: int) -> dict[str, Any]:
        return {
            "rank": rank, "project": self.project.name, "unique_id": self.node.unique_id,
            "name": self.node.name, "version": self.node.version,
            "path": self.node.repo_path, "score": self.score, "direct": self.reach.direct,
            "downstream": self.reach.downstream, "exposures": self.reach.exposures,
            "tests": self.tests, "marts": self.marts, "tagged": self.tagged,
            "reason": self.reason(),
        }


def score_of(reach: Reach, tests: int, marts: bool) -> float:
    """2 per direct child + 1 per downstream model + 5 per exposure fed + 3 for marts
    + 0.5 per test (at most 10 tests counted)."""
    return 2.0 * reach.direct + reach.downstream + 5.0 * len(reach.exposures) + \
        (3.0 if marts else 0.0) + 0.5 * min(tests, 10)


def _in_marts(node: Node) -> bool:
    return any(part.lower() in ("marts", "mart") for part in node.fqn[1:-1])


def count_tests(project: Project, node: Node) -> int:
    n = sum(generic_test_keys(node).values())
    for uid in project.children(node.unique_id):
        child = project.nodes.get(uid)
        if child is not None and child.resource_type == "test":
            n += 1
    n += sum(1 for ut in project.unit_tests if ut.model == node.name
             and ut.package_name == node.package_name)
    return n


def rank(project: Project, cp: CriticalPolicy, select_expr: Any = None) -> list[Suggestion]:
    """Own models ranked by downstream reach (highest first)."""
    reach = reach_all(project)
    models = own_models(project)
    if select_expr:
        from dbt_bulwark.project.selector import select

        chosen = {r.unique_id for r in select(project, select_expr, resource_types=["model"])}
        models = [m for m in models if m.unique_id in chosen]
    out = []
    for node in models:
        r = reach.get(node.unique_id) or Reach(0, 0, [])
        tests = count_tests(project, node)
        marts = _in_marts(node)
        out.append(Suggestion(project, node, r, tests, marts, score_of(r, tests, marts),
                              all(t in node.tags for t in cp.tags)))
    out.sort(key=lambda s: (-s.score, -s.reach.downstream, s.node.name, str(s.node.version)))
    return out
