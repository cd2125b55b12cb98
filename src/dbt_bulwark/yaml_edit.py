"""Minimal, lossless edits of dbt properties files (``models: - name: ...``).

Every ``--fix`` mode goes through :class:`PropertiesEditor`. The contract is that
a fix only *adds* what it means to add: everything else in the file comes back
byte for byte (comments, key order, quoting, indentation, anchors and aliases,
flow collections, folded/literal descriptions, CRLF line endings, a UTF-8 BOM,
a missing final newline).

How: the file is never re-serialised. It is parsed into YAML *events* (which
carry exact character positions) and each edit is a text splice at a position
computed from them -- new lines after the last content line of a block
mapping/sequence, or ``, item`` before the closing bracket of a flow
collection. New lines copy the file's own indentation (detected per
collection, with a file-wide vote for new nested collections). A round-trip
dump with ruamel.yaml was measured and rejected: even with preserve_quotes,
a detected indent and a huge width it still rewrites untouched content
(``[ a, b ]`` -> ``[a, b]``, ``~`` -> empty, ``True`` -> ``true``, extra spaces
before values and comments, mixed sequence indentation, ``---``) and attaches a
new key after a comment/blank line that belongs to the next entry.

Safety net: after each public edit the whole file is re-loaded with PyYAML (the
loader dbt uses) and compared with the data before the edit plus the intended
change; anything else -- or any edit that would go through an alias, an
anchor that is referenced elsewhere, or shadow a key inherited through a merge
key (``<<: *x``) -- is refused with :class:`YamlEditError` and the text is left
as it was. Files are written atomically (temp file in the same directory,
fsync, ``os.replace``, original mode and owner kept: :func:`dbt_bulwark.project.fs.atomic_write`),
and only regular files inside the repository are written (symlinks leaving it,
read-only files and hard-linked files are refused).

Nothing on a hook's hot path imports this module; import it only when fixing.
"""

from __future__ import annotations

import codecs
import copy
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

import yaml

__all__ = ["YamlEditError", "PropertiesEditor", "ModelEntry", "NEW_FILE_TEXT"]

NEW_FILE_TEXT = "version: 2\n\nmodels:\n"

_WIDTH = 1 << 30  # never let the emitter wrap a rendered scalar
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


class YamlEditError(Exception):
    """A file that cannot be edited safely. ``line`` is 1-based, None if unknown."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line else self.path
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------- nodes


class _Node:
    """A YAML node with exact character offsets into the (BOM-less) text."""

    __slots__ = ("kind", "start", "end", "line", "col", "flow", "value", "style",
                 "referenced", "items", "pairs", "size")

    def __init__(self, kind: str, ev: Any):
        self.kind = kind  # "scalar" | "seq" | "map" | "alias"
        mark = ev.start_mark
        self.start: int = mark.index
        self.end: int = ev.end_mark.index  # collections: set from the end event
        self.line: int = mark.line  # 0-based
        self.col: int = mark.column
        self.flow: bool = bool(getattr(ev, "flow_style", False))
        self.value: str | None = getattr(ev, "value", None)
        self.style: str | None = getattr(ev, "style", None) or None  # libyaml: '' for plain
        self.referenced = False  # an alias somewhere points at this node
        self.items: list[_Node] = []
        self.pairs: list[tuple[_Node, _Node]] = []
        self.size = 0   # nodes once every alias is expanded; 0 while being built

    def own(self, key: str) -> tuple[_Node, _Node] | None:
        """The (key, value) pair written in this mapping (the last one, as PyYAML does)."""
        found = None
        for k, v in self.pairs:
            if k.kind == "scalar" and k.value == key and k.style in (None, "'", '"'):
                found = (k, v)
        return found

    @property
    def is_null(self) -> bool:
        return self.kind == "scalar" and self.style is None and (self.value or "") in _NULLS

    @property
    def is_block_scalar(self) -> bool:
        return self.kind == "scalar" and self.style in ("|", ">")


def _end_index(ev: Any) -> int:
    return int(ev.end_mark.index)


_CPARSER = getattr(yaml, "CSafeLoader", None) if getattr(yaml, "__with_libyaml__", False) \
    else None


def _compose(text: str, info: dict[str, bool] | None = None) -> list[_Node | None]:
    """Documents of ``text`` as _Node trees with character offsets.

    libyaml's events carry the same character offsets as the pure-Python parser's
    (checked on the test corpus) at a tenth of the cost; the pure-Python parser is
    used when libyaml is missing or rejects the text (its error messages are the
    ones reported). ``info["shared"]`` is set when the text has an anchor, an alias,
    a merge key (``<<``) or an explicit tag."""
    if _CPARSER is not None:
        try:
            return _compose_with(text, _CPARSER, info)
        except _AliasBomb:
            raise
        except yaml.YAMLError:
            pass
    return _compose_with(text, yaml.SafeLoader, info)


def _compose_with(text: str, loader: Any, info: dict[str, bool] | None) -> list[_Node | None]:
    events: Iterator[Any] = iter(yaml.parse(text, Loader=loader))
    anchors: dict[str, _Node] = {}
    shared = False
    built = 0
    bomb: list[_Node] = []   # the first alias past the limits (recursive, or a bomb)

    alias_event, scalar_event = yaml.AliasEvent, yaml.ScalarEvent
    seq_start, seq_end = yaml.SequenceStartEvent, yaml.SequenceEndEvent
    map_start, map_end = yaml.MappingStartEvent, yaml.MappingEndEvent

    def build(ev: Any) -> _Node:
        nonlocal shared, built
        if isinstance(ev, scalar_event):   # the common case first: no children
            built += 1
            node = _Node("scalar", ev)
            node.size = 1
            if ev.anchor or ev.tag:
                shared = True
                if ev.anchor:
                    anchors[ev.anchor] = node
            return node
        if isinstance(ev, alias_event):
            shared = True
            node = _Node("alias", ev)
            target = anchors.get(str(ev.anchor))
            if target is not None:
                target.referenced = True
                node.size = target.size
                if not target.size and not bomb:
                    bomb.append(node)   # an alias inside the node it names
            return node
        built += 1
        anchor = ev.anchor
        size = 1
        if isinstance(ev, seq_start):
            node = _Node("seq", ev)
            if anchor:   # known before its children, as PyYAML's composer has it
                anchors[anchor] = node
            items = node.items
            while True:
                child = next(events)
                if isinstance(child, seq_end):
                    node.end = _end_index(child)
                    break
                item = build(child)
                size += item.size
                items.append(item)
        elif isinstance(ev, map_start):
            node = _Node("map", ev)
            if anchor:
                anchors[anchor] = node
            pairs = node.pairs
            while True:
                child = next(events)
                if isinstance(child, map_end):
                    node.end = _end_index(child)
                    break
                key = build(child)
                if key.kind == "scalar" and key.value == "<<" and key.style is None:
                    shared = True
                value = build(next(events))
                size += key.size + value.size
                pairs.append((key, value))
            if pairs and not node.flow:  # column of the keys, not of an anchor
                node.col = pairs[0][0].col
        else:  # pragma: no cover - the parser guarantees node events here
            raise ValueError(f"unexpected event {ev!r}")
        if anchor or ev.tag:
            shared = True  # an anchor, or an explicit tag (!!str ...): no shortcuts
        node.size = size
        if shared and not bomb and size - built > MAX_ALIAS_EXPANSION:
            bomb.append(node)
        return node

    docs: list[_Node | None] = []
    for ev in events:
        if isinstance(ev, yaml.DocumentStartEvent):
            nxt = next(events)
            if isinstance(nxt, yaml.DocumentEndEvent):
                docs.append(None)
                continue
            docs.append(build(nxt))
            next(events)  # DocumentEndEvent
    if bomb:
        raise _AliasBomb(bomb[0].line + 1, bool(bomb[0].kind == "alias" and not bomb[0].size))
    if info is not None:
        info["shared"] = shared
    return docs


# the editor's own bound on alias expansion (the loader's: dbt_bulwark.project.yamlio): PyYAML
# shares aliased nodes, but comparing or copying the data walks every expansion
MAX_ALIAS_EXPANSION = 100_000


class _AliasBomb(yaml.YAMLError):
    def __init__(self, line: int, recursive: bool):
        super().__init__("alias bomb")
        self.line = line
        self.recursive = recursive


_BAIL = object()
_BOOL_NULL = {**dict.fromkeys(("yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"),
                              True),
              **dict.fromkeys(("no", "No", "NO", "false", "False", "FALSE", "off", "Off",
                               "OFF"), False),
              **dict.fromkeys(("null", "Null", "NULL"), None)}


def _plain_data(node: _Node | None) -> Any:
    """What PyYAML's safe loader makes of a tree without anchors, aliases, merge keys or
    tags, for the scalars whose resolution is certain; ``_BAIL`` otherwise (then the
    real loader is used). Used for the small documents of entries edited one by one:
    the whole file is always re-loaded by PyYAML before it is saved."""
    if node is None:
        return None
    if node.kind == "scalar":
        value = node.value or ""
        if node.style is not None:
            return value
        if not value or value[0] in "-+0123456789.<~=":
            return _resolved(value)  # numbers, null: as PyYAML's own resolver says
        if value[0] in "yYnNtTfFoO" and value in _BOOL_NULL:
            return _BOOL_NULL[value]
        return value
    if node.kind == "seq":
        items = []
        for item in node.items:
            got = _plain_data(item)
            if got is _BAIL:
                return _BAIL
            items.append(got)
        return items
    if node.kind == "map":
        out: dict[Any, Any] = {}
        for k, v in node.pairs:
            key, value = _plain_data(k), _plain_data(v)
            if key is _BAIL or value is _BAIL or isinstance(key, (dict, list)):
                return _BAIL
            out[key] = value
        return out
    return _BAIL


_TAG = "tag:yaml.org,2002:"
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_CONSTRUCT = {_TAG + "int": _CONSTRUCTOR.construct_yaml_int,
              _TAG + "float": _CONSTRUCTOR.construct_yaml_float,
              _TAG + "bool": _CONSTRUCTOR.construct_yaml_bool,
              _TAG + "null": _CONSTRUCTOR.construct_yaml_null}


def _resolved(value: str) -> Any:
    """A plain scalar as the safe loader makes it (PyYAML's own resolver and constructors:
    the C loader uses the same); ``_BAIL`` for a timestamp, a merge or value key."""
    tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
    if tag == _TAG + "str":
        return value
    construct = _CONSTRUCT.get(tag)
    if construct is None:
        return _BAIL
    return construct(yaml.ScalarNode(tag, value))


def _load(text: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # a safe loader


# --------------------------------------------------------------------------- rendering


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


_PLAIN_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_RESOLVED_WORDS = frozenset({"y", "yes", "n", "no", "true", "false", "on", "off", "null"})


def _scalar(value: Any, quote: str | None = None, flow: bool = True) -> str:
    """One-line YAML for a scalar; ``flow`` makes it safe inside ``[...]``/``{...}``."""
    style = quote if isinstance(value, str) and quote in ("'", '"') else None
    # what the emitter would write, without building one (it dominated --fix's cost)
    if value is True or value is False:
        return "true" if value else "false"
    if value is None:
        return "null"
    if type(value) is int:
        return str(value)
    if style is None and isinstance(value, str) and _PLAIN_WORD.match(value) \
            and value.lower() not in _RESOLVED_WORDS:
        return value
    for attempt in (style, '"'):
        opts: dict[str, Any] = {"default_style": attempt, "width": _WIDTH,
                                "allow_unicode": True}
        if flow:
            out = yaml.safe_dump([value], default_flow_style=True, **opts).strip()[1:-1]
        else:
            out = yaml.safe_dump(value, **opts)
            out = out[:-len("\n...\n")] if out.endswith("\n...\n") else out.rstrip("\n")
        if "\n" not in out:  # a multi-line quoted scalar would not fit our line-based splices
            return out
    raise ValueError(f"cannot render {value!r} on one line")  # pragma: no cover


def _flow(value: Any) -> str:
    if isinstance(value, (Mapping, list)):
        return yaml.safe_dump(value, default_flow_style=True, sort_keys=False,
                              width=_WIDTH, allow_unicode=True).strip()
    return _scalar(value)


# --------------------------------------------------------------------------- entry


class ModelEntry(Mapping[str, Any]):
    """A read-only, always-current view of one model (or model version) entry.

    Pass it to the editor's ``add_*``/``set_*`` methods; read it like a dict
    (values are what PyYAML -- and so dbt -- sees, merge keys applied).
    """

    def __init__(self, editor: PropertiesEditor, name: str, version: Any = None):
        self._editor = editor
        self.name = name
        self.version = version

    def _data(self) -> dict[str, Any]:
        data = self._editor._entry_data(self)
        return data if isinstance(data, dict) else {}

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data())

    def __len__(self) -> int:
        return len(self._data())

    def __repr__(self) -> str:
        from dbt_bulwark.project.model import versioned_name

        return f"<ModelEntry {versioned_name(self.name, self.version)} in {self._editor.path}>"


# --------------------------------------------------------------------------- editor


class PropertiesEditor:
    """Lossless editor for one dbt properties YAML file (which may not exist yet)."""

    _data: Any       # what PyYAML (and so dbt) reads from the text
    _shared: bool    # the text has anchors, aliases, merge keys or tags

    def __init__(self, path: str | os.PathLike[str],
                 root: str | os.PathLike[str] | None = None):
        """``root``: the repository; the file (or a symlink's target) must lie inside it
        and be safe to replace (see :func:`dbt_bulwark.project.fs.check_writable`), else
        :class:`YamlEditError` -- before anything is planned."""
        from dbt_bulwark.project.fs import UnsafeWrite, check_writable

        self.path = Path(path)
        self.root = root
        self._bom = False
        self._raw: bytes | None = None
        try:
            check_writable(self.path, root)
        except UnsafeWrite as exc:
            raise YamlEditError(self.path, None, _unsafe_message(exc, self.path)) from None
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self.exists = False
            text = NEW_FILE_TEXT
        else:
            self.exists = True
            self._raw = raw
            if raw.startswith(codecs.BOM_UTF8):
                self._bom = True
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = raw[:exc.start].count(b"\n") + 1
                raise YamlEditError(self.path, line, "not valid UTF-8") from None
        # a file whose lines end in CR alone (old Mac style) is edited as LF and written
        # back with CR: the mapping is one to one (no LF in it), offsets are unchanged
        self._cr_only = "\r" in text and "\n" not in text
        if self._cr_only:
            text = text.replace("\r", "\n")
        crlf = text.count("\r\n")
        self.newline = "\r\n" if crlf and crlf >= text.count("\n") - crlf else "\n"
        self._saved = text
        self._text = text
        self._init_batch(False, 0)
        self._parse(first=True)
        self._detect_style()

    # ------------------------------------------------------------------ public API

    @property
    def text(self) -> str:
        """The current text (without the BOM), with the file's own line ends."""
        text = self._current()
        return text.replace("\n", "\r") if self._cr_only else text

    def _current(self) -> str:
        return self._assemble() if self._subs or self._new else self._text

    @property
    def changed(self) -> bool:
        return self._current() != self._saved

    @overload
    def model(self, name: str, version: Any = None,
              create: Literal[True] = True) -> ModelEntry: ...
    @overload
    def model(self, name: str, version: Any = None, create: bool = True) -> ModelEntry | None: ...

    def model(self, name: str, version: Any = None, create: bool = True) -> ModelEntry | None:
        """The ``- name: <name>`` entry under ``models:`` (its ``- v: <version>`` entry
        under ``versions:`` when ``version`` is given), appended when missing and
        ``create`` is true; None when missing and not created."""
        self._ensure_tree()
        sub = self._sub_for(name, create)
        if sub is not None:
            found = self._in_sub(sub, lambda: sub.model(name, version, create))
            return None if found is None else ModelEntry(self, name, version)
        if not create and self._model_index(name) is None:
            return None  # a pending entry would have a sub-editor: nothing to put back
        self._flush()
        if self._model_index(name) is None:
            if not create:
                return None
            self._edit(lambda: self._create_model(name),
                       lambda d: self._expect_model(d, name))
        if version is not None and self._version_index(name, version) is None:
            if not create:
                return None
            self._edit(lambda: self._create_version(name, version),
                       lambda d: self._expect_version(d, name, version))
        return ModelEntry(self, name, version)

    def add_tags(self, entry: ModelEntry, tags: Sequence[str] | str) -> bool:
        """Add the tags the entry's ``config.tags`` does not have yet, where dbt reads a
        model's tags (dbt 1.11 ignores a top-level ``tags:`` on a model entry, so one is
        neither extended nor counted). An existing ``config.tags`` is extended in its
        own style (string, block list, flow list); otherwise it is created. Returns True
        when something was added."""
        self._ensure_tree()
        sub = self._sub_for(entry.name, False)
        if sub is not None:
            return bool(self._in_sub(sub, lambda: sub.add_tags(sub._entry(entry), tags)))
        self._flush()
        wanted = [tags] if isinstance(tags, str) else list(tags)
        data = self._entry_data(entry) or {}
        have: set[str] = set()
        cfg = data.get("config")
        if isinstance(cfg, dict):
            have.update(_as_tags(cfg.get("tags")))
        missing: list[str] = []
        for tag in map(str, wanted):
            if tag not in have and tag not in missing:
                missing.append(tag)
        if not missing:
            return False
        path = ["config", "tags"]

        def expect(d: Any) -> None:
            e = self._find_entry(d, entry)
            for key in path[:-1]:
                if not isinstance(e.get(key), dict):
                    e[key] = {}
                e = e[key]
            current = e.get(path[-1])
            if current is None:
                current = []
            elif not isinstance(current, list):
                current = [current]
            e[path[-1]] = current + missing

        self._edit(lambda: self._extend_list(entry, path, missing), expect)
        return True

    def set_config(self, entry: ModelEntry, key: str, value: Any) -> bool:
        """Set ``config.<key>`` to ``value``; a mapping value is merged key by key
        into an existing mapping, leaving its other keys alone. True if changed."""
        self._ensure_tree()
        sub = self._sub_for(entry.name, False)
        if sub is not None:
            return bool(self._in_sub(sub, lambda: sub.set_config(sub._entry(entry), key, value)))
        self._flush()
        value = _plain(value)

        def expect(d: Any) -> None:
            e = self._find_entry(d, entry)
            if not isinstance(e.get("config"), dict):
                e["config"] = {}
            _deep_set(e["config"], key, value)

        return self._edit(lambda: self._set(entry, ["config"], key, value), expect)

    def add_columns(self, entry: ModelEntry, columns: Sequence[Mapping[str, Any]]) -> bool:
        """Append the columns not present yet (names compared case-insensitively);
        give an existing column without ``data_type`` the one passed. True if changed."""
        self._ensure_tree()
        sub = self._sub_for(entry.name, False)
        if sub is not None:
            return bool(self._in_sub(sub, lambda: sub.add_columns(sub._entry(entry), columns)))
        self._flush()
        cols = [_plain(c) for c in columns]

        def expect(d: Any) -> None:
            e = self._find_entry(d, entry)
            existing = e.get("columns")
            if not isinstance(existing, list):
                existing = e["columns"] = []
            for col in cols:
                match = _find_column(existing, col.get("name"))
                if match is None:
                    existing.append(copy.deepcopy(col))
                elif match.get("data_type") is None and col.get("data_type") is not None:
                    match["data_type"] = col["data_type"]

        return self._edit(lambda: self._add_columns(entry, cols), expect)

    def save(self) -> bool:
        """Write the file atomically; False (and nothing written) when unchanged."""
        self._flush(final=True)
        if not self.changed:
            return False
        from dbt_bulwark.project.fs import UnsafeWrite, atomic_write, check_writable

        try:
            target = Path(check_writable(self.path, self.root))
        except UnsafeWrite as exc:
            raise YamlEditError(self.path, None, _unsafe_message(exc, self.path)) from None
        current: bytes | None
        try:
            current = target.read_bytes()
        except FileNotFoundError:
            current = None
        if current != self._raw:
            raise YamlEditError(self.path, None, "changed on disk since it was read; not saved")
        body = self._text.replace("\n", "\r") if self._cr_only else self._text
        payload = (codecs.BOM_UTF8 if self._bom else b"") + body.encode("utf-8")
        try:
            atomic_write(target, payload, self.root)
        except UnsafeWrite as exc:
            raise YamlEditError(self.path, None, _unsafe_message(exc, self.path)) from None
        self._raw = payload
        self._saved = self._text
        self.exists = True
        return True

    # ------------------------------------------------------------------ batching
    #
    # Re-parsing the whole file after every splice made fixing N models of one file
    # O(N^2). When the file is plain (one block ``models:`` sequence of block mappings,
    # no anchor, alias or merge key), each model entry is edited on its own: its lines
    # become a small document (``models:`` + the entry's lines, same indentation) in a
    # sub-editor that makes and verifies the edits exactly as this editor would; new
    # entries get a sub-editor of their own. The pieces are put back in one pass and
    # the whole file is re-parsed and verified once (:meth:`_flush`, before saving or
    # before any edit that needs the whole file).

    def _init_batch(self, is_sub: bool, line0: int) -> None:
        self._stale = getattr(self, "_stale", False)   # event tree out of date (saved)
        self._is_sub = is_sub
        self._line0 = line0                      # sub-editor: 0-based line of its entry
        self._subs: dict[int, PropertiesEditor] = {}       # model index -> sub-editor
        self._ranges: dict[int, tuple[int, int]] = {}      # model index -> text range
        self._new: list[PropertiesEditor] = []             # entries to append
        self._new_at = 0
        self._sub_names: dict[str, PropertiesEditor] = {}

    def mark(self) -> Any:
        """A point to :meth:`rollback` to: the edits of one model are all or nothing (a
        refused edit of one entry leaves the others' edits, and no half-made change)."""
        self._ensure_tree()
        subs = [*self._subs.values(), *self._new]
        return (self._text, dict(self._subs), dict(self._ranges), list(self._new),
                self._new_at, dict(self._sub_names), [(sub, sub._text) for sub in subs])

    def rollback(self, mark: Any) -> None:
        """Undo every edit made since ``mark`` (from :meth:`mark`)."""
        self._ensure_tree()
        text, subs, ranges, new, new_at, names, sub_texts = mark
        self._subs, self._ranges, self._new = dict(subs), dict(ranges), list(new)
        self._new_at, self._sub_names = new_at, dict(names)
        for sub, sub_text in sub_texts:
            if sub._text != sub_text:
                sub._text = sub_text
                sub._parse()
        if self._text != text:
            self._text = text
            self._parse()

    def _entry(self, entry: ModelEntry) -> ModelEntry:
        return ModelEntry(self, entry.name, entry.version)

    def _fast_seq(self) -> _Node | None:
        """The ``models:`` block sequence when entries can be edited one by one."""
        if self._is_sub or self._shared or self._root is None or self._root.flow:
            return None
        pair = self._root.own("models")
        if pair is None or pair[1].kind != "seq" or pair[1].flow or not pair[1].items:
            return None
        if not isinstance(self._data, dict) or not isinstance(self._data.get("models"), list):
            return None
        return pair[1]

    def _item_range(self, item: _Node) -> tuple[int, int] | None:
        if item.kind != "map" or item.flow or not item.pairs:
            return None
        dash = self._dash_of(item)
        if dash is None or self._line_of(dash) != item.line:
            return None
        start = self._text.rfind("\n", 0, dash) + 1
        if self._text[start:dash].strip(" "):
            return None
        return start, self._after_line(self._content_end(item))

    def _make_sub(self, body: str, line0: int) -> PropertiesEditor | None:
        sub = PropertiesEditor.__new__(PropertiesEditor)
        sub.path, sub.root, sub.exists = self.path, self.root, True
        sub._bom, sub._raw, sub.newline, sub._cr_only = False, None, self.newline, False
        sub._init_batch(True, line0)
        sub._saved = sub._text = "models:" + self.newline + body
        try:
            sub._parse()
        except YamlEditError:
            return None
        sub._m, sub._d, sub._s, sub._flow_tags = self._m, self._d, self._s, self._flow_tags
        return sub

    def _sub_for(self, name: str, create: bool) -> PropertiesEditor | None:
        """The sub-editor of model ``name`` (made on first use; for a missing model only
        when ``create``), or None when this edit needs the whole file."""
        sub = self._sub_names.get(name)
        if sub is not None:
            return sub
        seq = self._fast_seq()
        if seq is None:
            return None
        models = self._models_data(self._data)
        idx = self._model_index(name)
        if idx is not None:
            rng = self._item_range(seq.items[idx])
            if rng is None or idx in self._subs:
                return None
            sub = self._make_sub(self._text[rng[0]:rng[1]], self._line_of(rng[0]))
            if sub is None or sub._data != {"models": [models[idx]]}:
                return None
            self._subs[idx] = sub
            self._ranges[idx] = rng
        else:
            if not create:
                return None
            last = seq.items[-1]
            dash_i = self._dash_of(last)
            if last.kind != "map" or last.flow or dash_i is None:
                return None
            dash = self._col_of(dash_i)
            s = last.col - dash if last.line == self._line_of(dash_i) and \
                last.col - dash >= 2 else self._s
            lines = self._block_seq([{"name": name}], dash, s)
            at = self._after_line(self._content_end(seq))
            sub = self._make_sub(self.newline.join(lines) + self.newline, self._line_of(at))
            if sub is None or sub._data != {"models": [{"name": name}]}:
                return None
            self._new.append(sub)
            self._new_at = at
        self._sub_names[name] = sub
        return sub

    def _in_sub(self, sub: PropertiesEditor, fn: Any) -> Any:
        try:
            return fn()
        except YamlEditError as exc:
            line = exc.line + sub._line0 - 1 if exc.line and exc.line > 1 else exc.line
            raise YamlEditError(self.path, line, exc.message) from None

    def _assemble(self) -> str:
        text = self._text
        nl = self.newline
        head = len("models:" + nl)
        pieces: list[str] = []
        pos = 0
        for idx in sorted(self._subs):
            start, end = self._ranges[idx]
            pieces += [text[pos:start], self._subs[idx]._text[head:]]
            pos = end
        if self._new:
            at = max(self._new_at, pos)
            pieces.append(text[pos:at])
            pos = at
            block = "".join(sub._text[head:] for sub in self._new)
            if at == len(text) and text and not text.endswith("\n"):
                block = nl + block[:-len(nl)]  # keep a missing final newline missing
            pieces.append(block)
        pieces.append(text[pos:])
        return "".join(pieces)

    def _flush(self, final: bool = False) -> None:
        """Put the entries edited one by one back into the file; verify the whole once.
        ``final`` (saving): the check is PyYAML's load alone; the event tree is built
        again only if the editor is used after that (:meth:`_ensure_tree`)."""
        self._ensure_tree()
        if not self._subs and not self._new:
            return
        text = self._assemble()
        before_text, before_data = self._text, self._data
        expected: Any = copy.deepcopy(before_data)
        models = expected["models"]
        for idx, sub in self._subs.items():
            models[idx] = sub._models_data(sub._data)[0]
        for sub in self._new:
            models.append(sub._models_data(sub._data)[0])
        self._init_batch(self._is_sub, self._line0)
        if text == before_text:
            return
        self._text = text
        try:
            if final:
                self._data = self._load_checked(text)
                self._stale = True
            else:
                self._parse()
        except YamlEditError as exc:
            self._text = before_text
            self._stale = False
            self._parse()
            raise self._error(None, "refusing the edits: they would make the file invalid "
                                    f"({exc.message}); please report this") from None
        if self._data != expected:
            self._text = before_text
            self._stale = False
            self._parse()
            raise self._error(None, "refusing the edits: the result would change more than "
                                    "intended (please report this as a bug)")

    def _ensure_tree(self) -> None:
        if self._stale:
            self._stale = False
            self._parse()

    def _load_checked(self, text: str) -> Any:
        """PyYAML's data of ``text`` (what dbt reads), a YamlEditError when it fails."""
        try:
            return _load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            raise self._error(mark.line + 1 if mark is not None else None,
                              f"not valid YAML: {exc.problem or exc.context or 'invalid YAML'}"
                              ) from None
        except yaml.YAMLError as exc:
            raise self._error(None, f"not valid YAML: {exc}") from None

    # ------------------------------------------------------------------ parsing

    def _error(self, node_or_line: _Node | int | None, message: str) -> YamlEditError:
        if isinstance(node_or_line, _Node):
            return YamlEditError(self.path, node_or_line.line + 1, message)
        return YamlEditError(self.path, node_or_line, message)

    def _parse(self, first: bool = False) -> None:
        """Parse the current text. The data comes from the event tree when that is certain
        (no anchor, alias, merge key or tag) for a sub-editor's entry and for the file as
        first read (``first``); after an edit of the whole file, always from PyYAML (the
        check before saving)."""
        text = self._text
        info: dict[str, bool] = {}
        try:
            docs = _compose(text, info)
            data = _BAIL
            if (self._is_sub or first) and len(docs) == 1 and not info.get("shared", True):
                data = _plain_data(docs[0])
            if data is _BAIL:
                data = _load(text) if len(docs) <= 1 else None
        except _AliasBomb as exc:
            what = "an alias refers to a node that contains it (recursive alias)" \
                if exc.recursive else (f"YAML aliases expand this file past "
                                       f"{MAX_ALIAS_EXPANSION:,} nodes (an alias bomb?)")
            raise self._error(exc.line, f"{what}; not edited") from None
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            problem = exc.problem or exc.context or "invalid YAML"
            raise self._error(line, f"not valid YAML: {problem}") from None
        except yaml.reader.ReaderError as exc:
            line = text[:exc.position].count("\n") + 1
            raise self._error(line, f"not valid YAML: {exc.reason}") from None
        except yaml.YAMLError as exc:
            raise self._error(None, f"not valid YAML: {exc}") from None
        if len(docs) > 1:
            second = re.finditer(r"^---", text, re.M)
            starts = [text[:m.start()].count("\n") + 1 for m in second]
            line = starts[1] if len(starts) > 1 else (starts[0] if starts else None)
            raise self._error(line, "has several YAML documents; dbt reads one per file")
        root = docs[0] if docs else None
        if root is not None and root.kind != "map":
            raise self._error(root, "top level is not a mapping")
        if root is not None:
            models = root.own("models")
            value = models[1] if models is not None else None
            if value is not None and not (value.kind == "seq" or value.is_null or (
                    value.kind == "alias" and isinstance(data, dict)
                    and isinstance(data.get("models"), list))):
                raise self._error(value, "'models:' is not a list")
        self._root = root
        self._data = data
        self._shared = info.get("shared", True)

    def _detect_style(self) -> None:
        """File-wide indentation votes, used only for collections we create."""
        m_votes: Counter[int] = Counter()
        d_votes: Counter[int] = Counter()
        s_votes: Counter[int] = Counter()
        flow_votes: Counter[bool] = Counter()

        def walk(node: _Node | None) -> None:
            if node is None:
                return
            if node.kind == "map":
                for k, v in node.pairs:
                    if k.value == "tags" and v.kind == "seq" and v.items:
                        flow_votes[v.flow] += 1
                    if not node.flow and v.line > k.line:
                        if v.kind == "map" and not v.flow and v.pairs:
                            m_votes[v.col - k.col] += 1
                        elif v.kind == "seq" and not v.flow and v.items:
                            d_votes[self._dash_col(v) - k.col] += 1
                    walk(k)
                    walk(v)
            elif node.kind == "seq":
                if not node.flow:
                    for item in node.items:
                        dash = self._dash_of(item)
                        if dash is not None and item.line == self._line_of(dash):
                            s_votes[item.col - self._col_of(dash)] += 1
                for item in node.items:
                    walk(item)

        walk(self._root)

        def pick(votes: Counter[Any], default: Any, ok: Any = lambda v: True) -> Any:
            for value, _ in votes.most_common():
                if ok(value):
                    return value
            return default

        self._m = pick(m_votes, 2, lambda v: v > 0)
        self._d = pick(d_votes, 2, lambda v: v >= 0)
        self._s = pick(s_votes, 2, lambda v: v >= 2)
        self._flow_tags = pick(flow_votes, False)

    # ------------------------------------------------------------------ positions

    def _line_of(self, index: int) -> int:
        return self._text.count("\n", 0, index)

    def _col_of(self, index: int) -> int:
        return index - (self._text.rfind("\n", 0, index) + 1)

    def _dash_of(self, item: _Node) -> int | None:
        """Index of the ``-`` introducing a block sequence item (None if not found)."""
        i = item.start - 1
        text = self._text
        while i >= 0 and text[i] in " \t":
            i -= 1
        if i >= 0 and text[i] == "-":
            return i
        return None

    def _dash_col(self, seq: _Node) -> int:
        text = self._text
        m = re.compile(r"-(?=[ \t\r\n])").search(text, seq.start)
        idx = m.start() if m else seq.start
        return self._col_of(idx)

    def _content_end(self, node: _Node) -> int:
        """Index just past the last character that belongs to ``node``."""
        if node.kind in ("scalar", "alias") or node.flow:
            end = node.end
            if node.is_block_scalar:
                header_end = self._text.find("\n", node.start)
                header = self._text[node.start:header_end if header_end >= 0 else None]
                if "+" not in header:  # not "keep" chomping: trailing blank lines are not content
                    while end > node.start and self._text[end - 1] in " \t\r\n":
                        end -= 1
            return end
        if node.kind == "seq":
            return self._content_end(node.items[-1]) if node.items else node.end
        if not node.pairs:
            return node.end
        k, v = node.pairs[-1]
        return max(self._content_end(k), self._content_end(v))

    def _after_line(self, end: int) -> int:
        """Index of the start of the line following the one holding ``end - 1``."""
        nl = self._text.find("\n", max(end - 1, 0))
        return len(self._text) if nl < 0 else nl + 1

    # ------------------------------------------------------------------ splices

    def _splice(self, start: int, end: int, new: str) -> None:
        before = self._text
        self._text = before[:start] + new + before[end:]
        try:
            self._parse()
        except YamlEditError as exc:
            self._text = before
            self._parse()
            raise self._error(self._line_of(start) + 1, "refusing the edit: it would make "
                              f"the file invalid ({exc.message}); please report this") from None

    def _insert_lines(self, end: int, lines: list[str]) -> None:
        """Insert whole lines after the line holding ``end - 1`` (keeps a missing
        final newline missing)."""
        at = self._after_line(end)
        nl = self.newline
        if at == len(self._text) and self._text and not self._text.endswith("\n"):
            self._splice(at, at, nl + nl.join(lines))
        else:
            self._splice(at, at, nl.join(lines) + nl)

    def _block_kv(self, key: str, value: Any, col: int) -> list[str]:
        pad = " " * col
        head = pad + _scalar(key, flow=False) + ":"
        if isinstance(value, dict) and value:
            return [head] + self._block_map(value, col + self._m)
        if isinstance(value, list) and value and (
                not (self._flow_tags and key == "tags") or any(isinstance(v, (dict, list)) for v in value)):
            return [head] + self._block_seq(value, col + self._d, self._s)
        if isinstance(value, (dict, list)):
            return [head + " " + _flow(value)]
        return [head + " " + _scalar(value, flow=False)]

    def _block_map(self, value: Mapping[str, Any], col: int) -> list[str]:
        lines: list[str] = []
        for k, v in value.items():
            lines += self._block_kv(k, v, col)
        return lines

    def _block_seq(self, items: list[Any], dash: int, s: int, flow_maps: bool = False,
                   quote: str | None = None) -> list[str]:
        lead = " " * dash + "-" + " " * (s - 1)
        lines: list[str] = []
        for item in items:
            if isinstance(item, dict) and item and not flow_maps:
                sub = self._block_map(item, dash + s)
                lines += [lead + sub[0][dash + s:]] + sub[1:]
            else:
                lines.append(lead + (_scalar(item, quote, flow=False)
                                     if not isinstance(item, (dict, list)) else _flow(item)))
        return lines

    def _insert_key(self, node: _Node, key: str, value: Any) -> None:
        """Add ``key: value`` at the end of mapping ``node`` (block or flow)."""
        if node.flow:
            piece = f"{_scalar(key)}: {_flow(value)}"
            if node.pairs:
                k, v = node.pairs[-1]
                at = max(self._content_end(k), self._content_end(v))
                self._splice(at, at, ", " + piece)
            else:
                at = self._text.index("{", node.start) + 1
                self._splice(at, at, piece)
            return
        lines = self._block_kv(key, value, node.col)
        if node is self._root and node.pairs:
            lines = [""] + lines  # a blank line between top-level sections
        self._insert_lines(self._content_end(node), lines)

    def _append_items(self, node: _Node, items: list[Any]) -> None:
        """Append ``items`` to sequence ``node`` in the style of its last item."""
        last = node.items[-1] if node.items else None
        quote = last.style if last is not None and last.kind == "scalar" and \
            last.style in ("'", '"') else None
        if node.flow:
            pieces = [_scalar(i, quote) if not isinstance(i, (dict, list)) else _flow(i)
                      for i in items]
            if last is not None:
                at = self._content_end(last)
                self._splice(at, at, ", " + ", ".join(pieces))
            else:
                at = self._text.index("[", node.start) + 1
                self._splice(at, at, ", ".join(pieces))
            return
        assert last is not None  # a block sequence always has items
        dash_i = self._dash_of(last)
        dash = self._col_of(dash_i) if dash_i is not None else self._dash_col(node)
        s = last.col - dash if dash_i is not None and last.line == self._line_of(dash_i) \
            and last.col - dash >= 2 else self._s
        flow_maps = last.kind == "map" and last.flow
        self._insert_lines(self._content_end(node),
                           self._block_seq(items, dash, s, flow_maps, quote))

    def _fill_null(self, parent: _Node, key: _Node, value_node: _Node, value: Any) -> None:
        """Give ``key`` (whose value is null: empty, ``~`` or ``null``) ``value``."""
        if parent.flow or not isinstance(value, (dict, list)) or not value:
            rendered = _flow(value)
            if value_node.value:
                self._splice(value_node.start, value_node.end, rendered)
            else:  # an empty value sits right after the colon
                self._splice(value_node.start, value_node.start, " " + rendered)
            return
        at = value_node.start
        if value_node.value:  # drop the explicit null, then add the block below the key
            while at > key.end and self._text[at - 1] in " \t":
                at -= 1
            self._splice(at, value_node.end, "")
        lines = self._block_kv("k", value, key.col)[1:]
        self._insert_lines(max(at, key.end), lines)

    # ------------------------------------------------------------------ locating

    def _models_data(self, data: Any) -> list[Any]:
        models = data.get("models") if isinstance(data, dict) else None
        return models if isinstance(models, list) else []

    def _model_index(self, name: str, data: Any = None) -> int | None:
        for i, item in enumerate(self._models_data(self._data if data is None else data)):
            if isinstance(item, dict) and str(item.get("name")) == name:
                return i
        return None

    def _version_index(self, name: str, version: Any, data: Any = None) -> int | None:
        data = self._data if data is None else data
        mi = self._model_index(name, data)
        if mi is None:
            return None
        versions = self._models_data(data)[mi].get("versions")
        if not isinstance(versions, list):
            return None
        for i, item in enumerate(versions):
            if isinstance(item, dict) and "v" in item and (
                    item["v"] == version or str(item["v"]) == str(version)):
                return i
        return None

    def _find_entry(self, data: Any, entry: ModelEntry) -> dict[str, Any]:
        mi = self._model_index(entry.name, data)
        assert mi is not None
        model = self._models_data(data)[mi]
        if entry.version is None:
            return model
        vi = self._version_index(entry.name, entry.version, data)
        assert vi is not None
        return model["versions"][vi]

    def _entry_data(self, entry: ModelEntry) -> dict[str, Any] | None:
        self._ensure_tree()
        sub = self._sub_names.get(entry.name)
        if sub is not None:
            return sub._entry_data(sub._entry(entry))
        if self._model_index(entry.name) is None:
            return None
        if entry.version is not None and \
                self._version_index(entry.name, entry.version) is None:
            return None
        return self._find_entry(self._data, entry)

    def _resolve(self, entry: ModelEntry, for_edit: bool = False) -> tuple[_Node, dict[str, Any]]:
        """The entry's mapping node and data (re-resolved: nodes die with each splice)."""
        data = self._entry_data(entry)
        if data is None or self._root is None:
            raise self._error(None, f"model {entry.name!r} is not in this file")
        models = self._root.own("models")
        assert models is not None
        seq = models[1]
        chain: list[_Node] = [seq]
        if seq.kind != "seq":
            raise self._error(seq, "'models:' is an alias; edit it by hand")
        node = seq.items[self._model_index(entry.name)]  # type: ignore[index]
        chain.append(node)
        if entry.version is not None and node.kind == "map":
            versions = node.own("versions")
            if versions is None or versions[1].kind != "seq":
                raise self._error(node, f"model {entry.name!r}: 'versions:' is inherited "
                                        "or an alias; edit it by hand")
            chain.append(versions[1])
            node = versions[1].items[self._version_index(entry.name, entry.version)]  # type: ignore[index]
            chain.append(node)
        if node.kind != "map":
            raise self._error(node, f"model {entry.name!r} is an alias or not a mapping; "
                                    "edit it by hand")
        if for_edit:
            self._check_not_shared(chain, entry.name)
        return node, data

    def _check_not_shared(self, chain: list[_Node], what: str) -> None:
        for n in chain:
            if n.kind == "alias":
                raise self._error(n, f"{what}: the value to edit is a YAML alias (*...); "
                                     "editing it would change every place that uses it")
            if n.referenced:
                raise self._error(n, f"{what}: the value to edit has an anchor (&...) used "
                                     "elsewhere; editing it would change every place that uses it")

    def _walk(self, entry: ModelEntry, path: list[str]) -> tuple[_Node, Any, list[_Node]]:
        """Follow own keys from the entry; stops at the first missing key.
        Returns (deepest own mapping node, its data, chain of nodes)."""
        node, entry_data = self._resolve(entry, for_edit=True)
        data: Any = entry_data
        chain = [node]
        for key in path:
            pair = node.own(key) if node.kind == "map" else None
            if pair is None:
                break
            node, data = pair[1], data.get(key) if isinstance(data, dict) else None
            chain.append(node)
        return node, data, chain

    # ------------------------------------------------------------------ operations

    def _edit(self, apply: Any, expect: Any) -> bool:
        """Run one public edit; verify the result against the expected data."""
        before_text, before_data = self._text, self._data
        try:
            apply()
        except YamlEditError:
            self._text = before_text
            self._parse()
            raise
        if self._text == before_text:
            return False
        expected = copy.deepcopy(before_data)
        if expected is None:
            expected = {"version": 2, "models": []}
        expect(expected)
        if self._data != expected:
            self._text = before_text
            self._parse()
            raise self._error(None, "refusing the edit: the result would change more than "
                                    "intended (please report this as a bug)")
        return True

    def _expect_model(self, d: dict[str, Any], name: str) -> None:
        if not isinstance(d.get("models"), list):
            d["models"] = []
        d["models"].append({"name": name})

    def _expect_version(self, d: dict[str, Any], name: str, version: Any) -> None:
        model = self._models_data(d)[self._model_index(name, d)]  # type: ignore[index]
        if not isinstance(model.get("versions"), list):
            model["versions"] = []
        model["versions"].append({"v": version})

    def _create_model(self, name: str) -> None:
        item = {"name": name}
        root = self._root
        if root is None:  # empty file, or only comments
            lines = NEW_FILE_TEXT.rstrip("\n").split("\n")
            lines += self._block_seq([item], self._d, self._s)
            text = self._text
            if text.strip():
                self._insert_lines(len(text), lines)
            else:
                self._splice(0, len(text), self.newline.join(lines) + self.newline)
            return
        pair = root.own("models")
        if pair is None:
            if "models" in (self._data or {}):
                raise self._error(root, "'models:' is inherited through a merge key")
            self._insert_key(root, "models", [item])
        elif pair[1].is_null:
            self._fill_null(root, pair[0], pair[1], [item])
        else:
            self._check_not_shared([pair[1]], "models")
            self._append_items(pair[1], [item])

    def _create_version(self, name: str, version: Any) -> None:
        entry = ModelEntry(self, name)
        node, data = self._resolve(entry, for_edit=True)
        self._put_items(node, data, "versions", [{"v": version}], f"model {name!r}")

    def _put_items(self, node: _Node, data: Any, key: str, items: list[Any], what: str) -> None:
        """Append ``items`` to the list at ``node[key]``, creating it when missing."""
        pair = node.own(key)
        if pair is None:
            if isinstance(data, dict) and key in data:
                raise self._error(node, f"{what}: '{key}' is inherited through a merge key "
                                        "(<<); edit it by hand")
            self._insert_key(node, key, items)
            return
        value = pair[1]
        self._check_not_shared([value], what)
        if value.is_null:
            self._fill_null(node, pair[0], value, items)
        elif value.kind == "seq":
            self._append_items(value, items)
        elif value.kind == "scalar" and not value.is_block_scalar:
            # ``tags: a`` -> ``tags: [a, b]``: keep the old text when it is flow-safe
            old = self._text[value.start:value.end]
            if value.style is None and re.search(r"[,\[\]{}#]|: ", old):
                old = _scalar(value.value)
            quote = value.style if value.style in ("'", '"') else None
            new = ", ".join([old] + [_scalar(i, quote) for i in items])
            self._splice(value.start, value.end, f"[{new}]")
        else:
            raise self._error(value, f"{what}: '{key}' is not a list; edit it by hand")

    def _extend_list(self, entry: ModelEntry, path: list[str], items: list[Any]) -> None:
        node, data, chain = self._walk(entry, path[:-1])
        what = f"model {entry.name!r}"
        self._check_not_shared(chain[1:], what)
        if len(chain) < len(path):  # an intermediate mapping is missing
            missing = path[len(chain) - 1:]
            if isinstance(data, dict) and missing[0] in data:
                raise self._error(node, f"{what}: '{missing[0]}' is inherited through a merge "
                                        "key (<<); edit it by hand")
            value: Any = items
            for key in reversed(missing[1:]):
                value = {key: value}
            self._set_in(node, data, missing[0], value, what)
            return
        if node.kind != "map":
            if node.is_null:  # ``config:`` with nothing under it
                parent = chain[-2]
                pair = parent.own(path[-2])
                assert pair is not None
                self._fill_null(parent, pair[0], pair[1], {path[-1]: items})
                return
            raise self._error(node, f"{what}: '{path[-2]}' is not a mapping; edit it by hand")
        self._put_items(node, data, path[-1], items, what)

    def _set_in(self, node: _Node, data: Any, key: str, value: Any, what: str) -> None:
        """Set ``node[key] = value`` (merging mappings key by key)."""
        pair = node.own(key)
        if pair is None:
            if isinstance(data, dict) and key in data:
                raise self._error(node, f"{what}: '{key}' is inherited through a merge key "
                                        "(<<); edit it by hand")
            self._insert_key(node, key, value)
            return
        k, v = pair
        self._check_not_shared([v], what)
        current = data.get(key) if isinstance(data, dict) else None
        if isinstance(value, dict) and v.kind == "map":
            for sub_key, sub_value in value.items():
                # nodes are stale after a splice: re-find this mapping each time
                self._set_in_path(what, k, sub_key, sub_value)
            return
        if current == value and type(current) is type(value):
            return
        if v.is_null:
            self._fill_null(node, k, v, value)
        elif (v.kind == "scalar" and not v.is_block_scalar) or (v.kind != "alias" and v.flow):
            self._splice(v.start, v.end, _flow(value))
        else:
            raise self._error(v, f"{what}: cannot replace the block value of '{key}'; "
                                 "edit it by hand")

    def _set_in_path(self, what: str, key_node: _Node, key: str, value: Any) -> None:
        # Locate the mapping again by the position of its key, which does not move
        # for splices made inside that mapping (they happen after the key).
        target = self._map_after_key(key_node.start)
        if target is None:  # pragma: no cover - the structure was checked before
            raise self._error(key_node, f"{what}: lost track of the mapping being edited")
        node, data = target
        self._set_in(node, data, key, value, what)

    def _map_after_key(self, key_start: int) -> tuple[_Node, Any] | None:
        def find(node: _Node | None, data: Any) -> tuple[_Node, Any] | None:
            if node is None:
                return None
            if node.kind == "map":
                for k, v in node.pairs:
                    sub = data.get(k.value) if isinstance(data, dict) and k.kind == "scalar" \
                        else None
                    if k.start == key_start and k.kind == "scalar":
                        return (v, sub) if v.kind == "map" else None
                    if k.start < key_start and (v.kind in ("map", "seq")):
                        found = find(v, sub)
                        if found:
                            return found
            elif node.kind == "seq":
                for i, item in enumerate(node.items):
                    sub = data[i] if isinstance(data, list) and i < len(data) else None
                    found = find(item, sub)
                    if found:
                        return found
            return None

        return find(self._root, self._data)

    def _set(self, entry: ModelEntry, path: list[str], key: str, value: Any) -> None:
        node, data, chain = self._walk(entry, path)
        what = f"model {entry.name!r}"
        self._check_not_shared(chain[1:], what)
        if len(chain) <= len(path):  # ``config:`` missing
            if isinstance(data, dict) and path[len(chain) - 1] in data:
                raise self._error(node, f"{what}: '{path[len(chain) - 1]}' is inherited "
                                        "through a merge key (<<); edit it by hand")
            self._insert_key(node, path[len(chain) - 1], {key: value})
            return
        if node.is_null:
            parent = chain[-2]
            pair = parent.own(path[-1])
            assert pair is not None
            self._fill_null(parent, pair[0], pair[1], {key: value})
            return
        if node.kind != "map":
            raise self._error(node, f"{what}: '{path[-1]}' is not a mapping; edit it by hand")
        self._set_in(node, data, key, value, what)

    def _add_columns(self, entry: ModelEntry, cols: list[dict[str, Any]]) -> None:
        what = f"model {entry.name!r}"
        data = self._entry_data(entry) or {}
        found = data.get("columns")
        existing: list[Any] = found if isinstance(found, list) else []
        new: list[dict[str, Any]] = []
        for col in cols:
            name = col.get("name")
            match = _find_column(existing, name)
            if match is None:
                if _find_column(new, name) is None:
                    new.append(col)
                continue
            if match.get("data_type") is not None or col.get("data_type") is None:
                continue
            index = next(i for i, c in enumerate(existing) if c is match)
            node, _ = self._resolve(entry, for_edit=True)
            pair = node.own("columns")
            if pair is None or pair[1].kind != "seq":
                raise self._error(node, f"{what}: 'columns' is inherited or an alias; "
                                        "edit it by hand")
            self._check_not_shared([pair[1]], what)
            col_node = pair[1].items[index]
            self._check_not_shared([col_node], what)
            if col_node.kind != "map":
                raise self._error(col_node, f"{what}: column {name!r} is not a mapping")
            dt = col_node.own("data_type")
            if dt is not None:
                self._fill_null(col_node, dt[0], dt[1], col["data_type"])
            elif "data_type" in match:
                raise self._error(col_node, f"{what}: column {name!r} inherits 'data_type' "
                                            "through a merge key (<<); edit it by hand")
            else:
                self._insert_key(col_node, "data_type", col["data_type"])
        if new:
            node, data = self._resolve(entry, for_edit=True)
            self._put_items(node, data, "columns", new, what)


def _unsafe_message(exc: Exception, path: Path) -> str:
    """The reason of an :class:`~dbt_bulwark.project.fs.UnsafeWrite`, without repeating the path."""
    msg = str(exc)
    for prefix in (f"{path}: ", f"{path} "):
        if msg.startswith(prefix):
            return msg[len(prefix):] if prefix.endswith(": ") else msg[len(str(path)) + 1:]
    return msg


def _as_tags(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _find_column(columns: list[Any], name: Any) -> dict[str, Any] | None:
    if name is None:
        return None
    wanted = str(name).casefold()
    for col in columns:
        if isinstance(col, dict) and str(col.get("name")).casefold() == wanted:
            return col
    return None


def _deep_set(target: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict) and isinstance(target.get(key), dict):
        for k, v in value.items():
            _deep_set(target[key], k, v)
    else:
        target[key] = copy.deepcopy(value)


# --------------------------------------------------------------------------- fix guards

# loading findings of a YAML file that dbt would read but bulwark could not
_LOAD_FAILURES = frozenset({"BLK001", "BLK002", "BLK003", "BLK004", "BLK030"})
_NOT_PROPERTIES = frozenset({"dbt_project.yml", "packages.yml", "dependencies.yml",
                             "selectors.yml", "package-lock.yml", "profiles.yml", "bulwark.yml"})


def unloaded_properties(project: Any, repo_root: str | os.PathLike[str],
                        name: str) -> tuple[str, int, str] | None:
    """A properties file of ``project`` that failed to load and could describe the model
    ``name``, as (repo path, line, why), or None.

    A fix must not describe a model while such a file exists: the entry it would add
    becomes a second one ("described twice", a dbt parse error) once the user repairs
    the file. "Could describe" is decided on the file's text: it mentions ``name`` as a
    word (a file that cannot be read at all could describe any model)."""
    root = str(getattr(project, "root", "") or "")
    word = re.compile(r"(?<![\w.])" + re.escape(name) + r"(?![\w])")
    for f in getattr(project, "findings", []):
        path = str(f.path)
        if f.code not in _LOAD_FAILURES or not path.endswith((".yml", ".yaml")):
            continue
        if path.rsplit("/", 1)[-1] in _NOT_PROPERTIES or "dbt_packages/" in path \
                or (root and not path.startswith(root.rstrip("/") + "/")):
            continue
        try:
            text = Path(repo_root, path).read_bytes().decode("utf-8", "replace")
        except OSError:
            return path, f.line, "cannot be read"
        if word.search(text):
            return path, f.line, f"does not load ({f.message})"
    return None
