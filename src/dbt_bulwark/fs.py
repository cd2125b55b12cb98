"""Where project files are read from: the working tree, or a git revision.

Everything that loads a dbt project reads through a :class:`FileSource`, so the
same loader serves the working tree (the staged state during a pre-commit run)
and a base revision read with git plumbing (see :mod:`dbt_bulwark.gitfs`).
Paths are POSIX strings relative to the source's root ("" is the root).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

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


class WorkTree:
    """The files on disk below ``root``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else str(self.root)

    def read_bytes(self, rel: str) -> bytes:
        with open(self._abs(rel), "rb") as fh:
            return fh.read()

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
