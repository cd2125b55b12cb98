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
import io
import os
import pickle
from pathlib import Path
from typing import Any

from dbt_bulwark import __version__

CACHE_DIR = ".bulwark-cache"
MAX_ENTRIES = 200_000


# what a cached verdict depends on besides our own code: an upgrade of any of these is a
# new cache (distribution names as their .dist-info folders spell them, normalised)
DEPENDENCIES = ("sqlglot", "sqlglotc", "jinja2", "dbt_extractor", "duckdb", "pyyaml")
FORMAT = 3   # each entry pickled on its own: a save re-pickles only what the run put


# text -> content_hash: a file's text is hashed by the head's load, the base's load and the
# checks, once per run (a bounded memo: emptied when it holds too many or too long texts)
_HASHED: dict[str, str] = {}
_HASHED_MAX = 50_000
_HASHED_CHARS = 32 * 2**20
_hashed_chars = 0


def content_hash(text: str) -> str:
    """The one content hash of bulwark's caches and checksums: sha1 of the text's UTF-8
    bytes (lone surrogates from undecodable file names kept, never an error)."""
    known = _HASHED.get(text)
    if known is not None:
        return known
    import hashlib

    global _hashed_chars
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
    if len(text) > 200:          # short texts hash as fast as they are looked up
        if len(_HASHED) >= _HASHED_MAX or _hashed_chars + len(text) > _HASHED_CHARS:
            _HASHED.clear()
            _hashed_chars = 0
        _HASHED[text] = digest
        _hashed_chars += len(text)
    return digest


def dependency_versions(names: tuple[str, ...] = DEPENDENCIES) -> dict[str, str]:
    """Installed version of each distribution, read from the ``.dist-info``/``.egg-info``
    folder names on ``sys.path`` (no import, no ``importlib.metadata``: a listdir per
    path entry). The first entry that has one wins, as for an import."""
    import sys

    wanted = set(names)
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            listing = os.listdir(entry or ".")
        except OSError:
            continue
        for item in listing:
            if not item.endswith((".dist-info", ".egg-info")):
                continue
            stem = item.rsplit(".", 1)[0]
            name, _, version = stem.partition("-")
            key = name.lower().replace("-", "_").replace(".", "_")
            if key in wanted and key not in found:
                found[key] = version.split("-py", 1)[0]
        if len(found) == len(wanted):
            break
    return found


def _code_stamp() -> str:
    """Version, the size/mtime of this package's modules and the installed versions of
    the libraries verdicts come from: a code change or an upgrade is a new cache."""
    here = Path(__file__).resolve().parent
    parts = [__version__, str(FORMAT)]
    for path in sorted(here.rglob("*.py")):
        try:
            st = path.stat()
        except OSError:
            continue
        parts.append(f"{path.relative_to(here)}:{st.st_size}:{int(st.st_mtime)}")
    parts.extend(f"{k}={v}" for k, v in sorted(dependency_versions().items()))
    return content_hash("|".join(parts))[:12]


# The cache is our own file, but it sits in the repository: never unpickle anything but
# plain data and this package's own classes (a committed or planted cache file must not
# run code), and check every entry's shape before a caller sees it.
_SAFE_BUILTINS = {("builtins", n) for n in ("set", "frozenset", "complex", "slice", "range",
                                             "bytearray")}
_SAFE_GLOBALS = {("datetime", n) for n in ("date", "datetime", "time", "timedelta", "timezone")}
_SAFE_GLOBALS |= {("collections", "OrderedDict"), ("decimal", "Decimal"),
                  ("copyreg", "_reconstructor"), ("builtins", "object"),
                  ("dbt_bulwark.project.yamlio", "_rebuild_linedict")}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_BUILTINS or (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        if module.startswith("dbt_bulwark.") and "." not in name and not name.startswith("__"):
            obj = super().find_class(module, name)
            if isinstance(obj, type) and not issubclass(obj, BaseException):
                return obj   # a data class of ours (built by __new__ + state, not __init__)
        raise pickle.UnpicklingError(f"refused: {module}.{name}")


def _is_error(v: Any) -> bool:
    return v is None or (isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], int)
                         and isinstance(v[1], str))


def _shape_yaml(v: Any) -> bool:
    if not (isinstance(v, tuple) and len(v) == 2):
        return False
    if v[0] == "ok":
        return True
    return v[0] == "err" and isinstance(v[1], tuple) and len(v[1]) == 4 and \
        isinstance(v[1][0], int) and isinstance(v[1][1], int) and isinstance(v[1][2], str) \
        and isinstance(v[1][3], str)


def _shape_extract(v: Any) -> bool:
    return isinstance(v, dict) and (not v or (
        isinstance(v.get("refs"), list) and isinstance(v.get("sources"), list)
        and isinstance(v.get("configs"), list)))


def _shape_render(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("refs"), list) and \
        isinstance(v.get("sources"), list) and isinstance(v.get("calls"), dict) and \
        _is_error(v.get("error")) and isinstance(v.get("env", {}), dict)


SHAPES: dict[str, Any] = {
    "yaml": _shape_yaml,
    "extract": _shape_extract,
    "render": _shape_render,
    "compile": lambda v: type(v).__name__ == "Compiled" and hasattr(v, "unique_id"),
    "fc-syntax": lambda v: isinstance(v, tuple) and len(v) == 1,
}


def _valid(key: Any, value: Any) -> bool:
    check = SHAPES.get(key[0]) if isinstance(key, tuple) and key else None
    if check is None:
        return True
    try:
        return bool(check(value))
    except Exception:  # noqa: BLE001 - a value that breaks its check is not valid
        return False


class ParseCache:
    """Loaded from disk on first use, so a run that never asks pays nothing."""

    def __init__(self, directory: str | os.PathLike[str] | None, name: str = "parse",
                 copies: bool = False):
        """``copies``: keep values pickled and hand out a fresh copy on every get, as a
        cache read from disk does (for an in-memory cache shared by two loads of one run:
        a caller that changes what it got never changes what the next one gets)."""
        self.copies = copies
        self.directory = Path(directory) if directory else None
        self.path = self.directory / f"{name}-{_code_stamp()}.pickle" if self.directory else None
        self.name = name
        self._data: dict[Any, Any] = {}
        self._raw: dict[Any, bytes] = {}   # the file's pickle of each entry not put since
        self._used: set[Any] = set()
        self._dirty = False
        self._loaded = False
        self.journal: list[tuple[Any, Any]] | None = None   # puts, when a worker records them
        self.companions: list[ParseCache] = []   # saved with this one (the template code)

    def _load(self) -> None:
        """Read the file's entries as their pickles: each is unpickled when first asked for
        (a warm commit asks for a small part of the analysis and template caches)."""
        self._loaded = True
        if self.path and self.path.is_file():
            try:
                with open(self.path, "rb") as fh:
                    loaded = _SafeUnpickler(fh).load()
                if isinstance(loaded, dict) and loaded.get("format") == FORMAT and \
                        isinstance(loaded.get("entries"), dict):
                    self._raw = {k: blob for k, blob in loaded["entries"].items()
                                 if isinstance(k, tuple) and k and isinstance(k[0], str)
                                 and isinstance(blob, bytes)}
            except Exception:  # noqa: BLE001 - a broken cache is just a cold start
                self._raw = {}

    def _unpickle(self, key: Any) -> Any:
        """The file's entry ``key``, unpickled now (None: none, or broken: forgotten)."""
        blob = self._raw.get(key)
        if blob is None:
            return None
        try:
            value = _SafeUnpickler(io.BytesIO(blob)).load()
        except Exception:  # noqa: BLE001 - a broken or hostile entry is a miss
            del self._raw[key]
            return None
        self._data[key] = value
        return value

    def get(self, key: Any) -> Any:
        if not self._loaded:
            self._load()
        value = self._data.get(key)
        if value is None:
            value = self._unpickle(key)
        elif self.copies:
            value = pickle.loads(value)   # bytes this process pickled itself
        if value is not None:
            if not _valid(key, value):   # wrong shape: a miss, and forget it
                self._data.pop(key, None)
                self._raw.pop(key, None)
                return None
            self._used.add(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        if not self._loaded:
            self._load()
        self._data[key] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL) \
            if self.copies else value
        self._raw.pop(key, None)
        if self.journal is not None:
            self.journal.append((key, value))
        self._used.add(key)
        self._dirty = True

    def put_pickled(self, key: Any, blob: bytes) -> None:
        """:meth:`put` of a value as its pickle (from another process), unpickled here only
        when asked for; not journaled (the process it came from has it)."""
        if not self._loaded:
            self._load()
        if self.copies:
            self._data[key] = blob
        else:
            self._data.pop(key, None)
            self._raw[key] = blob
        self._used.add(key)
        self._dirty = True

    def save(self) -> None:
        for other in self.companions:
            other.save()
        if not self._dirty or self.directory is None or self.path is None:
            return
        data, raw, dumps = self._data, self._raw, pickle.dumps
        keys: Any = raw.keys() | data.keys()
        if len(keys) > MAX_ENTRIES:
            keys = self._used
        # an entry not put since it was read is written back as the file's own pickle
        entries = {k: raw.get(k) or dumps(data[k], protocol=pickle.HIGHEST_PROTOCOL)
                   for k in keys if k in raw or k in data}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# created by dbt-bulwark\n*\n")
            from dbt_bulwark.project.fs import atomic_write

            atomic_write(self.path, pickle.dumps({"format": FORMAT, "entries": entries},
                                                 protocol=pickle.HIGHEST_PROTOCOL),
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
    the cache of compiled SQL and inferred columns (read only by hooks that need it).

    Without a cache on disk (``--no-cache``, ``BULWARK_NO_CACHE``, no repository), one in
    memory for this run only: nothing is read or written, but the head and its git base
    (mostly the same files) are not parsed twice."""
    if not enabled or repo_root is None or os.environ.get("BULWARK_NO_CACHE"):
        return ParseCache(None, name, copies=True)
    cache = ParseCache(Path(repo_root) / CACHE_DIR, name)
    if name == "parse":   # the compiled Jinja code lives beside the parse cache
        global _TEMPLATE_STORE
        _TEMPLATE_STORE = ParseCache(Path(repo_root) / CACHE_DIR, "jinja")
        cache.companions.append(_TEMPLATE_STORE)
    return cache


# --------------------------------------------------------------------------------------------
# The log of internal errors
# --------------------------------------------------------------------------------------------


def log_file(repo_root: str | os.PathLike[str] | None) -> Path:
    """``.bulwark-cache/bulwark.log`` in the repository (git-ignored), else a temp file."""
    import tempfile

    candidates = [Path(repo_root) / CACHE_DIR] if repo_root is not None else []
    candidates.append(Path(tempfile.gettempdir()))
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if folder.name == CACHE_DIR and not (folder / ".gitignore").exists():
                (folder / ".gitignore").write_text("# created by dbt-bulwark\n*\n")
            path = folder / ("bulwark.log" if folder.name == CACHE_DIR
                             else f"bulwark-{os.getpid()}.log")
            with open(path, "a", encoding="utf-8"):
                pass
            return path
        except OSError:
            continue
    return Path(os.devnull)


def log_exception(exc: BaseException, title: str,
                  repo_root: str | os.PathLike[str] | None) -> Path:
    """Append ``exc``'s traceback under ``title`` to :func:`log_file`; its path (what the
    one-line message to the user points at). The one writer of bulwark's error log."""
    import datetime
    import sys
    import traceback

    log = log_file(repo_root)
    try:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.datetime.now(datetime.timezone.utc).isoformat()} "
                     f"dbt-bulwark {__version__}, python {sys.version.split()[0]}: {title}\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    except OSError:
        return Path("(log not writable)")
    return log


# --------------------------------------------------------------------------------------------
# Compiled Jinja templates, by content
# --------------------------------------------------------------------------------------------
# Compiling a template (lex, parse, generate Python, compile it) costs far more than rendering
# it, and the same text is compiled by the loader (parse render), the compiler (compile render)
# and every macro call site.  Templates are compiled once per content and process, and the
# Python code object is kept on disk (``jinja-<stamp>.pickle``, read only when a template is
# missing in memory) keyed by the text's hash, the Python bytecode magic, jinja2's version and
# the environment class, so a fresh process skips the Jinja compiler for unchanged text.

_TEMPLATE_STORE: ParseCache | None = None
_TEMPLATES: dict[tuple[int, str], Any] = {}
_TEMPLATES_MAX = 50_000


def _template_key(env: Any, text: str) -> tuple[str, ...]:
    from importlib.util import MAGIC_NUMBER

    import jinja2

    sha = content_hash(text)
    return ("jinja-code", MAGIC_NUMBER.hex(), jinja2.__version__,
            f"{type(env).__module__}.{type(env).__qualname__}", sha)


def template_store() -> ParseCache | None:
    """The on-disk store of compiled template code (None when the run has no cache)."""
    return _TEMPLATE_STORE


def compiled_template(env: Any, text: str) -> Any:
    """``env.from_string(text)``, compiled once per content (in memory, then on disk)."""
    memo = (id(env), text)
    hit = _TEMPLATES.get(memo)
    if hit is not None:
        return hit
    import marshal

    store = _TEMPLATE_STORE
    key = _template_key(env, text) if store is not None else None
    code = None
    if store is not None:
        blob = store.get(key)
        if isinstance(blob, bytes):
            with contextlib.suppress(Exception):
                code = marshal.loads(blob)  # our own file, keyed by bytecode magic
    if code is None:
        source = env.compile(text, raw=True)   # raises TemplateSyntaxError like from_string
        code = compile(source, "<template>", "exec")
        if store is not None:
            store.put(key, marshal.dumps(code))
    template = env.template_class.from_code(env, code, env.make_globals(None), None)
    if len(_TEMPLATES) >= _TEMPLATES_MAX:
        _TEMPLATES.clear()
    _TEMPLATES[memo] = template
    return template
