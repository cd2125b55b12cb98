"""The macros of a project and its packages, indexed by name without running Jinja.

Only ``jinja_env`` compiles them (when a node is rendered); indexing is a regular
expression over each macro file, so loading a project does not import jinja2.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

MACRO_DEF_RE = re.compile(r"{%-?\s*(macro|test|materialization)\s+([A-Za-z_][\w]*)", re.S)

# the blocks dbt reads from a macro file (dbt.parser.macros: everything else is dropped)
_BLOCK_KINDS = ("macro", "materialization", "test", "data_test", "docs")
_TAG_RE = re.compile(r"{#.*?#}|{%-?\s*(end)?(\w+)\b.*?-?%}", re.S)


def blank(text: str) -> str:
    """``text`` as spaces, its newlines kept (lines and columns of the rest do not move)."""
    return re.sub(r"[^\n]", " ", text)


def top_level_blocks(text: str) -> str:
    """``text`` with everything outside its top-level macro-like blocks blanked.

    dbt reads a macro file as its top-level ``macro``/``materialization``/``test``/
    ``data_test``/``docs`` blocks only: prose, ``{% comment %}`` and stray tags around
    them are dropped, never rendered. Blanked characters become spaces (newlines are
    kept), so lines and columns of what remains are unchanged. A block without its end
    tag runs to the end of the file (its syntax error is still reported).
    """
    if "{" not in text:
        return "".join(c if c == "\n" else " " for c in text)
    return blank_outside(text, _top_level_spans(text))


def blank_outside(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` blanked outside ``spans`` (see :func:`blank`)."""
    out: list[str] = []
    pos = 0
    for a, b in spans:
        out.append(blank(text[pos:a]))
        out.append(text[a:b])
        pos = b
    out.append(blank(text[pos:]))
    return "".join(out)


def _top_level_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level block of ``text`` (see :func:`top_level_blocks`)."""
    keep: list[tuple[int, int]] = []
    depth, kind, start = 0, "", 0
    raw = False
    for m in _TAG_RE.finditer(text):
        tag = m.group(2)
        if tag is None:           # a Jinja comment
            continue
        if raw:
            raw = not (m.group(1) and tag == "raw")
            continue
        if tag == "raw" and not m.group(1):
            raw = depth > 0       # {% raw %} inside a block hides its tags
            continue
        if depth == 0:
            if not m.group(1) and tag in _BLOCK_KINDS:
                depth, kind, start = 1, tag, m.start()
            continue
        if tag == kind:
            depth += -1 if m.group(1) else 1
            if depth == 0:
                keep.append((start, m.end()))
    if depth:
        keep.append((start, len(text)))
    return keep


@functools.lru_cache(maxsize=8192)
def _scan(text: str) -> tuple[str, tuple[tuple[str, int, tuple[int, int] | None], ...]]:
    """A macro file's top-level blocks (:func:`top_level_blocks`) and the macros they
    define, with their lines and the span of the block each one opens; remembered for
    the run (the head and its git base share most macro files).

    The span is None (the file is compiled whole) for a macro defined inside another
    block, for a name defined twice in the file (Jinja's last definition wins), and in a
    file that defines a ``_private`` macro: the file's own macros call it by name, and a
    compiled file exports no such name to the macros of other files."""
    if "{" in text:
        found_spans = _top_level_spans(text)
        spans = {a: (a, b) for a, b in found_spans}
        text = blank_outside(text, found_spans)
    else:
        spans, text = {}, top_level_blocks(text)
    found = []
    for m in MACRO_DEF_RE.finditer(text):
        kind, name = m.group(1), m.group(2)
        full = name if kind == "macro" else (f"test_{name}" if kind == "test" else name)
        found.append((full, text.count("\n", 0, m.start()) + 1, spans.get(m.start())))
    names = [f[0] for f in found]
    whole = any(n.startswith("_") for n in names)
    return text, tuple((full, line, None if whole or names.count(full) > 1 else span)
                       for full, line, span in found)


@dataclass
class MacroDef:
    name: str           # as called: "my_macro", "test_unique", "materialization_table_default"
    package: str
    path: str           # repo-relative path of the file
    line: int
    text: str           # the whole file text (its top-level blocks)
    # the span of the block that defines it in ``text``: a macro is compiled alone, as dbt
    # does (None: compiled with its file, see _scan)
    block: tuple[int, int] | None = None

    def source(self) -> str:
        """The text compiled for this macro: its own block, on its own lines (newlines
        before it), else the whole file."""
        if self.block is None:
            return self.text
        a, b = self.block
        return "\n" * (self.line - 1) + self.text[a:b]


@dataclass
class MacroIndex:
    """Every macro of a project and its packages, by package and by name."""

    root_package: str
    by_package: dict[str, dict[str, MacroDef]] = field(default_factory=dict)
    _modules: dict[tuple[str, str, Any], Any] = field(default_factory=dict, repr=False)

    def add_file(self, package: str, path: str, text: str) -> None:
        pkg = self.by_package.setdefault(package, {})
        text, defined = _scan(text)
        for full, line, block in defined:
            pkg.setdefault(full, MacroDef(full, package, path, line, text, block))

    def find(self, name: str, package: str | None = None) -> MacroDef | None:
        if package:
            return self.by_package.get(package, {}).get(name)
        root = self.by_package.get(self.root_package, {})
        if name in root:
            return root[name]
        for pkg, macros in self.by_package.items():
            if pkg != self.root_package and name in macros:
                return macros[name]
        return None

    def names(self) -> set[str]:
        out: set[str] = set()
        for macros in self.by_package.values():
            out.update(macros)
        return out
