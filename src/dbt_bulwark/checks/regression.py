"""Regression verdicts: judge a change against its git base.

Every hook (through :func:`dbt_bulwark.runner.collect`) also evaluates the base
revision with the same loader and the same check, and compares:

* **Which base.** :func:`resolve_base`: ``--base REV`` by hand; ``PRE_COMMIT_FROM_REF``
  at pre-push; the index's ``HEAD`` otherwise. Nothing is skipped silently: git missing,
  ``--base`` outside git, a from/to ref that does not exist are usage errors (exit 2).
  A dbt project inside a git submodule is compared inside the submodule's own history.
* **Existing vs new.** A finding's identity is (path, code, node, message), without
  line and column. Findings already present at the base are kept, labelled ``existing``;
  by default the exit code counts only the new ones (``--all-findings`` or policy
  ``fail_on_existing: true`` count both). The base's findings are cached by tree id,
  the check, the policy and the scope, so a repeated run does not evaluate it again.
* **Deletions.** Staged deletions and renames (``git diff --name-status -M``) are part
  of the change: the base's users of what was deleted are checked.
* **Higher confidence.** What held at the base and no longer holds is an error even
  where the check alone would only say "not checked": SQL that parsed and no longer
  parses (BLK130), a ref()/source() that resolved and no longer does (BLK110/BLK114),
  and a model, source or macro removed while something still uses it (BLK118, naming
  each user).
* **Unloadable files.** A properties file that no longer loads leaves the models it
  described "not checked", not "changed": the base comparison findings on them
  (BLK310, BLK312, BLK404...) are dropped and an info says why.
* **Coverage.** :func:`coverage` counts the models fully / partly / not checked.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbt_bulwark.findings import Finding, UsageError
from dbt_bulwark.project.fs import DBT_FILE_SUFFIXES, join

_VERSION = 3
_ZERO = frozenset("0")

# findings that say the base of a change is "changed" although the file just did not load
BASE_COMPARISON_CODES = frozenset({"BLK310", "BLK311", "BLK312", "BLK401", "BLK402", "BLK403",
                                   "BLK404", "BLK405", "BLK407", "BLK408", "BLK410", "BLK411"})
# info on a clean tree (dbt accepts it), a warning when this change introduces it
RAISED_WHEN_NEW = frozenset({"BLK037"})
LOAD_FAILURE_CODES = frozenset({"BLK001", "BLK002", "BLK003", "BLK004"})
# a node carrying one of these at the base was not analysed there
NOT_ANALYSED = frozenset({"BLK020", "BLK103", "BLK104", "BLK105", "BLK130", "BLK131",
                          "BLK199"})


@dataclass
class Base:
    """Where the base revision of a change is."""

    top: Path                    # git top level holding the workspace
    rev: str                     # the base revision
    prefix: str                  # the workspace root inside ``top``
    label: str
    stage: str                   # pre-commit | pre-push | manual | ci
    to_rev: str | None = None    # pre-push: the pushed revision
    count_existing: bool = False
    trees: dict[str, Any] = field(default_factory=dict, repr=False)
    # project root -> its BaseRun (shared by every check of one run that uses this base)
    runs: dict[str, Any] = field(default_factory=dict, repr=False)

    def close(self) -> None:
        """Stop the git readers (a later read restarts them)."""
        for tree in self.trees.values():
            inner = getattr(tree, "tree", tree)
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        self.trees.clear()


DBT_FILES = DBT_FILE_SUFFIXES
# the commands that run as pre-commit hooks with `always_run: true`
HOOK_COMMANDS = frozenset({"check", "fast-compile", "check-contracts", "check-critical-tags",
                           "check-schema-diff"})


def no_dbt_change(args: Any) -> bool:
    """pre-commit ran the hook with no file: True when git says no dbt file changed.

    One ``git diff`` before anything is loaded, so a commit that touches no dbt file
    costs a hook almost nothing.
    """
    from dbt_bulwark.project import gitfs

    env = os.environ
    from_ref = env.get("PRE_COMMIT_FROM_REF") or env.get("PRE_COMMIT_SOURCE")
    to_ref = env.get("PRE_COMMIT_TO_REF") or env.get("PRE_COMMIT_ORIGIN") or "HEAD"
    if getattr(args, "base_check", True) is False or getattr(args, "base", None):
        return False
    if from_ref:
        if set(from_ref) == {"0"}:
            return False
        rng = [from_ref, to_ref]
    else:
        rng = ["--cached", "HEAD"]
    cwd = getattr(args, "repo_root", None) or os.getcwd()
    try:
        proc = gitfs.run_git(cwd, "diff", "--name-only", "-z", *rng, "--", timeout=30)
    except gitfs.GitError:
        return False   # the base resolution reports what is wrong
    names = gitfs._split_z(proc.stdout)
    return not any(is_dbt_file(n) for n in names)


def is_dbt_file(path: str) -> bool:
    return path.endswith(DBT_FILES) and not path.endswith("README.md")



# ----------------------------------------------------------------------------- which base


def _git_dir_above(path: Path) -> bool:
    return any((p / ".git").exists() for p in [path, *path.parents])


def _zero(rev: str | None) -> bool:
    return not rev or set(rev) == _ZERO


def resolve_base(ws: Any, args: Any, env: Mapping[str, str] = os.environ) -> Base | None:
    """The base of this run; None when there is none (``--no-base``, no commits, not git).

    Raises :class:`UsageError` instead of skipping silently when a base is expected
    but cannot be read.
    """
    if getattr(args, "base_check", True) is False:
        return None
    from dbt_bulwark.project import gitfs

    explicit = getattr(args, "base", None)
    from_ref = env.get("PRE_COMMIT_FROM_REF") or env.get("PRE_COMMIT_SOURCE")
    to_ref = env.get("PRE_COMMIT_TO_REF") or env.get("PRE_COMMIT_ORIGIN")
    if shutil.which("git") is None:
        if explicit or from_ref or _git_dir_above(Path(ws.repo_root)):
            raise UsageError("git is not installed or not on PATH: cannot read the base "
                             "revision to compare with (install git, or pass --no-base)")
        return None
    loc = ws.git_location()
    if loc is None:
        if explicit:
            raise UsageError(f"--base {explicit}: {ws.repo_root} is not inside a git "
                             "repository (drop --base, or pass --no-base)")
        if from_ref:
            raise UsageError(f"PRE_COMMIT_FROM_REF is set but {ws.repo_root} is not inside a "
                             "git repository")
        return None
    top, prefix = loc
    if explicit:
        if not gitfs.rev_exists(top, explicit):
            raise UsageError(f"--base revision {explicit!r} does not exist in {top}")
        return Base(top, explicit, prefix, explicit, "manual")
    if from_ref:
        to = None if _zero(to_ref) else to_ref
        if to is not None and not gitfs.rev_exists(top, to):
            raise UsageError(f"PRE_COMMIT_TO_REF names {to!r}, which is not a commit in {top}")
        if not _zero(from_ref):
            if not gitfs.rev_exists(top, from_ref):
                raise UsageError(
                    f"PRE_COMMIT_FROM_REF names {from_ref!r}, which is not a commit in {top} "
                    "(fetch it first, or pass --no-base)")
            return Base(top, from_ref, prefix, f"{from_ref[:10]} (pushed range)", "pre-push",
                        to)
        # a new branch: the merge base of what is pushed with the main branch
        head = to or "HEAD"
        branch = gitfs.default_branch(top)
        mb = gitfs.merge_base(top, head, branch) if branch and gitfs.rev_exists(top, head) \
            else None
        if mb is None:
            return None
        return Base(top, mb, prefix, f"merge base with {branch} ({mb[:10]})", "pre-push", to)
    if not gitfs.has_commits(top):
        return None
    stage = "pre-commit" if env.get("PRE_COMMIT") else "manual"
    return Base(top, "HEAD", prefix, "HEAD", stage)


# ----------------------------------------------------------------------------- what changed


def name_status(base: Base) -> list[tuple[str, str, str]]:
    """(status letter, old path, new path) of each change since the base, workspace-relative.

    pre-commit: the index against HEAD; pre-push: the pushed range; by hand: the
    working tree against the base. Renames are detected (``-M``).
    """
    from dbt_bulwark.project import gitfs

    args = ["diff", "--name-status", "-M", "-z", "--no-ext-diff"]
    if base.stage == "pre-commit":
        args += ["--cached", base.rev]
    elif base.stage == "pre-push":
        args += [base.rev, base.to_rev or "HEAD"]
    else:
        args += [base.rev]
    proc = gitfs.run_git(base.top, *args, "--")
    parts = [gitfs._decode(p) for p in proc.stdout.split(b"\0")]
    out: list[tuple[str, str, str]] = []
    i = 0
    cut = len(base.prefix) + 1 if base.prefix else 0
    while i < len(parts):
        status = parts[i]
        if not status:
            i += 1
            continue
        if status[0] in "RC" and i + 2 < len(parts):
            old, new = parts[i + 1], parts[i + 2]
            i += 3
        elif i + 1 < len(parts):
            old = new = parts[i + 1]
            i += 2
        else:
            break
        if base.prefix:
            if not (old.startswith(base.prefix + "/") or new.startswith(base.prefix + "/")):
                continue
            old, new = old[cut:], new[cut:]
        out.append((status[0], old, new))
    return out


def removed_paths(changes: Iterable[tuple[str, str, str]]) -> list[str]:
    """Paths that exist at the base and not after the change (deletions, rename sources)."""
    return sorted({old for st, old, _new in changes if st in "DR"})


def staged_files(base: Base) -> list[str]:
    """Every path the change touches (both sides of a rename)."""
    out: set[str] = set()
    for st, old, new in name_status(base):
        out.add(new)
        if st in "DR":
            out.add(old)
    return sorted(out)


# ----------------------------------------------------------------------------- base trees


class _Mount:
    """A submodule's tree shown at its place in the workspace (``mount/...``)."""

    def __init__(self, tree: Any, mount: str):
        self.tree = tree
        self.mount = mount
        self.root = tree.root
        self.tree_id = f"{tree.tree_id}@{mount}"

    def _inner(self, rel: str) -> str | None:
        rel = join(rel)
        if rel == self.mount:
            return ""
        if rel.startswith(self.mount + "/"):
            return rel[len(self.mount) + 1:]
        return None

    def read_bytes(self, rel: str) -> bytes:
        inner = self._inner(rel)
        if inner is None:
            raise FileNotFoundError(rel)
        return bytes(self.tree.read_bytes(inner))

    def is_file(self, rel: str) -> bool:
        inner = self._inner(rel)
        return inner is not None and bool(self.tree.is_file(inner))

    def is_dir(self, rel: str) -> bool:
        inner = self._inner(rel)
        if inner is None:
            return self.mount.startswith(join(rel) + "/") or not rel
        return bool(self.tree.is_dir(inner))

    def listdir(self, rel: str) -> list[str]:
        inner = self._inner(rel)
        if inner is None:
            rel = join(rel)
            rest = self.mount[len(rel) + 1:] if rel else self.mount
            return [rest.split("/", 1)[0]] if self.is_dir(rel) else []
        return list(self.tree.listdir(inner))

    def walk(self, rel: str = "", skip_hidden: bool = True, skip_dirs: Any = None) -> list[str]:
        inner = self._inner(rel)
        if inner is None:
            if not self.is_dir(rel):
                return []
            inner = ""
        args = (inner, skip_hidden) if skip_dirs is None else (inner, skip_hidden, skip_dirs)
        return [join(self.mount, p) for p in self.tree.walk(*args)]


def _submodule_tree(ws: Any, base: Base, root: str) -> Any:
    """The base tree of a project that sits in a git submodule, or None when it does not."""
    from dbt_bulwark.project import gitfs

    proj_dir = Path(ws.repo_root) / root if root else Path(ws.repo_root)
    sub_top = gitfs.repo_root(proj_dir)
    if sub_top is None or sub_top.resolve() == Path(base.top).resolve():
        return None
    try:
        mount = sub_top.resolve().relative_to(Path(ws.repo_root).resolve()).as_posix()
        in_super = sub_top.resolve().relative_to(Path(base.top).resolve()).as_posix()
    except ValueError:
        return None
    if base.rev == "HEAD":
        # committing inside the submodule (or by hand against HEAD): its own HEAD
        if not gitfs.has_commits(sub_top):
            return False     # no commits in the submodule yet: everything is new
        sub_rev = "HEAD"
    else:
        # the submodule's commit the superproject recorded at the base revision
        proc = gitfs.run_git(base.top, "rev-parse", "--verify", "--quiet",
                          f"{base.rev}:{in_super}", ok=(0, 1, 128))
        sub_rev = proc.stdout.decode("ascii", "replace").strip() if proc.returncode == 0 \
            else ""
        if not sub_rev:
            return False     # the submodule did not exist at the base: everything is new
        if not gitfs.rev_exists(sub_top, sub_rev):
            raise UsageError(f"the base revision of submodule {mount} ({sub_rev[:12]}) is not "
                             f"in its history at {sub_top} (run `git submodule update`, or "
                             "pass --no-base)")
    return _Mount(gitfs.GitTree(sub_top, sub_rev, ""), mount)


def base_tree(ws: Any, base: Base, root: str) -> Any:
    """The base revision's files for project ``root`` (None: the project did not exist)."""
    key = root
    if key in base.trees:
        return base.trees[key]
    from dbt_bulwark.project.gitfs import GitTree

    shared = base.trees.get("\0ws")
    if shared is None:
        loc = ws.git_location()
        if loc is not None and loc[1] == base.prefix and Path(loc[0]) == Path(base.top):
            shared = ws.tree_at(base.rev)   # the workspace's reader of that revision
        else:
            shared = GitTree(base.top, base.rev, base.prefix)
        base.trees["\0ws"] = shared
    tree: Any = shared
    if not shared.is_file(join(root, "dbt_project.yml")):
        sub = _submodule_tree(ws, base, root)
        tree = sub if sub else None
    else:
        tree = base.trees.get("\0overlay")
        if tree is None:
            # unchanged files are read from disk (faster than one git read per blob)
            from dbt_bulwark.project.gitfs import BaseOverlay

            tree = BaseOverlay(shared, ws.fs, ws.changed_since(base.rev))
            base.trees["\0overlay"] = tree
    base.trees[key] = tree
    return tree


# ----------------------------------------------------------------------------- base facts


@dataclass
class Facts:
    """What the regression rules need to know of the base project (plain data: cached)."""

    nodes: dict[str, tuple[str, str, str, str, tuple[str, ...]]]   # uid -> (name, type,
    #                                                   repo_path, patch_path, depends_on)
    sources: dict[str, tuple[str, str, str, int]]   # uid -> (source, table, path, line)
    macros: dict[str, tuple[str, int]]              # root-package macro -> (path, line)
    refable: dict[str, str]                         # name -> uid (models, seeds, snapshots)
    checksums: dict[str, str] = field(default_factory=dict)   # uid -> checksum of its file
    macros_hash: str = ""                           # of every macro the project loads

    def children(self, uids: set[str]) -> set[str]:
        return {uid for uid, n in self.nodes.items() if uids & set(n[4])}


def facts_of(project: Any) -> Facts:
    nodes = {uid: (n.name, n.resource_type, n.repo_path, n.patch_path or "",
                   tuple(n.depends_on)) for uid, n in project.nodes.items()}
    sources = {uid: (s.source_name, s.name, s.repo_path, int(s.line or 0))
               for uid, s in project.sources.items()}
    macros: dict[str, tuple[str, int]] = {}
    if project.macros is not None:
        for name, m in project.macros.by_package.get(project.name, {}).items():
            macros[name] = (getattr(m, "path", ""), int(getattr(m, "line", 0) or 0))
    refable = {n.name: uid for uid, n in project.nodes.items()
               if n.resource_type in ("model", "seed", "snapshot")
               and n.package_name == project.name}
    return Facts(nodes, sources, macros, refable,
                 {uid: n.checksum for uid, n in project.nodes.items()},
                 str(getattr(project, "macros_hash", "") or ""))


@dataclass
class BaseRun:
    """The base of one project for one hook run."""

    base: Base
    root: str
    tree: Any
    ws: Any
    _fs: Any = None
    _project: Any = None
    _facts: Facts | None = None

    @property
    def fs(self) -> Any:
        """The base's files as its project is read: with the installed packages."""
        if self._fs is None:
            self._fs = self.ws.with_installed(self.tree, self.root)
        return self._fs

    @property
    def tree_id(self) -> str:
        """The base's files, the installed packages included (their stamp)."""
        return str(getattr(self.fs, "tree_id", ""))

    def _vars_key(self) -> str:
        """--vars (the installed packages are in :attr:`tree_id`)."""
        return repr(sorted((str(k), repr(v)) for k, v in self.ws.cli_vars.items()))

    def project(self) -> Any:
        if self._project is None:
            self._project = self.ws.base_project(self.fs, self.root)
        return self._project

    def facts(self) -> Facts:
        if self._facts is None:
            cache = self.ws.cache
            key = ("regression-facts", _VERSION, self.tree_id, self.root, self._vars_key())
            hit = cache.get(key) if cache is not None else None
            if isinstance(hit, Facts):
                self._facts = hit
            else:
                self._facts = facts_of(self.project())
                if cache is not None:
                    cache.put(key, self._facts)
        return self._facts


def base_run(ctx: Any, root: str) -> BaseRun | None:
    base: Base | None = ctx.state.get("regression_base")
    if base is None:
        return None
    runs = base.runs
    if root not in runs:
        tree = base_tree(ctx.ws, base, root)
        runs[root] = BaseRun(base, root, tree, ctx.ws) if tree is not None else None
    return runs[root]


# ----------------------------------------------------------------------------- targets


def removed_targets(ctx: Any, root: str, project: Any) -> set[str] | None:
    """Head nodes to check because something they used was removed by the change.

    None: the whole project (a macro file was removed or renamed).
    """
    removed = [p for p in ctx.state.get("regression_removed", []) if _under(p, root)]
    if not removed:
        return set()
    run = base_run(ctx, root)
    if run is None:
        return set()
    facts = run.facts()
    gone: set[str] = set()
    for p in removed:
        if any(path == p for path, _line in facts.macros.values()):
            return None
        for uid, (_n, _t, repo_path, patch_path, _d) in facts.nodes.items():
            if repo_path == p or patch_path == p:
                gone.add(uid)
        for uid, (_s, _t2, path, _l) in facts.sources.items():
            if path == p:
                gone.add(uid)
    users = facts.children(gone) | gone
    return {uid for uid in users if uid in project.nodes}


def _under(path: str, root: str) -> bool:
    return not root or path == root or path.startswith(root + "/")


# ----------------------------------------------------------------------------- comparing


def identity(f: Finding) -> tuple[str, str, str, str]:
    return (f.path, f.code, f.node, f.message)


def _check_id(check: Any) -> str:
    return f"{getattr(check, '__module__', '')}.{getattr(check, '__qualname__', repr(check))}"


def base_findings(ctx: Any, check: Any, run: BaseRun, policy: Any, targets: set[str] | None,
                  load_filter: Any, head: tuple[Any, list[Finding]] | None = None
                  ) -> list[Finding]:
    """The findings ``check`` gives on the base revision, for the same scope (cached).

    ``head``: the head's project and the findings ``check`` gave on it, reused when the
    base's project is that very project (:meth:`Workspace.shows_work_tree`)."""
    from dbt_bulwark.runner import HookContext

    cache = ctx.ws.cache
    key = ("regression-findings", _VERSION, _check_id(check), run.tree_id, run.root,
           repr(policy.settings()) if hasattr(policy, "settings") else "",
           run._vars_key(), None if targets is None else tuple(sorted(targets)),
           tuple(sorted(ctx.files)), ctx.all_files)
    hit = cache.get(key) if cache is not None else None
    if isinstance(hit, list) and all(isinstance(f, Finding) for f in hit):
        return hit
    project = run.project()
    if head is not None and project is head[0] and \
            _check_id(check).startswith("dbt_bulwark.checks.fast_compile."):
        # the base shows the work tree's files (a clean --all-files run): what the check
        # found there it finds at the base; only what compares with the base is absent
        return [dataclasses.replace(f, extra={}) if f.extra else f for f in head[1]
                if f.code not in BASE_COMPARISON_CODES]
    bctx = HookContext(args=ctx.args, ws=run.ws, files=list(ctx.files),
                       all_files=ctx.all_files)
    bctx.state["critical_base"] = None      # the base is not compared with itself
    bctx.state["regression_is_base"] = True
    out = [f for f in project.findings if load_filter(f)]
    base_targets = None if targets is None else {t for t in targets if t in project.nodes}
    # a check never raises on user files (the base's included): anything it raises is a
    # bug, reported by the one error path (cli.py), never "every finding is new" in silence
    out.extend(check(bctx, project, policy, base_targets))
    out = [dataclasses.replace(f, extra={}) if f.extra else f for f in out]
    if cache is not None:
        cache.put(key, out)
    return out


def compare(ctx: Any, check: Any, root: str, project: Any, policy: Any,
            targets: set[str] | None, findings: list[Finding], load_filter: Any
            ) -> list[Finding]:
    """The head's findings judged against the base: existing ones labelled, raised ones raised."""
    run = base_run(ctx, root)
    if run is None:
        return findings
    if "schema_diff" in _check_id(check):    # a comparison with the base already
        return drop_unloaded(project, run.facts(), findings)
    before = base_findings(ctx, check, run, policy, targets, load_filter, (project, findings))
    facts = run.facts()
    findings = drop_unloaded(project, facts, findings)
    if _check_id(check).startswith("dbt_bulwark.checks.fast_compile."):
        findings = _raise(ctx, project, run, facts, before, targets, findings)
        from dbt_bulwark.checks.standins import judge

        findings = judge(ctx, project, run, policy, findings)
        findings = set_width_regressions(ctx, project, run, policy, targets, findings)
    seen = {identity(f) for f in before}
    return [dataclasses.replace(f, existing=True) if identity(f) in seen
            else dataclasses.replace(f, severity="warning") if f.code in RAISED_WHEN_NEW
            and f.severity == "info" else f
            for f in findings]


def drop_unloaded(project: Any, facts: Facts, findings: list[Finding]) -> list[Finding]:
    """Models described by a properties file that no longer loads are "not checked"."""
    broken = unloaded_files(project)
    if not broken:
        return findings
    described = {uid: n[3] for uid, n in facts.nodes.items() if n[3] in broken}
    keep: list[Finding] = []
    skipped: dict[str, list[str]] = {}
    for f in findings:
        if f.code in BASE_COMPARISON_CODES and f.node in described:
            skipped.setdefault(described[f.node], []).append(f.node)
            continue
        keep.append(f)
    for path, uids in sorted(skipped.items()):
        names = sorted({facts.nodes[u][0] for u in uids})
        keep.append(Finding(path, 0, 0, "BLK009",
                            f"not checked against the base: {', '.join(names)} (this file does "
                            "not load, so what it described cannot be compared)", "info",
                            hint="fix the file's syntax; the comparison runs again then"))
    return keep


def unloaded_files(project: Any) -> set[str]:
    return {f.path for f in project.findings
            if f.code in LOAD_FAILURE_CODES and f.severity == "error"
            and f.path.endswith((".yml", ".yaml"))}


# ----------------------------------------------------------------------------- raising


def _similar(a: str, b: str) -> bool:
    """A likely typo: an edit distance of at most max(2, a quarter of the shorter name)
    (bounded: the distance is not computed past the limit)."""
    from dbt_bulwark.spelling import edit_distance

    limit = max(2, min(len(a), len(b)) // 4)
    a, b = a.lower(), b.lower()
    return a == b or edit_distance(a, b, limit) <= limit


def _raise(ctx: Any, project: Any, run: BaseRun, facts: Facts, before: list[Finding],
           targets: set[str] | None, findings: list[Finding]) -> list[Finding]:
    from dbt_bulwark.checks.fast_compile import called_names, find_call
    from dbt_bulwark.project.model import RefCall

    base_codes: dict[str, set[str]] = {}
    for f in before:
        if f.node:
            base_codes.setdefault(f.node, set()).add(f.code)
    head_refable = {n.name for n in project.nodes.values()
                    if n.resource_type in ("model", "seed", "snapshot")}
    head_sources = {(s.source_name, s.name) for s in project.sources.values()}
    head_macros = set(project.macros.by_package.get(project.name, {})) \
        if project.macros is not None else set()
    unresolved: dict[str, list[Any]] = {}
    for uid, what, _reason in project.unresolved:
        unresolved.setdefault(uid, []).append(what)
    removed_models = {name: uid for name, uid in facts.refable.items()
                      if name not in head_refable}
    removed_sources = {(s, t): uid for uid, (s, t, _p, _l) in facts.sources.items()
                       if (s, t) not in head_sources}
    removed_macros = {m: v for m, v in facts.macros.items() if m not in head_macros}
    users: dict[str, list[str]] = {}     # base uid of a removed resource -> "file:line"
    out: list[Finding] = []
    near_memo: dict[str, bool] = {}

    def near_base_macro(name: str) -> bool:
        """A base project macro with a name similar to ``name`` (memo: one scan per name)."""
        hit = near_memo.get(name)
        if hit is None:
            hit = near_memo[name] = any(_similar(name, m) for m in facts.macros)
        return hit

    for f in findings:
        node = project.nodes.get(f.node) if f.node else None
        base_node = facts.nodes.get(f.node) if f.node else None
        if f.code == "BLK131" and f.severity != "error" and base_node is not None and \
                (targets is None or f.node in targets) and \
                not (base_codes.get(f.node, set()) & NOT_ANALYSED):
            detail = f.message.split("cannot read it (", 1)[-1].rstrip(")")
            out.append(dataclasses.replace(
                f, code="BLK130", severity="error",
                message=f"SQL syntax error: {detail} (the SQL parsed at the base revision "
                        f"{run.base.label})",
                hint="fix the SQL, or compare with the base version of the file"))
            continue
        if f.code == "BLK103" and f.severity != "error" and node is not None:
            raised = None
            for what in unresolved.get(f.node, []):
                if isinstance(what, RefCall):
                    if what.package and what.package != project.name:
                        continue
                    label = what.label()
                    if label not in f.message:
                        continue
                    if what.name in removed_models:
                        gone = removed_models[what.name]
                        raised = (f"{label}: '{what.name}' was deleted or renamed by this "
                                  f"change ({facts.nodes[gone][2]} at the base revision)",
                                  "BLK110", "restore it, or update this ref()")
                        users.setdefault(gone, []).append(f"{f.path}:{f.line}")
                        break
                    lost = [facts.nodes[d][0] for d in (base_node[4] if base_node else ())
                            if d in facts.nodes and d not in node.depends_on
                            and facts.nodes[d][1] in ("model", "seed", "snapshot")]
                    near = [n for n in lost if _similar(n, what.name)]
                    if near:
                        raised = (f"{label}: no model, seed or snapshot named '{what.name}' "
                                  f"(at the base revision this node used ref('{near[0]}'), "
                                  "which resolved)", "BLK110", f"did you mean '{near[0]}'?")
                        break
                else:
                    src, tbl = what
                    label = f"source('{src}', '{tbl}')"
                    if label not in f.message:
                        continue
                    if (src, tbl) in removed_sources:
                        gone = removed_sources[(src, tbl)]
                        raised = (f"{label}: removed by this change (declared in "
                                  f"{facts.sources[gone][2]} at the base revision)",
                                  "BLK114", "restore the source table, or update this source()")
                        users.setdefault(gone, []).append(f"{f.path}:{f.line}")
                        break
                    lost_src = [facts.sources[d][:2] for d in (base_node[4] if base_node else ())
                                if d in facts.sources and d not in node.depends_on]
                    near_src = [(s2, t2) for s2, t2 in lost_src
                                if (s2 == src and _similar(t2, tbl))
                                or (t2 == tbl and _similar(s2, src))]
                    if near_src:
                        s2, t2 = near_src[0]
                        raised = (f"{label}: not declared (at the base revision this node used "
                                  f"source('{s2}', '{t2}'), which resolved)",
                                  "BLK115" if s2 == src else "BLK114",
                                  f"did you mean source('{s2}', '{t2}')?")
                        break
            if raised is None and "not installed" in f.message and \
                    "ref(" not in f.message and "source(" not in f.message:
                calls = called_names(node.raw_code)
                hit = sorted(m for m in calls if m in removed_macros)
                if not hit:
                    # a typo: the node called a similar project macro at the base
                    unknown = sorted(c for c in calls if "." not in c and c not in head_macros
                                     and near_base_macro(c))
                    lost = _base_calls(run, f.node, facts) if unknown else []
                    lost = [m for m in lost if m not in calls]
                    unknown = [c for c in unknown if any(_similar(c, m) for m in lost)]
                    if unknown:
                        was = next(m for m in lost if _similar(unknown[0], m))
                        line, col = find_call(node.raw_code, unknown[0])
                        out.append(Finding(
                            f.path, line, col, "BLK102",
                            f"unknown macro '{unknown[0]}' (at the base revision this node "
                            f"called '{was}', which resolved)",
                            hint=f"did you mean '{was}'?", node=f.node))
                        continue
                if hit:
                    line, col = find_call(node.raw_code, hit[0])
                    users.setdefault("macro:" + hit[0], []).append(f"{f.path}:{line}")
                    out.append(Finding(
                        f.path, line, col, "BLK102",
                        f"macro '{hit[0]}' was removed by this change "
                        f"({removed_macros[hit[0]][0]} at the base revision) but is still "
                        "called here", hint="restore the macro, or stop calling it",
                        node=f.node))
                    continue
            if raised is not None:
                message, code, hint = raised
                out.append(dataclasses.replace(f, code=code, severity="error",
                                               message=message, hint=hint))
                continue
        out.append(f)
    # with packages installed the users are already errors (BLK110...): find them too
    for uid, whats in unresolved.items():
        res = project.nodes.get(uid)
        if res is None or (targets is not None and uid not in targets):
            continue
        for what in whats:
            if isinstance(what, RefCall) and what.name in removed_models and \
                    not (what.package and what.package != project.name):
                line, _col = find_call(res.raw_code, "ref", [what.name])
                site = f"{res.repo_path}:{line}"
                lst = users.setdefault(removed_models[what.name], [])
                if site not in lst:
                    lst.append(site)
            elif not isinstance(what, RefCall) and tuple(what) in removed_sources:
                line, _col = find_call(res.raw_code, "source", list(what))
                site = f"{res.repo_path}:{line}"
                lst = users.setdefault(removed_sources[tuple(what)], [])
                if site not in lst:
                    lst.append(site)
    for gone, sites in sorted(users.items()):
        if gone.startswith("macro:"):
            name = gone[6:]
            path, line = removed_macros[name]
            what = f"macro '{name}'"
        elif gone in facts.nodes:
            name, rtype, path, _pp, _d = facts.nodes[gone]
            line = 0
            what = f"{rtype} '{name}'"
        else:
            src, tbl, path, line = facts.sources[gone]
            what = f"source('{src}', '{tbl}')"
        out.append(Finding(path, line, 0, "BLK118",
                           f"{what} was removed or renamed by this change but is still used "
                           f"by: {', '.join(sorted(sites))}",
                           hint="restore it, or update each user in the same change",
                           node=gone if not gone.startswith("macro:") else ""))
    return out


# ----------------------------------------------------------------------------- set widths

_SET_WIDTH_NODES = ("model", "snapshot", "analysis", "test")
_MAX_ANCESTORS = 200     # relations compared for one unknown-width branch, at most


def set_width_regressions(ctx: Any, project: Any, run: BaseRun, policy: Any,
                          targets: set[str] | None, findings: list[Finding]) -> list[Finding]:
    """BLK132 for a changed node where one branch of a UNION / INTERSECT / EXCEPT changed
    its number of columns since the base while a branch of unknown width (``a.*``) did not:
    same SQL, reading the same relations, themselves unchanged. At the base every branch
    had the same width (the known ones say which), so that branch still has it."""
    fc = policy.fast_compile if policy is not None else None
    if fc is not None and not fc.check_sql:
        return findings
    facts = run.facts()
    macros_changed = bool(facts.macros_hash) and facts.macros_hash != project.macros_hash
    erroneous = {f.node for f in findings if f.node and f.severity == "error"}
    todo = [n for uid, n in sorted(project.nodes.items())
            if (targets is None or uid in targets) and uid in facts.nodes
            and uid not in erroneous and n.resource_type in _SET_WIDTH_NODES
            and n.language == "sql" and n.package_name == project.name
            and (macros_changed or facts.checksums.get(uid) != n.checksum)]
    if not todo:
        return findings
    from dbt_bulwark.sql.columns import has_set_operation
    from dbt_bulwark.sql.compiler import compile_cached
    from dbt_bulwark.sql.schema import project_dialect

    dialect, how = project_dialect(project, (policy.dialect if policy is not None else None)
                                   or None)
    out = list(findings)
    seen: set[tuple[str, int, int]] = set()
    for node in todo:
        for incremental in ([False, True] if "is_incremental" in node.raw_code else [False]):
            head = compile_cached(project, node, is_incremental=incremental)
            if not head.trusted or head.warehouse_calls or not has_set_operation(head.sql or ""):
                continue
            try:
                found = _set_width_regression(run, project, node, head, incremental, dialect,
                                              how)
            except Exception as exc:  # noqa: BLE001 - an extra opinion: never a crash
                from dbt_bulwark.cache import log_exception

                log_exception(exc, f"set widths of {node.unique_id}", ctx.ws.repo_root)
                continue
            for offset, message in found:
                line, col = head.source_position(offset)
                if (node.unique_id, line, col) in seen:
                    continue
                seen.add((node.unique_id, line, col))
                out.append(Finding(
                    node.repo_path, line, col, "BLK132",
                    message + (" (is_incremental() branch)" if incremental else ""),
                    hint="restore the column in this branch, or change every branch the "
                         "same way", node=node.unique_id))
    return out


def _set_width_regression(run: BaseRun, project: Any, node: Any, head: Any, incremental: bool,
                          dialect: str, how: str) -> list[tuple[int, str]]:
    """(offset in the head's SQL, message) of each set operation of ``node`` that one
    branch's new width breaks (see :func:`set_width_regressions`)."""
    from dbt_bulwark.sql.columns import set_operations
    from dbt_bulwark.sql.compiler import compile_cached

    shape_head = set_operations(head.sql or "", dialect, texts=False)
    if shape_head is None or not any(_unknown_and_known(op) for op in shape_head.operations):
        return []
    base_project = run.project()
    base_node = base_project.nodes.get(node.unique_id)
    if base_node is None or base_node.language != "sql":
        return []
    base = compile_cached(base_project, base_node, is_incremental=incremental)
    if not base.trusted or base.warehouse_calls:
        return []
    ops_head, ops_base = set_operations(head.sql or "", dialect), \
        set_operations(base.sql or "", dialect)
    if ops_head is None or ops_base is None:
        return []
    if how == "guess":   # the widths must read the same in every common dialect
        for other in ("snowflake", "bigquery", "postgres"):
            h2, b2 = set_operations(head.sql or "", other, texts=False), \
                set_operations(base.sql or "", other, texts=False)
            if h2 is not None and b2 is not None and \
                    (_shape(h2), _shape(b2)) != (_shape(ops_head), _shape(ops_base)):
                return []
    by_key = {op.key: op for op in ops_base.operations}
    same = _Unchanged(run, project, base_project, head, base, ops_head, ops_base, dialect)
    found: list[tuple[int, str]] = []
    for op in ops_head.operations:
        was = by_key.get(op.key)
        if was is None or op.by_name or was.by_name or op.op != was.op or \
                len(op.branches) != len(was.branches) or not _unknown_and_known(op):
            continue
        now_w = {b.width for b in op.branches if b.width is not None}
        was_w = {b.width for b in was.branches if b.width is not None}
        if len(now_w) != 1 or len(was_w) != 1 or now_w == was_w:
            continue
        changed = [i for i, (b, a) in enumerate(zip(op.branches, was.branches, strict=True))
                   if b.width is not None and a.width is not None and b.width != a.width]
        kept = [i for i, (b, a) in enumerate(zip(op.branches, was.branches, strict=True))
                if b.width is None and a.width is None and b.text == a.text
                and same.reads(b.reads)]
        if not changed or not kept:
            continue
        i, k = changed[0], kept[0]
        found.append((op.branches[i].start or 0,
                      f"{op.op} branches no longer have the same number of columns: branch "
                      f"{i + 1} has {op.branches[i].width}, was {was.branches[i].width} at the "
                      f"base revision {run.base.label}, while branch {k + 1} "
                      f"({op.branches[k].items}, of a width bulwark cannot count) is unchanged"))
    return found


def _shape(ops: Any) -> list[tuple[Any, ...]]:
    """What the verdict reads of set operations: keys, kinds and widths (not the SQL text,
    which each dialect writes its own way)."""
    return [(op.key, op.op, op.by_name, tuple(b.width for b in op.branches))
            for op in ops.operations]


def _unknown_and_known(op: Any) -> bool:
    return not op.by_name and any(b.width is None for b in op.branches) and \
        any(b.width is not None for b in op.branches)


class _Unchanged:
    """Do the tables a branch reads have the same columns at the base and the head? CTEs of
    the same text reading unchanged tables; sources of the same properties; seeds of the
    same header; models and snapshots that compile to the same SQL, with unchanged parents.
    Anything else (a table outside the project, a table function) is not known unchanged."""

    def __init__(self, run: BaseRun, project: Any, base_project: Any, head: Any, base: Any,
                 ops_head: Any, ops_base: Any, dialect: str):
        self.run, self.project, self.base_project = run, project, base_project
        from dbt_bulwark.sql.columns import normalize_identifier

        # relation placeholders under the keys the SQL's table names have
        self.head = {normalize_identifier(k, dialect): v for k, v in head.relations.items()}
        self.base = {normalize_identifier(k, dialect): v for k, v in base.relations.items()}
        self.ctes_head, self.ctes_base = ops_head.ctes, ops_base.ctes
        self.memo: dict[str, bool] = {}
        self.budget = _MAX_ANCESTORS

    def reads(self, names: Iterable[str], seen: frozenset[str] = frozenset()) -> bool:
        for name in names:
            if name in seen:
                return False
            if name in self.ctes_head or name in self.ctes_base:
                now, was = self.ctes_head.get(name), self.ctes_base.get(name)
                if now is None or was is None or now != was or \
                        not self.reads(now[1], seen | {name}):
                    return False
                continue
            uid = self.head.get(name)
            if uid is None or self.base.get(name) != uid or not self.relation(uid):
                return False
        return True

    def relation(self, uid: str) -> bool:
        hit = self.memo.get(uid)
        if hit is None:
            self.memo[uid] = False      # (a cycle: not known unchanged)
            hit = self.memo[uid] = self._relation(uid)
        return hit

    def _relation(self, uid: str) -> bool:
        from dbt_bulwark.sql.compiler import compile_cached

        self.budget -= 1
        if self.budget < 0:
            return False
        if uid in self.project.sources:
            now, was = self.project.sources[uid], self.base_project.sources.get(uid)
            return was is not None and _source_entry(self.project, now) is not None and \
                _source_entry(self.project, now) == _source_entry(self.base_project, was) \
                and repr(now.config) == repr(was.config) and now.identifier == was.identifier
        now_n, was_n = self.project.nodes.get(uid), self.base_project.nodes.get(uid)
        if now_n is None or was_n is None or now_n.resource_type != was_n.resource_type:
            return False
        if now_n.resource_type == "seed":
            return bool(now_n.seed_columns) and now_n.seed_columns == was_n.seed_columns
        if now_n.resource_type not in ("model", "snapshot") or now_n.language != "sql" or \
                was_n.language != "sql":
            return False
        if now_n.resource_type == "snapshot" and repr(now_n.config) != repr(was_n.config):
            return False      # (hard_deletes: new_record adds a column)
        a, b = compile_cached(self.project, now_n), compile_cached(self.base_project, was_n)
        if not a.trusted or not b.trusted or a.warehouse_calls or a.sql != b.sql or \
                a.relations != b.relations:
            return False
        return all(self.relation(p) for p in now_n.depends_on)


def _source_entry(project: Any, source: Any) -> str | None:
    """The properties of ``source`` that can change the relation it names (its YAML
    entry and its table's, without columns, descriptions and tests), as text."""
    data = project.yaml_files.get(source.repo_path)
    if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
        return None
    for entry in data["sources"]:
        if not isinstance(entry, dict) or entry.get("name") != source.source_name:
            continue
        for table in entry.get("tables") or []:
            if isinstance(table, dict) and table.get("name") == source.name:
                outer = {k: v for k, v in entry.items() if k not in ("tables", "description")}
                inner = {k: v for k, v in table.items()
                         if k not in ("columns", "description", "data_tests", "tests")}
                return repr((sorted(outer.items(), key=repr), sorted(inner.items(), key=repr)))
    return None


def _base_calls(run: BaseRun, uid: str, facts: Facts) -> list[str]:
    """Project macros node ``uid`` called at the base (loads the base: a rare path)."""
    from dbt_bulwark.checks.fast_compile import called_names

    node = run.project().nodes.get(uid)
    if node is None or not node.raw_code:
        return []
    return sorted(m for m in called_names(node.raw_code) if m in facts.macros)


# ----------------------------------------------------------------------------- coverage

_REASONS = (
    ("BLK103", "package {pkg} not installed: run dbt deps"),
    ("BLK104", "uses warehouse calls or dbt built-ins"),
    ("BLK105", "does not render in compile mode"),
    ("BLK131", "SQL not analysable"),
    ("BLK020", "Jinja dbt cannot parse"),
    ("BLK213", "SQL columns not inferable"),
)
_NOT_CHECKED = frozenset({"BLK103", "BLK105", "BLK020"})
_PARTLY = frozenset({"BLK104", "BLK131", "BLK213", "BLK199"})


def _reason(f: Finding) -> str:
    for code, text in _REASONS:
        if f.code == code:
            if "{pkg}" in text:
                m = re.search(r"\(([\w, -]+)\); run dbt deps", f.message) or \
                    re.search(r"names package '([\w-]+)'", f.message) or \
                    re.search(r"package ([\w, -]+?) not installed \(", f.message)
                return text.format(pkg=m.group(1) if m else "(declared)")
            return text
    return f"{f.code}: not checked"


def coverage(project: Any, scope: set[str] | None, findings: Iterable[Finding]
             ) -> dict[str, Any]:
    """Models of ``project`` in ``scope`` (None: all) fully / partly / not checked."""
    models = [uid for uid, n in project.nodes.items()
              if n.resource_type == "model" and n.package_name == project.name
              and (scope is None or uid in scope)]
    state: dict[str, str] = {uid: "full" for uid in models}
    reasons: dict[str, int] = {}
    for f in findings:
        if f.node not in state or f.severity == "error":
            continue
        if f.code in _NOT_CHECKED:
            level = "none"
        elif f.code in _PARTLY or "not checked" in f.message:
            level = "partly"
        else:
            continue
        if state[f.node] == "none" or (state[f.node] == "partly" and level == "partly"):
            continue
        state[f.node] = level
        r = _reason(f)
        reasons[r] = reasons.get(r, 0) + 1
    counts = {"fully_checked": 0, "partly_checked": 0, "not_checked": 0}
    for v in state.values():
        counts[{"full": "fully_checked", "partly": "partly_checked",
                "none": "not_checked"}[v]] += 1
    return {"project": project.name, "root": project.root, "models": len(models), **counts,
            "reasons": dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))}


def coverage_line(cov: dict[str, Any]) -> str:
    text = (f"coverage of project '{cov['project']}': {cov['models']} model(s): "
            f"{cov['fully_checked']} fully checked, {cov['partly_checked']} partly checked, "
            f"{cov['not_checked']} not checked")
    if cov["reasons"]:
        top = list(cov["reasons"].items())[:3]
        text += " (" + "; ".join(f"{r}: {n}" for r, n in top) + ")"
    return text


def ci_base(plan: Any) -> Base | None:
    """The base `bulwark ci` / `bulwark check` chose (merge base, --base), as a :class:`Base`."""
    if getattr(plan.args, "base_check", True) is False or plan.base is None or \
            plan.git_top is None:
        return None
    shared = plan.state.get("regression_shared_base")
    if shared is not None:    # one base (git tree, overlay, loaded project) for every layer
        return shared
    loc = plan.ws.git_location()
    prefix = loc[1] if loc is not None else ""
    base = Base(Path(plan.git_top), plan.base, prefix, plan.base_label, "ci")
    # --all-findings; fail_on_existing is each project's own (runner.verdict)
    base.count_existing = bool(getattr(plan.args, "all_findings", False))
    plan.state["regression_shared_base"] = base
    return base
