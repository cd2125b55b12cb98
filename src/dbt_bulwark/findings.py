"""One finding type, its output formats and the exit-code convention.

Every check produces :class:`Finding` objects; :func:`report` prints them in the
requested format and :func:`exit_code` turns them into 0 (clean) / 1 (findings).
Usage and configuration errors are raised as :class:`UsageError` and exit 2.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TextIO

from dbt_bulwark.codes import FIXABLE

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2

SEVERITIES = ("error", "warning", "info")
FORMATS = ("text", "json", "github", "sarif")


class UsageError(Exception):
    """Bad arguments or bad configuration: printed as one line, exit code 2."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.path = path
        self.line = line
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(where + message)


_REQUIRED_RE = re.compile(r"Required keyword: '\w+' missing for <class '(?:[\w.]*\.)?(\w+)'>")
_CLASS_RE = re.compile(r"<class '(?:[\w.]*\.)?(\w+)'>")
_UNDEFINED_RE = re.compile(r"'?(?:[\w.]+\.)?\w*Undefined object'?|\b\w*Undefined\b")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_SQL_WORDS = {"Paren": "parenthesis", "Where": "WHERE clause", "Having": "HAVING clause",
              "Join": "JOIN", "Select": "SELECT", "From": "FROM clause", "Order": "ORDER BY",
              "Group": "GROUP BY", "Case": "CASE expression", "If": "CASE branch"}


def _words(name: str) -> str:
    return _SQL_WORDS.get(name) or re.sub(r"(?<!^)(?=[A-Z])", " ", name).upper()


def humane(message: str) -> str:
    """A message without the internals of the libraries it came from: sqlglot class
    reprs (``<class 'sqlglot.expressions.query.Where'>``), bulwark's Jinja stand-ins
    (``PermissiveUndefined object``), terminal escapes."""
    message = _ANSI_RE.sub("", message)
    message = _REQUIRED_RE.sub(lambda m: f"incomplete {_words(m.group(1))}", message)
    message = _CLASS_RE.sub(lambda m: _words(m.group(1)), message)
    message = _UNDEFINED_RE.sub("an undefined value", message)
    return message


@dataclass(frozen=True, order=True)
class Finding:
    """A problem at a place the user must edit.

    ``line`` and ``col`` are 1-based; line 0 means "the whole file" (its col is 0 too).
    A finding on a known line without a known column gets column 1, so one place is
    written the same way by every hook. ``code`` is stable (documented in the README),
    e.g. ``BLK101``. ``fixable``: the hook's ``--fix`` repairs it (default: by code,
    :data:`dbt_bulwark.codes.FIXABLE`).
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
    fixable: bool | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if "<class '" in self.message or "Undefined" in self.message or "\x1b[" in self.message:
            object.__setattr__(self, "message", humane(self.message))
        if self.line > 0 and self.col < 1:
            object.__setattr__(self, "col", 1)
        elif self.line <= 0 and self.col:
            object.__setattr__(self, "col", 0)
        if self.fixable is None:
            object.__setattr__(self, "fixable", self.code in FIXABLE)

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


def markdown_cell(value: object) -> str:
    """Text for one cell of a Markdown table (PR comments, step summaries): a ``|`` is
    escaped and line breaks become spaces, so the cell never ends the row."""
    text = str(value).replace("|", "\\|")
    return " ".join(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(set(findings), key=lambda f: (f.path, f.line, f.col, f.code, f.message))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def totals_line(findings: Iterable[Finding]) -> str:
    """``Found 3 errors, 1 warning (2 fixable with --fix)`` / ``All checks passed``.

    Findings already present at the git base (``existing``) do not block by default, so
    they are counted apart: ``Found 1 error, 0 warnings (+ 2 errors, 1 warning already at
    the base)`` / ``No new findings (2 errors already at the base)``."""
    items = list(findings)
    new = [f for f in items if not f.existing]
    old = [f for f in items if f.existing and f.severity != "info"]
    infos = sum(1 for f in items if f.severity == "info")
    errors = sum(1 for f in new if f.severity == "error")
    warnings = sum(1 for f in new if f.severity == "warning")
    at_base = ""
    if old:
        old_errors = sum(1 for f in old if f.severity == "error")
        at_base = (f"{_plural(old_errors, 'error')}, "
                   f"{_plural(len(old) - old_errors, 'warning')} already at the base")
    if not errors and not warnings:
        if at_base:
            return f"No new findings ({at_base}" + (f"; {infos} info)" if infos else ")")
        return "All checks passed" + (f" ({infos} info)" if infos else "")
    parts = [_plural(errors, "error"), _plural(warnings, "warning")]
    if infos:
        parts.append(f"{infos} info")
    fixable = sum(1 for f in new if f.fixable and f.severity != "info")
    tail = f" ({fixable} fixable with --fix)" if fixable else ""
    if at_base:
        tail += f" (+ {at_base})"
    return f"Found {', '.join(parts)}{tail}"


def fingerprint(f: Finding) -> str:
    """Stable across runs and line moves: the code, file, node and message, not the line."""
    import hashlib

    key = "\0".join((f.code, f.path, f.node, f.message))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def to_sarif(findings: Iterable[Finding]) -> dict:
    """A SARIF 2.1.0 log for GitHub code scanning (``--format sarif``)."""
    from dbt_bulwark import __version__
    from dbt_bulwark.codes import CODES, REPO_URL, help_uri

    items = sort_findings(findings)
    codes = sorted({f.code for f in items})
    index = {c: i for i, c in enumerate(codes)}
    level = {"error": "error", "warning": "warning", "info": "note"}
    rules = []
    for code in codes:
        desc = CODES.get(code, ("common", code))[1]
        rules.append({"id": code, "name": code,
                      "shortDescription": {"text": desc},
                      "helpUri": help_uri(code)})
    results = []
    for f in items:
        message = f.message + (f"\nhint: {f.hint}" if f.hint else "")
        result: dict = {
            "ruleId": f.code, "ruleIndex": index[f.code],
            "level": level.get(f.severity, "error"),
            "message": {"text": message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": f.path, "uriBaseId": "%SRCROOT%"},
                "region": {"startLine": max(f.line, 1), "startColumn": max(f.col, 1)}}}],
            "partialFingerprints": {"bulwarkFinding/v1": fingerprint(f)},
            "baselineState": "unchanged" if getattr(f, "existing", False) else "new",
        }
        if f.node:
            result["properties"] = {"node": f.node}
        results.append(result)
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "dbt-bulwark", "version": __version__,
                                "semanticVersion": __version__,
                                "informationUri": REPO_URL, "rules": rules}},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }


def report(findings: Iterable[Finding], fmt: str = "text", out: TextIO | None = None,
           summary: str = "", totals: bool = False,
           coverage: list[dict] | None = None) -> None:
    """Print findings in one of :data:`FORMATS`; ``totals``: end the text output with
    :func:`totals_line`; json also carries ``coverage``."""
    out = out or sys.stdout
    items = sort_findings(findings)
    if fmt == "sarif":
        json.dump(to_sarif(items), out, indent=2)
        out.write("\n")
        return
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
    if totals:
        out.write(totals_line(items) + "\n")


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
