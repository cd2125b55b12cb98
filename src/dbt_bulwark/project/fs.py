"""Where project files are read from: the working tree, or a git revision.

Everything that loads a dbt project reads through a :class:`FileSource`, so the
same loader serves the working tree (the staged state during a pre-commit run)
and a base revision read with git plumbing (see :mod:`dbt_bulwark.project.gitfs`).
Paths are POSIX strings relative to the source's root ("" is the root).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import Protocol

# what a dbt project is made of (the hooks' `files:` in .pre-commit-hooks.yaml)
DBT_FILE_SUFFIXES = (".sql", ".yml", ".yaml", ".py", ".csv", ".md")
SKIP_DIRS = frozenset({"dbt_packages", "dbt_modules", "target", "logs", "node_modules",
                       "venv", ".venv", "__pycache__", "site-packages"})


class FileSource(Protocol):
    """Read-only view of a tree of files."""

    root: Path  # a real directory for the working tree; the repo root for git revisions

    def read_bytes(self, rel: str) -> bytes:
        """Contents of ``rel``; raises FileNotFoundError when it does not exist."""
        ...

    def is_file(self, rel: str) -> bool: ...

    def is_dir(self, rel: str) -> bool: ...

    def walk(self, rel: str = "", skip_hidden: bool = True,
             skip_dirs: frozenset[str] = SKIP_DIRS) -> list[str]:
        """Every file below ``rel`` (recursively), as paths relative to the root, sorted."""
        ...

    def listdir(self, rel: str) -> list[str]:
        """Names directly inside directory ``rel`` (files and directories); [] when absent."""
        ...


def join(*parts: str) -> str:
    """Join relative POSIX path parts, ignoring empty ones and normalising '.' segments."""
    out: list[str] = []
    for part in parts:
        for seg in part.replace("\\", "/").split("/"):
            if seg in ("", "."):
                continue
            if seg == "..":
                if out:
                    out.pop()
                continue
            out.append(seg)
    return "/".join(out)


# files a WorkTree keeps once read (its project and the base's unchanged files read them
# both); a write through atomic_write makes every WorkTree forget what it read
_READ_MEMO_BYTES = 256 * 2**20
_writes = 0


class WorkTree:
    """The files on disk below ``root``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        self._read: dict[str, bytes] = {}
        self._read_bytes = 0
        self._read_at = _writes

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else str(self.root)

    def read_bytes(self, rel: str) -> bytes:
        if self._read_at != _writes:
            self._read, self._read_bytes, self._read_at = {}, 0, _writes
        data = self._read.get(rel)
        if data is None:
            with open(self._abs(rel), "rb") as fh:
                data = fh.read()
            if self._read_bytes + len(data) <= _READ_MEMO_BYTES:
                self._read[rel] = data
                self._read_bytes += len(data)
        return data

    def is_file(self, rel: str) -> bool:
        return os.path.isfile(self._abs(rel))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self._abs(rel))

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self._abs(rel)))
        except OSError:
            return []

    def walk(self, rel: str = "", skip_hidden: bool = True,
             skip_dirs: frozenset[str] = SKIP_DIRS) -> list[str]:
        out: list[str] = []
        stack = [rel]
        while stack:
            cur = stack.pop()
            try:
                entries = list(os.scandir(self._abs(cur)))
            except OSError:
                continue
            for entry in entries:
                name = entry.name
                if skip_hidden and name.startswith("."):
                    continue
                child = f"{cur}/{name}" if cur else name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if name not in skip_dirs:
                            stack.append(child)
                    elif entry.is_file():
                        out.append(child)
                except OSError:
                    continue
        out.sort()
        return out


# --------------------------------------------------------------------------- safe writes


class UnsafeWrite(OSError):
    """A file a fix refuses to write, and why (``str(exc)`` is one line for the user)."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_writable(path: str | os.PathLike[str],
                   root: str | os.PathLike[str] | None = None) -> str:
    """The real file a write of ``path`` would replace, after checking it is safe to.

    Refused (:class:`UnsafeWrite`): a path, or a symlink's target, outside ``root``
    (when given); a dangling symlink; anything but a regular file; a read-only file
    (``os.replace`` needs only the directory to be writable, so it would replace it
    anyway); a file with several hard links (a replace would split them); a file
    owned by another user when its owner cannot be kept. A missing file is fine when
    its nearest existing parent directory is inside ``root``.
    """
    shown = os.fspath(path)
    real_root = os.path.realpath(root) if root is not None else None
    if os.path.islink(path):
        target = os.path.realpath(path)
        if real_root is not None and not _inside(target, real_root):
            raise UnsafeWrite(f"{shown} is a symlink to {os.readlink(path)}, outside the "
                              "repository; not written")
        if not os.path.exists(target):
            raise UnsafeWrite(f"{shown} is a dangling symlink (to {os.readlink(path)}); "
                              "not written")
    target = os.path.realpath(path)
    if real_root is not None and not _inside(target, real_root):
        raise UnsafeWrite(f"{shown} is outside the repository ({real_root}); not written")
    try:
        st = os.stat(target)
    except FileNotFoundError:
        parent = os.path.dirname(target)
        while parent and not os.path.isdir(parent):
            if os.path.lexists(parent):
                raise UnsafeWrite(f"{shown}: {parent} exists and is not a directory; "
                                  "not written") from None
            parent = os.path.dirname(parent)
        return target
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeWrite(f"{shown} is not a regular file; not written")
    if not st.st_mode & 0o222 or not os.access(target, os.W_OK):
        raise UnsafeWrite(f"{shown} is read-only; not written (make it writable to let "
                          "the fix change it)")
    if st.st_nlink > 1:
        raise UnsafeWrite(f"{shown} has {st.st_nlink} hard links; replacing it would split "
                          "them, so it is not written")
    euid = os.geteuid() if hasattr(os, "geteuid") else None
    if euid not in (None, 0) and st.st_uid != euid:
        raise UnsafeWrite(f"{shown} is owned by another user; not written (its owner "
                          "could not be kept)")
    return target


def atomic_write(path: str | os.PathLike[str], data: bytes,
                 root: str | os.PathLike[str] | None = None, *, check: bool = True,
                 durable: bool = True) -> str:
    """Write ``data`` to ``path`` atomically: a temporary file in the same directory,
    fsync, ``os.replace``; the file's mode, owner and group are kept. A new file gets
    ``0o666`` less the umask (the umask is never changed). Unsafe targets are refused
    (see :func:`check_writable`; ``check=False`` skips that, for private caches;
    ``durable=False`` skips the fsyncs, for data that can be rebuilt).
    Returns the real path written."""
    import secrets

    global _writes
    _writes += 1
    target = check_writable(path, root) if check else os.path.realpath(path)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(target)
    fd = -1
    tmp = ""
    for _ in range(100):
        tmp = os.path.join(parent, f".{name}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)  # the kernel applies the umask
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise UnsafeWrite(f"{os.fspath(path)}: cannot create a temporary file")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        if st is not None:
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            tst = os.stat(tmp)
            if (tst.st_uid, tst.st_gid) != (st.st_uid, st.st_gid) and hasattr(os, "chown"):
                try:
                    os.chown(tmp, st.st_uid, st.st_gid)
                except OSError:
                    raise UnsafeWrite(f"{os.fspath(path)}: its owner/group cannot be kept; "
                                      "not written") from None
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable and hasattr(os, "O_DIRECTORY"):
        with contextlib.suppress(OSError):
            dfd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    return target
