"""Read a git revision as a :class:`~dbt_bulwark.project.fs.FileSource`, plus small git helpers.

:class:`GitTree` lists the tree of a revision once (``git ls-tree -r -z``) and
reads blobs lazily through one long-lived ``git cat-file --batch`` process, so a
whole dbt project at the base revision loads without a checkout or temp files.

The helpers (:func:`repo_root`, :func:`resolve_base`, :func:`changed_files`, ...)
shell out to ``git -C <dir>``; nothing here imports more than the stdlib.
Every git failure surfaces as :class:`GitError` (a :class:`UsageError`, so the CLI
prints one line and exits 2) rather than a traceback.

Symbolic links in a revision are resolved *inside the tree*: reading
``models/x.sql -> ../shared/x.sql`` returns the target's bytes, and ``is_file`` /
``is_dir`` / ``listdir`` follow links like ``os.path`` does on disk. A link that
is absolute, dangling or escapes the tree's root behaves as a missing path.
:meth:`GitTree.walk` matches :meth:`WorkTree.walk`: links that resolve to files are
listed, links to directories are not descended into. Submodules (gitlinks) are
ignored entirely: they are neither files nor directories.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from dbt_bulwark.cache import content_hash
from dbt_bulwark.findings import UsageError
from dbt_bulwark.project.fs import SKIP_DIRS, join

__all__ = [
    "GitError", "GitTree", "BaseOverlay", "InstalledOverlay", "with_installed", "installed_stamp",
    "tree_identity", "git_tree_of", "repo_root", "rev_exists", "run_git", "has_commits", "resolve_base",
    "default_branch", "merge_base", "changed_files",
]

_ZERO_SHA = frozenset("0")
_MAX_LINK_HOPS = 40
# where `dbt deps` installs packages (packages-install-path, and the older modules-path)
INSTALL_DIRS = ("dbt_packages", "dbt_modules")
_MODE_LINK = "120000"
_MODE_GITLINK = "160000"


class GitError(UsageError):
    """A git command failed (bad revision, not a repository, git missing...)."""


# ----------------------------------------------------------------------------- helpers


def _decode(raw: bytes) -> str:
    # Git paths are bytes; on POSIX this round-trips with os.fsencode.
    return raw.decode("utf-8", "surrogateescape")


def run_git(cwd: str | os.PathLike[str], *args: str, ok: tuple[int, ...] = (0,),
            timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
    """``git -C cwd args``, the one way bulwark runs git (output as bytes); raises
    GitError unless the exit code is in ``ok`` (git missing or too slow: GitError too)."""
    cmd = ["git", "-C", os.fspath(cwd), *args]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                              timeout=timeout)
    except FileNotFoundError as exc:
        raise GitError("git is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"`git {' '.join(args[:3])}` timed out in {os.fspath(cwd)}") from exc
    except OSError as exc:
        raise GitError(f"cannot run git in {os.fspath(cwd)}: {exc}") from exc
    if proc.returncode not in ok:
        msg = _decode(proc.stderr).strip().splitlines()
        detail = msg[-1] if msg else f"exit code {proc.returncode}"
        raise GitError(f"`git {' '.join(args[:3])}` failed in {os.fspath(cwd)}: {detail}")
    return proc


def _check_rev(rev: str) -> None:
    if not rev or rev.startswith("-") or "\n" in rev or "\0" in rev:
        raise GitError(f"invalid git revision {rev!r}")


def _split_z(raw: bytes) -> list[str]:
    return [_decode(p) for p in raw.split(b"\0") if p]


# What `git rev-parse` answered during one command (:func:`one_run`): the work tree's top
# level and the revisions do not change while bulwark runs (it never writes to git).
_RUN_MEMO: dict[tuple[str, ...], Any] | None = None


@contextlib.contextmanager
def one_run() -> Iterator[None]:
    """Within: each ``rev-parse`` question (top level of a directory, a revision's id) is
    asked of git once."""
    global _RUN_MEMO
    outer, _RUN_MEMO = _RUN_MEMO, {}
    try:
        yield
    finally:
        _RUN_MEMO = outer


def repo_root(path: str | os.PathLike[str]) -> Path | None:
    """The top-level directory of the work tree containing ``path``; None outside git."""
    if _RUN_MEMO is None:
        return _repo_root(path)
    key = ("top", os.path.abspath(path))
    if key not in _RUN_MEMO:
        _RUN_MEMO[key] = _repo_root(path)
    return _RUN_MEMO[key]


def _repo_root(path: str | os.PathLike[str]) -> Path | None:
    p = Path(path)
    if not p.is_dir():
        p = p.parent
    if not p.is_dir():
        return None
    try:
        proc = run_git(p, "rev-parse", "--show-toplevel", ok=(0, 128), timeout=10)
    except GitError:
        return None
    out = _decode(proc.stdout).strip()
    if proc.returncode != 0 or not out:
        return None  # not a repository, or a bare one
    return Path(out)


def _top(repo: str | os.PathLike[str]) -> Path:
    top = repo_root(repo)
    if top is None:
        raise GitError(f"not inside a git work tree: {os.fspath(repo)}")
    return top


def _rev_parse(repo: str | os.PathLike[str], spec: str) -> str | None:
    if _RUN_MEMO is None:
        return _ask_rev_parse(repo, spec)
    key = ("rev", os.path.abspath(repo), spec)
    if key not in _RUN_MEMO:
        _RUN_MEMO[key] = _ask_rev_parse(repo, spec)
    return _RUN_MEMO[key]


def _ask_rev_parse(repo: str | os.PathLike[str], spec: str) -> str | None:
    proc = run_git(repo, "rev-parse", "--verify", "--quiet", spec, ok=(0, 1, 128))
    out = proc.stdout.strip()
    return out.decode("ascii") if proc.returncode == 0 and out else None


def rev_exists(repo: str | os.PathLike[str], rev: str) -> bool:
    """Whether ``rev`` names a commit in ``repo``."""
    try:
        _check_rev(rev)
    except GitError:
        return False
    return _rev_parse(repo, f"{rev}^{{commit}}") is not None


def has_commits(repo: str | os.PathLike[str]) -> bool:
    """False for a freshly initialised repository (HEAD is unborn)."""
    return rev_exists(repo, "HEAD")


def default_branch(repo: str | os.PathLike[str]) -> str | None:
    """``origin/HEAD``'s target if set, else the first of main, master, origin/main, origin/master."""
    proc = run_git(repo, "symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD", ok=(0, 1, 128))
    name = _decode(proc.stdout).strip()
    if proc.returncode == 0 and name and rev_exists(repo, name):
        return name
    for cand in ("main", "master", "origin/main", "origin/master"):
        if rev_exists(repo, cand):
            return cand
    return None


def merge_base(repo: str | os.PathLike[str], a: str, b: str) -> str | None:
    """The best common ancestor of ``a`` and ``b`` (a commit id); None when they share none.

    Raises GitError when either revision does not exist.
    """
    for rev in (a, b):
        if not rev_exists(repo, rev):
            raise GitError(f"revision {rev!r} does not exist in {os.fspath(repo)}")
    proc = run_git(repo, "merge-base", a, b, ok=(0, 1))
    out = proc.stdout.strip()
    return out.decode("ascii") if proc.returncode == 0 and out else None


def resolve_base(repo: str | os.PathLike[str], base: str | None,
                 env: Mapping[str, str] = os.environ) -> str | None:
    """The revision to compare the working tree against; None means "everything is new".

    1. An explicit ``base`` (``--base``) wins; it must exist.
    2. pre-commit's pre-push variables ``PRE_COMMIT_FROM_REF`` / ``PRE_COMMIT_TO_REF``
       (older pre-commit: ``PRE_COMMIT_SOURCE`` / ``PRE_COMMIT_ORIGIN``) give the
       from-ref. When it is all zeros (a new branch), the merge base of the to-ref
       (default HEAD) with :func:`default_branch` is used; None when there is no such
       common ancestor. A from-ref or to-ref that is not a commit here is a GitError.
    3. ``HEAD`` when the repository has commits, else None.
    """
    if base:
        if not rev_exists(repo, base):
            raise GitError(f"base revision {base!r} does not exist in {os.fspath(repo)}")
        return base
    from_ref = env.get("PRE_COMMIT_FROM_REF") or env.get("PRE_COMMIT_SOURCE")
    to_ref = env.get("PRE_COMMIT_TO_REF") or env.get("PRE_COMMIT_ORIGIN")
    if from_ref:
        if to_ref and set(to_ref) != _ZERO_SHA and not rev_exists(repo, to_ref):
            raise GitError(f"PRE_COMMIT_TO_REF names {to_ref!r}, which is not a commit in "
                           f"{os.fspath(repo)}")
        if set(from_ref) != _ZERO_SHA:
            if not rev_exists(repo, from_ref):
                # never a silent fallback: the comparison would be against something else
                raise GitError(f"PRE_COMMIT_FROM_REF names {from_ref!r}, which is not a commit "
                               f"in {os.fspath(repo)}")
            return from_ref
        to = to_ref if to_ref and set(to_ref) != _ZERO_SHA else "HEAD"
        if not rev_exists(repo, to):
            return None
        branch = default_branch(repo)
        return merge_base(repo, to, branch) if branch else None
    return "HEAD" if has_commits(repo) else None


def changed_files(repo: str | os.PathLike[str], base: str | None,
                  staged_only: bool = False) -> list[str]:
    """Paths (relative to the repo root, sorted) that differ between ``base`` and now.

    "Now" is the working tree plus untracked, non-ignored files; with
    ``staged_only`` it is the index. Deleted paths and both sides of a rename are
    included. ``base=None`` (no commits yet) reports every tracked file, plus the
    untracked ones unless ``staged_only``.
    """
    top = _top(repo)
    out: set[str] = set()
    if base is None:
        out.update(_split_z(run_git(top, "ls-files", "-z", "--full-name").stdout))
    else:
        _check_rev(base)
        if not rev_exists(top, base):
            raise GitError(f"base revision {base!r} does not exist in {top}")
        args = ["diff", "--name-only", "-z", "--no-renames", "--no-ext-diff"]
        if staged_only:
            args.append("--cached")
        out.update(_split_z(run_git(top, *args, base, "--").stdout))
    if not staged_only:
        out.update(_split_z(run_git(top, "ls-files", "--others", "--exclude-standard", "-z",
                                 "--full-name").stdout))
    return sorted(out)


def ignored_files(repo: str | os.PathLike[str], suffixes: Iterable[str]) -> list[str]:
    """Paths (relative to the repo root) of the files named ``*<suffix>`` that git ignores
    in the work tree."""
    top = _top(repo)
    return sorted(_split_z(run_git(top, "ls-files", "-z", "--others", "--ignored",
                                   "--exclude-standard", "--full-name", "--",
                                   *(f"*{x}" for x in suffixes)).stdout))


# ----------------------------------------------------------------------------- blobs


class _CatFile:
    """One ``git cat-file --batch`` process; requests are serialised by a lock."""

    def __init__(self, top: Path):
        self.top = top
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = os.getpid()   # the process whose pipes self.proc holds
        self.lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        try:
            proc = subprocess.Popen(["git", "-C", str(self.top), "cat-file", "--batch"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise GitError(f"cannot start git cat-file in {self.top}: {exc}") from exc
        self.proc = proc
        return proc

    def read(self, oid: str, what: str) -> bytes:
        if self.pid != os.getpid():
            # a forked child (:mod:`dbt_bulwark.parallel`): the inherited pipes are the
            # parent's, which reads them too; this process starts its own git
            self.proc, self.pid, self.lock = None, os.getpid(), threading.Lock()
        with self.lock:
            proc = self.proc or self._start()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(oid.encode("ascii") + b"\n")
                proc.stdin.flush()
                header = proc.stdout.readline()
                parts = header.split()
                if len(parts) == 3:
                    size = int(parts[2])
                    data = proc.stdout.read(size)
                    if len(data) == size and proc.stdout.read(1) == b"\n":
                        return data
                elif len(parts) == 2 and parts[1] == b"missing":
                    missing = True
                else:
                    missing = False
            except (OSError, ValueError):
                missing = False
            else:
                if missing:
                    # a partial or shallow clone: that one file cannot be read (an OSError,
                    # like an unreadable file on disk); the rest of the tree still can
                    raise OSError(f"object {oid} for {what} is missing from {self.top}")
            self.close()  # the protocol is out of step: restart on the next read
            raise GitError(f"git cat-file failed while reading {what} in {self.top}")

    def close(self) -> None:
        """Stop the process (closed explicitly by its owner: :meth:`GitTree.close`)."""
        proc, self.proc = self.proc, None
        if proc is not None and self.pid == os.getpid():   # (a forked child's is the parent's)
            _stop(proc)

    def __del__(self) -> None:
        # a tree nobody closed is a bug in its owner: say so (as an unclosed file does)
        # and do not leave the process behind
        if getattr(self, "proc", None) is not None:
            import warnings

            warnings.warn(f"unclosed git cat-file for {self.top}", ResourceWarning,
                          stacklevel=1, source=self)
            self.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=2)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    finally:
        if proc.stdout:
            proc.stdout.close()


# ----------------------------------------------------------------------------- tree


class GitTree:
    """The files of revision ``rev``, optionally rooted at subdirectory ``prefix``.

    ``root`` is the repository's top level; paths given to and returned by the
    methods are relative to ``prefix`` (itself relative to the top level). A
    prefix absent at ``rev`` gives an empty tree (``is_dir("")`` is then False).
    Use as a context manager or call :meth:`close` to stop the cat-file process (its
    owner closes it: the workspace for :meth:`Workspace.tree_at`, the base for its trees).
    """

    def __init__(self, repo: str | os.PathLike[str], rev: str = "HEAD", prefix: str = ""):
        top = _top(repo)
        self.root: Path = top
        self.rev = rev
        self.prefix = join(prefix)
        _check_rev(rev)
        tree = _rev_parse(top, f"{rev}^{{tree}}")
        if tree is None:
            raise GitError(f"revision {rev!r} does not exist in {top}")
        self.tree_id = tree
        # path -> blob id, for regular files and symlinks separately; dir -> child names
        self._files: dict[str, str] = {}
        self._links: dict[str, str] = {}
        self._dirs: dict[str, dict[str, None]] = {}
        self._link_targets: dict[str, str] = {}
        self._load()
        self._cat = _CatFile(top)

    # -- listing

    def _load(self) -> None:
        args = ["--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", self.tree_id]
        if self.prefix:
            args += ["--", self.prefix + "/"]
        proc = run_git(self.root, *args)
        strip = len(self.prefix) + 1 if self.prefix else 0
        want = self.prefix + "/" if self.prefix else ""
        files, links, dirs = self._files, self._links, self._dirs
        if not self.prefix:
            dirs[""] = {}
        for rec in proc.stdout.split(b"\0"):
            if not rec:
                continue
            meta, _, raw_path = rec.partition(b"\t")
            mode, _type, oid = meta.decode("ascii").split(" ")
            if mode == _MODE_GITLINK:
                continue
            path = _decode(raw_path)
            if want:
                if not path.startswith(want):
                    continue
                path = path[strip:]
            if mode == _MODE_LINK:
                links[path] = oid
            else:
                files[path] = oid
            # register the path in its parent, and new parents in theirs
            while True:
                cut = path.rfind("/")
                parent, name = (path[:cut], path[cut + 1:]) if cut >= 0 else ("", path)
                children = dirs.get(parent)
                if children is not None:
                    children[name] = None
                    break
                dirs[parent] = {name: None}
                if not parent:
                    break
                path = parent

    # -- symlinks

    def _link_target(self, path: str) -> str:
        target = self._link_targets.get(path)
        if target is None:
            target = _decode(self._cat.read(self._links[path], path))
            self._link_targets[path] = target
        return target

    def _resolve(self, rel: str) -> str | None:
        """``rel`` with symlinks followed, inside this tree; None if it escapes or loops."""
        key = join(rel)
        if not self._links or key in self._files or key in self._dirs:
            return key
        pending = key.split("/")
        pending.reverse()  # a stack: next segment last
        done: list[str] = []
        hops = 0
        while pending:
            seg = pending.pop()
            if seg in ("", "."):
                continue
            if seg == "..":
                if not done:
                    return None
                done.pop()
                continue
            cand = "/".join([*done, seg])
            if cand in self._links:
                hops += 1
                if hops > _MAX_LINK_HOPS:
                    return None
                target = self._link_target(cand)
                if target.startswith("/"):
                    return None
                pending.extend(reversed(target.split("/")))
            else:
                done.append(seg)
        return "/".join(done)

    # -- FileSource

    def read_bytes(self, rel: str) -> bytes:
        key = self._resolve(rel)
        oid = self._files.get(key) if key is not None else None
        if oid is None:
            raise FileNotFoundError(f"{join(self.prefix, rel)} does not exist at {self.rev}")
        return self._cat.read(oid, join(self.prefix, rel))

    def is_file(self, rel: str) -> bool:
        key = self._resolve(rel)
        return key is not None and key in self._files

    def is_dir(self, rel: str) -> bool:
        key = self._resolve(rel)
        return key is not None and key in self._dirs

    def listdir(self, rel: str) -> list[str]:
        key = self._resolve(rel)
        children = self._dirs.get(key) if key is not None else None
        return sorted(children) if children else []

    def walk(self, rel: str = "", skip_hidden: bool = True,
             skip_dirs: frozenset[str] = SKIP_DIRS) -> list[str]:
        start = join(rel)
        real = self._resolve(start)
        if real is None or real not in self._dirs:
            return []
        out: list[str] = []
        stack = [(start, real)]
        while stack:
            logical, cur = stack.pop()
            for name in self._dirs[cur]:
                if skip_hidden and name.startswith("."):
                    continue
                child_real = f"{cur}/{name}" if cur else name
                child = f"{logical}/{name}" if logical else name
                if child_real in self._dirs:
                    if name not in skip_dirs:
                        stack.append((child, child_real))
                elif child_real in self._files:
                    out.append(child)
                elif child_real in self._links and self.is_file(child_real):
                    out.append(child)  # like WorkTree: a link to a file is listed
        out.sort()
        return out

    # -- lifetime

    def close(self) -> None:
        """Stop the ``git cat-file`` process (reads after this restart it)."""
        self._cat.close()

    def __enter__(self) -> GitTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f", prefix={self.prefix!r}" if self.prefix else ""
        return f"GitTree({str(self.root)!r}, rev={self.rev!r}{where})"


class BaseOverlay:
    """The base revision as a FileSource: listing from git, unchanged files from disk.

    Reading 2,000 blobs through ``git cat-file`` costs more than reading them from the work
    tree; only the files that differ between the base and the work tree
    (:func:`dbt_bulwark.project.gitfs.changed_files`) are read from git. Valid only when the head
    is the work tree.
    """

    def __init__(self, tree: Any, work: Any, changed: Iterable[str]):
        self.tree = tree
        self.work = work
        self.root = tree.root
        self.tree_id = str(getattr(tree, "tree_id", ""))   # the files of ``tree``
        self.changed = set(changed)

    def read_bytes(self, rel: str) -> bytes:
        if rel in self.changed or not self.tree.is_file(rel):
            return bytes(self.tree.read_bytes(rel))
        try:
            return bytes(self.work.read_bytes(rel))
        except OSError:
            return bytes(self.tree.read_bytes(rel))

    def is_file(self, rel: str) -> bool:
        return bool(self.tree.is_file(rel))

    def is_dir(self, rel: str) -> bool:
        return bool(self.tree.is_dir(rel))

    def walk(self, rel: str = "", skip_hidden: bool = True, skip_dirs: Any = None) -> list[str]:
        if skip_dirs is None:
            return list(self.tree.walk(rel, skip_hidden))
        return list(self.tree.walk(rel, skip_hidden, skip_dirs))

    def listdir(self, rel: str) -> list[str]:
        return list(self.tree.listdir(rel))


# ----------------------------------------------------------------------------- installed packages


def installed_stamp(work: Any, folder: str) -> str:
    """A stamp of the packages installed in ``folder`` of ``work`` (the working tree): the
    path, size and modification time of every file the loader may read in each package (a
    ``local:`` package that `dbt deps` installs as a symlink included)."""
    parts: list[str] = []
    for name in work.listdir(folder):
        rel = join(folder, name)
        files = work.walk(rel) if work.is_dir(rel) else [rel]
        for path in files:
            try:
                st = os.stat(os.path.join(work.root, path))
            except OSError:
                continue
            parts.append(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n")
    return content_hash("".join(parts))


class InstalledOverlay:
    """A revision's files plus folders of installed packages read from the working tree.

    `dbt deps` installs packages (``dbt_packages/``) in the working tree, never in a
    commit, and a revision is built against the same installed packages as the work tree:
    a base read from git alone could not render a model that calls a package macro. The
    overlay's :attr:`tree_id` is the revision's plus a stamp of what is installed
    (:func:`installed_stamp`), so caches keyed by it follow `dbt deps`. Made by
    :func:`with_installed`.
    """

    def __init__(self, tree: Any, work: Any, installed: Mapping[str, str]):
        self.tree = tree
        self.work = work
        self.root = tree.root
        self.installed = sorted(installed)      # folders, relative to the root
        self.stamp = content_hash("".join(f"{d}\0{installed[d]}\n"
                                          for d in self.installed))[:16]
        self.tree_id = f"{getattr(tree, 'tree_id', '')}+pkgs:{self.stamp}"

    def _inside(self, rel: str) -> bool:
        rel = join(rel)
        return any(rel == d or rel.startswith(d + "/") for d in self.installed)

    def _above(self, rel: str) -> list[str]:
        """The installed folders below directory ``rel`` (not inside one)."""
        rel = join(rel)
        return [d for d in self.installed if not rel or d.startswith(rel + "/")]

    def read_bytes(self, rel: str) -> bytes:
        return bytes(self.work.read_bytes(rel) if self._inside(rel) else self.tree.read_bytes(rel))

    def is_file(self, rel: str) -> bool:
        return bool(self.work.is_file(rel) if self._inside(rel) else self.tree.is_file(rel))

    def is_dir(self, rel: str) -> bool:
        if self._inside(rel):
            return bool(self.work.is_dir(rel))
        return bool(self.tree.is_dir(rel)) or bool(self._above(rel))

    def listdir(self, rel: str) -> list[str]:
        if self._inside(rel):
            return list(self.work.listdir(rel))
        names = list(self.tree.listdir(rel))
        rel = join(rel)
        extra = {d[len(rel) + 1 if rel else 0:].split("/", 1)[0] for d in self._above(rel)}
        if extra - set(names):
            names = sorted(set(names) | extra)
        return names

    def walk(self, rel: str = "", skip_hidden: bool = True,
             skip_dirs: frozenset[str] = SKIP_DIRS) -> list[str]:
        if self._inside(rel):
            return list(self.work.walk(rel, skip_hidden, skip_dirs))
        out = list(self.tree.walk(rel, skip_hidden, skip_dirs))
        rel = join(rel)
        added = False
        for d in self._above(rel):
            below = d[len(rel) + 1:] if rel else d
            if not any(seg in skip_dirs or (skip_hidden and seg.startswith("."))
                       for seg in below.split("/")):
                out.extend(self.work.walk(d, skip_hidden, skip_dirs))
                added = True
        if added:
            out.sort()
        return out


def with_installed(tree: Any, work: Any, installed: Mapping[str, str]) -> Any:
    """``tree`` (a revision's files) with the folders of ``installed`` (folder -> its
    :func:`installed_stamp`) that it does not hold itself read from ``work``: an
    :class:`InstalledOverlay`, or ``tree`` itself when it holds them all (an overlay's tree
    does, so this is idempotent)."""
    missing = {d: s for d, s in installed.items() if not tree.is_dir(d)}
    return InstalledOverlay(tree, work, missing) if missing else tree


def git_tree_of(tree: Any) -> GitTree | None:
    """The :class:`GitTree` below ``tree``'s overlays (None: it is not a git tree's)."""
    while isinstance(tree, (InstalledOverlay, BaseOverlay)):
        tree = tree.tree
    return tree if isinstance(tree, GitTree) else None


def tree_identity(tree: Any) -> tuple[Any, ...]:
    """What makes two file trees of a git revision show the same files: the git tree, and
    the installed packages an :class:`InstalledOverlay` adds (a :class:`BaseOverlay` reads
    unchanged files from disk, so it shows its tree's files)."""
    stamps: list[str] = []
    inner = tree
    while isinstance(inner, (InstalledOverlay, BaseOverlay)):
        if isinstance(inner, InstalledOverlay):
            stamps.append(inner.stamp)
        inner = inner.tree
    if not isinstance(inner, GitTree):
        return ("object", id(inner), tuple(sorted(stamps)))
    return ("git", str(Path(inner.root).resolve()), inner.tree_id, inner.prefix,
            tuple(sorted(stamps)))
