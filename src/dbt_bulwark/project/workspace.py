"""The repository a command runs in: its root, its dbt projects, and what a change touches.

This is the one entry point commands use to get loaded projects:
:func:`open_workspace` finds the repository root (git top level, else the current
directory), discovers every ``dbt_project.yml`` (or takes ``--project-dir``), and
loads each with the parse cache. :meth:`Workspace.affected` maps changed files to
the projects and nodes they affect.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbt_bulwark.cache import ParseCache, open_cache
from dbt_bulwark.findings import UsageError
from dbt_bulwark.project.fs import DBT_FILE_SUFFIXES, SKIP_DIRS, FileSource, WorkTree, join
from dbt_bulwark.project.loader import (
    derive_project,
    discover_projects,
    load_project,
    project_for_path,
)
from dbt_bulwark.project.model import Node, Project


def find_repo_root(start: str | os.PathLike[str] | None = None) -> Path:
    from dbt_bulwark.project.gitfs import repo_root

    start_path = Path(start or os.getcwd()).resolve()
    top = repo_root(start_path)
    return top.resolve() if top is not None else start_path


def parse_vars(text: str | None) -> dict[str, Any]:
    """``--vars`` as dbt takes it: a YAML (or JSON) mapping."""
    if not text:
        return {}
    from dbt_bulwark.project import yamlio

    try:
        data = yamlio.load(text)
    except yamlio.YamlError as exc:
        raise UsageError(f"--vars is not valid YAML: {exc.message}") from None
    if not isinstance(data, dict):
        raise UsageError("--vars must be a YAML mapping, e.g. '{key: value}'")
    return dict(data)


@dataclass
class Workspace:
    repo_root: Path
    fs: FileSource
    project_roots: list[str]
    cli_vars: dict[str, Any] = field(default_factory=dict)
    cache: ParseCache | None = None
    analysis_cache: ParseCache | None = None
    _projects: dict[str, Project] = field(default_factory=dict)
    _git: Any = field(default=None, repr=False)
    _trees: dict[str, Any] = field(default_factory=dict, repr=False)
    _base_projects: dict[tuple[Any, ...], Project] = field(default_factory=dict, repr=False)
    _installed: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    _changed: dict[str, list[str]] = field(default_factory=dict, repr=False)
    _ignored: list[str] | None = field(default=None, repr=False)

    def project(self, root: str) -> Project:
        if root not in self._projects:
            project = load_project(self.fs, root, self.cli_vars, self.cache)
            project.cache = self.analysis_cache
            self._projects[root] = project
        return self._projects[root]

    def base_project(self, tree: Any, root: str) -> Project:
        """Project ``root`` loaded from ``tree`` (a git revision's files) with the packages
        installed on disk (:meth:`with_installed`), once per revision: the regression
        comparison, the critical-tags and the schema-diff checks of one run share it. Trees
        that show the same files (a :class:`~dbt_bulwark.project.gitfs.GitTree` and overlays
        over it) give the same project."""
        from dbt_bulwark.project.gitfs import tree_identity

        if self.shows_work_tree(tree):
            return self.project(root)   # the same files: the same project, loaded once
        fs = self.with_installed(tree, root)
        key = (tree_identity(fs), root)
        project = self._base_projects.get(key)
        if project is None:
            project = self._derived(tree, fs, root) or \
                load_project(fs, root, self.cli_vars, self.cache)
            project.cache = self.analysis_cache
            self._base_projects[key] = project
        return project

    def _derived(self, tree: Any, fs: Any, root: str) -> Project | None:
        """Project ``root`` at revision ``tree`` made from the work tree's (already loaded),
        when only the SQL of some of its nodes differs (:func:`derive_project`)."""
        head = self._projects.get(root)
        git = self._revision_of_work_tree(tree)
        if head is None or git is None:
            return None
        homes = [join(p.root) for p in head.packages.values() if p.root is not None]
        mine = [p for p in self.changed_since(git.rev) if _read_by_projects(p) and (
            p.rsplit("/", 1)[-1] in _SETTINGS_FILES or
            any(not home or p.startswith(home + "/") for home in homes))]
        if any(_read_by_projects(p) for p in self.ignored()):
            return None   # a git-ignored file the work tree's project reads
        return derive_project(head, fs, mine)

    def _revision_of_work_tree(self, tree: Any) -> Any:
        """The :class:`~dbt_bulwark.project.gitfs.GitTree` below ``tree`` when it is a
        revision of the work tree's own repository and folder, else None."""
        from dbt_bulwark.project.gitfs import git_tree_of

        git = git_tree_of(tree)
        loc = self.git_location()
        if git is None or loc is None or \
                Path(git.root).resolve() != Path(loc[0]).resolve() or git.prefix != join(loc[1]):
            return None
        return git

    def changed_since(self, rev: str) -> list[str]:
        """Paths (relative to the workspace root) that differ between git revision ``rev``
        and the work tree, untracked files included: one ``git diff`` per revision and run."""
        if rev not in self._changed:
            from dbt_bulwark.project import gitfs

            loc = self.git_location()
            if loc is None:
                raise UsageError(f"{self.repo_root} is not in a git repository")
            top, prefix = loc
            cut = len(prefix) + 1 if prefix else 0
            self._changed[rev] = [p[cut:] for p in gitfs.changed_files(top, rev)
                                  if not prefix or p.startswith(prefix + "/")]
        return self._changed[rev]

    def shows_work_tree(self, tree: Any) -> bool:
        """True when ``tree`` (a git revision's files, or an overlay of them) holds what the
        work tree holds: no file differs, outside the folders no project reads (hidden ones,
        ``target/``, ``dbt_packages/``... which a revision is read with from disk anyway:
        :meth:`with_installed`).

        Then the revision's project *is* the work tree's: a clean ``--all-files`` run (a fresh
        clone in CI) loads and checks the project once, not once more for its base.
        """
        git = self._revision_of_work_tree(tree)
        if git is None:
            return False
        # (the ignored files are listed only when nothing else differs: a clean tree)
        return not any(_read_by_projects(p) for p in self.changed_since(git.rev)) and \
            not any(_read_by_projects(p) for p in self.ignored())

    def ignored(self) -> list[str]:
        """The files git ignores that a project could read (a gitignored model is loaded
        from the work tree, never from a revision), relative to the workspace root; the
        profile (read from disk for every revision alike) aside."""
        if self._ignored is None:
            from dbt_bulwark.project import gitfs

            loc = self.git_location()
            found: list[str] = []
            if loc is not None:
                top, prefix = loc
                cut = len(prefix) + 1 if prefix else 0
                found = [p[cut:] for p in gitfs.ignored_files(top, DBT_FILE_SUFFIXES)
                         if (not prefix or p.startswith(prefix + "/"))
                         and p.rsplit("/", 1)[-1] != "profiles.yml"]
            self._ignored = found
        return self._ignored

    def installed(self, root: str) -> dict[str, str]:
        """The folders where project ``root`` has packages installed on disk
        (``packages-install-path``, else ``dbt_packages/``; the older ``dbt_modules/``), each
        with its :func:`~dbt_bulwark.project.gitfs.installed_stamp`."""
        if root in self._installed:
            return self._installed[root]
        from dbt_bulwark.project.gitfs import INSTALL_DIRS, installed_stamp

        found: dict[str, str] = {}
        if root in self.project_roots and isinstance(self.fs, WorkTree):
            yml = self.project(root).project_yml
            install = yml.get("packages-install-path") or yml.get("modules-path") or \
                "dbt_packages"
            names = [install] if isinstance(install, str) else []
            for name in [*names, *INSTALL_DIRS]:
                path = join(root, name)
                if path not in found and self.fs.is_dir(path):
                    found[path] = installed_stamp(self.fs, path)
        self._installed[root] = found
        return found

    def with_installed(self, tree: Any, root: str) -> Any:
        """``tree`` (a git revision's files) with the packages installed on disk for project
        ``root``: they are not in git (``dbt deps`` writes them), and a base revision read
        without them could not render any model that calls a package macro. Its ``tree_id``
        carries a stamp of them (:class:`~dbt_bulwark.project.gitfs.InstalledOverlay`): what
        is cached by it follows ``dbt deps``."""
        from dbt_bulwark.project.gitfs import with_installed

        installed = self.installed(root)
        return with_installed(tree, self.fs, installed) if installed else tree

    def projects(self) -> list[Project]:
        return [self.project(r) for r in self.project_roots]

    def project_root_for(self, repo_path: str) -> str | None:
        return project_for_path(self.project_roots, repo_path)

    def affected(self, files: Iterable[str]) -> dict[str, set[str]]:
        """Project root -> unique_ids of the nodes the changed files touch.

        A ``dbt_project.yml``, ``packages.yml`` or macro change affects the whole
        project (returned as the marker ``"*"``).
        """
        out: dict[str, set[str]] = {}
        for f in files:
            # callers pass repo-relative paths (already :meth:`relative`): reading them
            # against the working directory again breaks a run from a project subfolder
            rel = self.relative(f) if Path(f).is_absolute() else join(f)
            root = self.project_root_for(rel)
            if root is None:
                continue
            hit = out.setdefault(root, set())
            name = rel.rsplit("/", 1)[-1]
            project = self.project(root)
            if name in ("dbt_project.yml", "packages.yml", "dependencies.yml", "bulwark.yml"):
                hit.add("*")
                continue
            nodes = project.node_for_file(rel)
            hit.update(n.unique_id for n in nodes)
            if rel.endswith((".yml", ".yaml")):
                hit.update(n.unique_id for n in project.nodes.values() if n.patch_path == rel)
                for nodes_ in project.disabled.values():
                    hit.update(n.unique_id for n in nodes_ if n.patch_path == rel)
                hit.update(s.unique_id for s in project.sources.values() if s.repo_path == rel)
                hit.update(e.unique_id for e in project.exposures.values() if e.repo_path == rel)
            if project.macros is not None and rel.endswith(".sql") and not nodes:
                for macros in project.macros.by_package.values():
                    if any(m.path == rel for m in macros.values()):
                        hit.add("*")
                        break
        return out

    def relative(self, path: str) -> str:
        p = Path(path)
        if p.is_absolute():
            try:
                return p.resolve().relative_to(self.repo_root).as_posix()
            except ValueError:
                return p.as_posix()
        cwd = Path.cwd().resolve()
        try:
            return join((cwd / p).resolve().relative_to(self.repo_root).as_posix())
        except ValueError:
            return join(p.as_posix())

    def git_location(self) -> tuple[Path, str] | None:
        """(git top level, the workspace root's path inside it), or None outside git."""
        if self._git is None:
            from dbt_bulwark.project import gitfs

            top = gitfs.repo_root(self.repo_root)
            found: Any = ()
            if top is not None:
                try:
                    prefix = self.repo_root.resolve().relative_to(top.resolve()).as_posix()
                    found = (top, "" if prefix == "." else prefix)
                except ValueError:
                    found = ()
            self._git = found
        return self._git or None

    def tree_at(self, rev: str | None) -> Any:
        """The files of git revision ``rev`` rooted like :attr:`fs` (a
        :class:`~dbt_bulwark.project.gitfs.GitTree`, one per revision); None without git or rev."""
        loc = self.git_location()
        if not rev or loc is None:
            return None
        if rev not in self._trees:
            from dbt_bulwark.project.gitfs import GitTree

            self._trees[rev] = GitTree(loc[0], rev, loc[1])
        return self._trees[rev]

    def close(self) -> None:
        """Stop the git processes of the trees :meth:`tree_at` opened."""
        for tree in self._trees.values():
            tree.close()
        self._trees.clear()

    def save(self) -> None:
        for cache in (self.cache, self.analysis_cache):
            if cache is not None:
                cache.save()


# files a project's load reads from outside its own folder and its packages' (the policy)
_SETTINGS_FILES = frozenset({"bulwark.yml", "bulwark.yaml", "pyproject.toml", "dbt_project.yml",
                             "packages.yml", "dependencies.yml", "profiles.yml"})


def _read_by_projects(path: str) -> bool:
    """Whether a file at ``path`` can be an input of a project (the loader's walk skips
    hidden files and folders, and :data:`SKIP_DIRS`): dbt's ``.user.yml`` beside a profile
    in the project is not one."""
    *folders, name = path.split("/")
    return not name.startswith(".") and \
        not any(seg.startswith(".") or seg in SKIP_DIRS for seg in folders)


def open_workspace(project_dirs: list[str] | None = None, repo_root: str | None = None,
                   vars_text: str | None = None, use_cache: bool = True) -> Workspace:
    root = Path(repo_root).resolve() if repo_root else find_repo_root()
    fs = WorkTree(root)
    if project_dirs:
        roots = []
        for d in project_dirs:
            p = Path(d)
            p = (Path.cwd() / p).resolve() if not p.is_absolute() else p.resolve()
            if not (p / "dbt_project.yml").is_file():
                raise UsageError(f"no dbt_project.yml in {d}")
            try:
                rel = p.relative_to(root).as_posix()
            except ValueError:
                # a project outside the repository: read it on its own
                fs = WorkTree(p)
                root = p
                rel = ""
            roots.append("" if rel == "." else rel)
    else:
        roots = discover_projects(fs)
    ws = Workspace(repo_root=root, fs=fs, project_roots=roots, cli_vars=parse_vars(vars_text),
                   cache=open_cache(root, use_cache),
                   analysis_cache=open_cache(root, use_cache, "analysis"))
    return ws


def node_label(node: Node) -> str:
    return node.unique_id
