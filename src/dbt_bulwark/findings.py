"""One finding type, its output formats and the exit-code convention.

Every check produces :class:`Finding` objects; :func:`report` prints them in the
requested format and :func:`exit_code` turns them into 0 (clean) / 1 (findings).
Usage and configuration errors are raised as :class:`UsageError` and exit 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TextIO

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

SEVERITIES = ("error", "warning", "info")
FORMATS = ("text", "json", "github")


class UsageError(Exception):
    """Bad arguments or bad configuration: printed as one line, exit code 2."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)


@dataclass(frozen=True, order=True)
class Finding:
    """A problem at a place the user must edit.

    ``line`` and ``col`` are 1-based; 0 means "the whole file" / unknown.
    ``code`` is stable (documented in the README), e.g. ``BLK101``.
    """

    path: str
    line: int
    col: int
    code: str
    message: str
    severity: str = "error"
    hint: str = ""
    node: str = ""  # unique_id of the node concerned, when there is one
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    # already present at the base revision (regression.py): printed, not counted by default
    existing: bool = field(default=False, compare=False)

    def text(self) -> str:
        labels = "".join(f"[{x}] " for x in (
            self.severity if self.severity != "error" else "",
            "existing" if self.existing else "") if x)
        out = f"{self.path}:{self.line}:{self.col}: {self.code} {labels}{self.message}"
        if self.hint:
            out += f"\n    hint: {self.hint}"
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["extra"]:
            d.pop("extra")
        return d


def _github_escape(value: str, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(set(findings), key=lambda f: (f.path, f.line, f.col, f.code, f.message))


def report(findings: Iterable[Finding], fmt: str = "text", out: TextIO | None = None,
           summary: str = "", coverage: list[dict] | None = None) -> None:
    """Print findings in one of :data:`FORMATS` (json also carries ``coverage``)."""
    out = out or sys.stdout
    items = sort_findings(findings)
    if fmt == "json":
        doc: dict = {"findings": [f.to_dict() for f in items]}
        if coverage is not None:
            doc["coverage"] = coverage
        json.dump(doc, out, indent=2)
        out.write("\n")
        return
    if fmt == "github":
        level = {"error": "error", "warning": "warning", "info": "notice"}
        for f in items:
            props = f"file={_github_escape(f.path, True)}"
            if f.line:
                props += f",line={f.line}"
            if f.col:
                props += f",col={f.col}"
            props += f",title={_github_escape(f.code, True)}"
            msg = ("[existing] " if f.existing else "") + f.message + \
                (f" (hint: {f.hint})" if f.hint else "")
            out.write(f"::{level.get(f.severity, 'error')} {props}::{_github_escape(msg)}\n")
        return
    for f in items:
        out.write(f.text() + "\n")
    if summary:
        out.write(summary + "\n")


def exit_code(findings: Iterable[Finding], fail_on: str = "error",
              include_existing: bool = False) -> int:
    """1 when any finding is at or above ``fail_on`` severity, else 0.

    Findings already present at the base revision (``existing``) count only with
    ``include_existing`` (``--all-findings``, policy ``fail_on_existing``).
    """
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    limit = rank.get(fail_on, 0)
    return EXIT_FINDINGS if any(rank.get(f.severity, 0) <= limit for f in findings
                                if include_existing or not f.existing) else EXIT_OK
