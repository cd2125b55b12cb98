"""The macros of a project and its packages, indexed by name without running Jinja.

Only ``jinja_env`` compiles them (when a node is rendered); indexing is a regular
expression over each macro file, so loading a project does not import jinja2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MACRO_DEF_RE = re.compile(r"{%-?\s*(macro|test|materialization)\s+([A-Za-z_][\w]*)", re.S)


@dataclass
class MacroDef:
    name: str           # as called: "my_macro", "test_unique", "materialization_table_default"
    package: str
    path: str           # repo-relative path of the file
    line: int
    text: str           # the whole file text (macros are compiled per file)


@dataclass
class MacroIndex:
    """Every macro of a project and its packages, by package and by name."""

    root_package: str
    by_package: dict[str, dict[str, MacroDef]] = field(default_factory=dict)
    _modules: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def add_file(self, package: str, path: str, text: str) -> None:
        pkg = self.by_package.setdefault(package, {})
        for m in MACRO_DEF_RE.finditer(text):
            kind, name = m.group(1), m.group(2)
            full = name if kind == "macro" else (f"test_{name}" if kind == "test" else name)
            line = text.count("\n", 0, m.start()) + 1
            pkg.setdefault(full, MacroDef(full, package, path, line, text))

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
