"""A content-hash parse cache, so a second run on an unchanged tree does not re-parse.

Keys are tuples such as ``("yaml", sha1-of-text)``; values are whatever the loader
stored (plain data that pickles). Each cache is one file under
``<repo>/.bulwark-cache/`` (which ignores itself via its own ``.gitignore``), named
after a stamp of the code so that another version never reads it.
Entries not used by a run are dropped when the file grows past ``MAX_ENTRIES``.
A corrupt or unreadable cache is ignored, never an error.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from pathlib import Path
from typing import Any

from dbt_bulwark import __version__

CACHE_DIR = ".bulwark-cache"
MAX_ENTRIES = 200_000


def _code_stamp() -> str:
    """Version plus the size/mtime of this package's modules: a code change is a new cache."""
    import hashlib

    here = Path(__file__).resolve().parent
    parts = [__version__]
    for path in sorted(here.glob("*.py")):
        try:
            st = path.stat()
        except OSError:
            continue
        parts.append(f"{path.name}:{st.st_size}:{int(st.st_mtime)}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:12]


class ParseCache:
    """Loaded from disk on first use, so a run that never asks pays nothing."""

    def __init__(self, directory: str | os.PathLike[str] | None, name: str = "parse"):
        self.directory = Path(directory) if directory else None
        self.path = self.directory / f"{name}-{_code_stamp()}.pickle" if self.directory else None
        self.name = name
        self._data: dict[Any, Any] = {}
        self._used: set[Any] = set()
        self._dirty = False
        self._loaded = False
        self.journal: list[tuple[Any, Any]] | None = None   # puts, when a worker records them

    def _load(self) -> None:
        self._loaded = True
        if self.path and self.path.is_file():
            try:
                with open(self.path, "rb") as fh:
                    loaded = pickle.load(fh)  # noqa: S301 - our own file in a git-ignored dir
                if isinstance(loaded, dict):
                    self._data = loaded
                    # the cache is long-lived data: keep the cyclic GC from rescanning it
                    import gc

                    gc.freeze()
            except Exception:  # noqa: BLE001 - a broken cache is just a cold start
                self._data = {}

    def get(self, key: Any) -> Any:
        if not self._loaded:
            self._load()
        value = self._data.get(key)
        if value is not None:
            self._used.add(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        if not self._loaded:
            self._load()
        self._data[key] = value
        if self.journal is not None:
            self.journal.append((key, value))
        self._used.add(key)
        self._dirty = True

    def save(self) -> None:
        if not self._dirty or self.directory is None or self.path is None:
            return
        data = self._data
        if len(data) > MAX_ENTRIES:
            data = {k: v for k, v in data.items() if k in self._used}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# created by dbt-bulwark\n*\n")
            from dbt_bulwark.fs import atomic_write

            atomic_write(self.path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL),
                         check=False, durable=False)
            self._dirty = False
            for old in self.directory.glob(f"{self.name}-*.pickle"):
                if old != self.path:  # caches written by another version of the code
                    with contextlib.suppress(OSError):
                        old.unlink()
        except OSError:
            pass  # a read-only checkout still works, just without a cache


def open_cache(repo_root: str | os.PathLike[str] | None, enabled: bool = True,
               name: str = "parse") -> ParseCache | None:
    """The parse cache (YAML, dbt-extractor, parse renders) or, with ``name="analysis"``,
    the cache of compiled SQL and inferred columns (read only by hooks that need it)."""
    if not enabled or repo_root is None or os.environ.get("BULWARK_NO_CACHE"):
        return None
    return ParseCache(Path(repo_root) / CACHE_DIR, name)
