"""Inline suppressions and code selection, applied in one place for every hook.

Comments (as ruff's and sqlfluff's ``noqa``)::

    select id, amount -- bulwark: ignore[BLK140]        that line
    -- bulwark: ignore[BLK140, BLK2]                    alone on a line: it and the next line
    {# bulwark: ignore[BLK140] #}                       Jinja comment, same rules
    -- bulwark: ignore-file[BLK131]                     anywhere: the whole file
    - name: orders  # bulwark: ignore[BLK301]           YAML entry line: the whole entry
    # bulwark: ignore                                   no codes: every code (BLK040 warning)

Codes may be prefixes (``BLK1``). A suppression that suppresses nothing is reported
(BLK041, as ruff's RUF100) when its file was checked and its codes are ones the
running hook emits. Then ``select`` / ``ignore`` / ``per_path_ignores`` (``--select``,
``--ignore``, and ``bulwark.yml`` of the finding's project) drop codes.

:func:`apply` is called by :func:`dbt_bulwark.runner.finish`, by the static layers of
``bulwark ci`` / ``bulwark check`` and by ``check-schema-diff``; it reads files
through the workspace's file source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from dbt_bulwark.codes import CODES, HOOK_FAMILIES, matches
from dbt_bulwark.findings import Finding

_DIRECTIVE = r"bulwark:\s*(?P<kind>ignore-file|ignore)(?![\w-])(?:\[(?P<codes>[^\]]*)\])?"
_SQL_RE = re.compile(r"(?:--|\{#-?)\s*" + _DIRECTIVE)
_YAML_RE = re.compile(r"#\s*" + _DIRECTIVE)
_ENTRY_RE = re.compile(r"^(?P<indent>\s*)-\s+name\s*:")
_CODE_RE = re.compile(r"^BLK\d{0,3}$")
SQL_EXT = (".sql",)
YAML_EXT = (".yml", ".yaml")
WHOLE_FILE = 1 << 30


@dataclass
class Directive:
    path: str
    line: int                  # 1-based line of the comment
    col: int                   # 1-based column of the comment
    kind: str                  # "ignore" | "ignore-file"
    codes: tuple[str, ...]     # () = every code
    first: int                 # lines covered (inclusive)
    last: int
    bad: tuple[str, ...] = ()  # entries that are no code
    used: set[str] = field(default_factory=set)

    @property
    def text(self) -> str:
        inner = f"[{', '.join(self.codes)}]" if self.codes else ""
        return f"bulwark: {self.kind}{inner}"

    def covers(self, f: Finding) -> bool:
        if self.kind == "ignore-file":
            return True
        return f.line > 0 and self.first <= f.line <= self.last

    def match(self, code: str) -> str | None:
        if not self.codes:
            return "*"
        for c in self.codes:
            if code.startswith(c):
                return c
        return None


def _entry_end(lines: list[str], start: int, indent: int) -> int:
    """Last line (1-based) of the YAML list entry that begins on line ``start``."""
    last = start
    for i in range(start, len(lines)):          # lines[i] is line i + 1
        raw = lines[i]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        ind = len(raw) - len(raw.lstrip())
        if ind < indent or ind == indent and stripped.startswith("-"):
            break
        if ind == indent and not stripped.startswith("-"):
            break
        last = i + 1
    return last


def parse(path: str, text: str) -> list[Directive]:
    """Every suppression comment of one file (SQL or YAML, by extension)."""
    yaml = path.endswith(YAML_EXT)
    regex = _YAML_RE if yaml else _SQL_RE
    lines = text.splitlines()
    out: list[Directive] = []
    for n, raw in enumerate(lines, start=1):
        if "bulwark:" not in raw:
            continue
        for m in regex.finditer(raw):
            codes: list[str] = []
            bad: list[str] = []
            if m.group("codes") is not None:
                for item in re.split(r"[,\s]+", m.group("codes")):
                    code = item.strip().upper()
                    if not code:
                        continue
                    known = _CODE_RE.match(code) and any(c.startswith(code) for c in CODES)
                    (codes if known else bad).append(code)
                if not codes and not bad:
                    bad.append("[]")
            kind = m.group("kind")
            before = raw[:m.start()]
            alone = not before.strip()
            first, last = n, n
            if kind == "ignore-file":
                first, last = 0, WHOLE_FILE
            else:
                target = n + 1 if alone else n
                last = target if alone else n
                if yaml and target <= len(lines):
                    code_part = before if not alone else lines[target - 1]
                    em = _ENTRY_RE.match(code_part)
                    if em:
                        last = max(last, _entry_end(lines, target, len(em.group("indent"))))
            out.append(Directive(path, n, m.start() + 1, kind, tuple(codes), first, last,
                                 tuple(bad)))
    return out


def read_directives(fs: Any, path: str) -> list[Directive]:
    if not path.endswith(SQL_EXT + YAML_EXT):
        return []
    try:
        data = fs.read_bytes(path)
    except (OSError, ValueError):
        return []
    if b"bulwark:" not in data:
        return []
    return parse(path, data.decode("utf-8", errors="replace"))


def _relevant(code: str, families: tuple[str, ...] | None) -> bool:
    """A directive's code is one the running hook could report (prefixes overlap)."""
    if families is None:
        return False
    return any(code.startswith(f) or f.startswith(code) for f in families)


def _families(hook: str | None, with_loader: bool) -> tuple[str, ...] | None:
    fams = HOOK_FAMILIES.get(hook or "")
    if fams is None:
        return None
    return (*fams, "BLK0") if with_loader else fams


def codes_arg(values: Iterable[str] | None) -> list[str]:
    """``--select`` / ``--ignore`` values (repeatable, comma-separated) as codes."""
    from dbt_bulwark.codes import check_code_list
    from dbt_bulwark.findings import UsageError

    out: list[str] = []
    for v in values or []:
        try:
            out.extend(check_code_list(v))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return out


def select_filter(findings: list[Finding], policy_for: Callable[[str], Any],
                  project_root_for: Callable[[str], str | None],
                  select: list[str] | None = None, ignore: list[str] | None = None
                  ) -> list[Finding]:
    """Drop codes not selected / ignored (command line first, then the finding's
    project policy: ``select``, ``ignore``, ``per_path_ignores``)."""
    out = []
    for f in findings:
        policy = policy_for(f.path)
        chosen = select if select else (policy.select if policy is not None else None)
        if chosen and not matches(f.code, chosen):
            continue
        if ignore and matches(f.code, ignore):
            continue
        if policy is not None:
            if matches(f.code, policy.ignore or []):
                continue
            per_path = policy.per_path_ignores or {}
            if per_path:
                root = project_root_for(f.path) or ""
                rel = f.path[len(root) + 1:] if root and f.path.startswith(root + "/") \
                    else f.path
                if any(matches(f.code, codes) and (fnmatchcase(f.path, glob)
                                                   or fnmatchcase(rel, glob))
                       for glob, codes in per_path.items()):
                    continue
        out.append(f)
    return out


def checked_files(ws: Any, files: list[str], all_files: bool) -> set[str]:
    """SQL and YAML files a run checked: the changed ones, or every one (--all-files)."""
    if not all_files:
        return {f for f in files if f.endswith(SQL_EXT + YAML_EXT)}
    out: set[str] = set()
    for root in ws.project_roots:
        out.update(p for p in ws.fs.walk(root) if p.endswith(SQL_EXT + YAML_EXT))
    return out


def apply(findings: list[Finding], ws: Any, *, files: list[str], all_files: bool,
          hook: str | None = None, report_directives: bool = True,
          select: list[str] | None = None, ignore: list[str] | None = None,
          with_loader: bool = True) -> list[Finding]:
    """Findings left after inline suppressions and code selection, plus the reports
    about suppressions (BLK040 bare, BLK041 unused/unknown code).

    ``hook`` names the hook or ci layer (its code families decide which unused
    suppressions it may report); ``report_directives``: report bare suppressions and
    unknown codes (once per run: the first static layer of ``bulwark ci``).
    """
    from dbt_bulwark.policy import load_policy

    checked = checked_files(ws, files, all_files)
    paths = {f.path for f in findings} | checked
    directives: dict[str, list[Directive]] = {p: read_directives(ws.fs, p) for p in sorted(paths)}
    kept: list[Finding] = []
    for f in findings:
        hit = False
        for d in directives.get(f.path, ()):
            if d.covers(f):
                c = d.match(f.code)
                if c is not None:
                    d.used.add(c)
                    hit = True
        if not hit:
            kept.append(f)
    families = _families(hook, with_loader)
    for path in sorted(checked):
        for d in directives.get(path, ()):
            where = (d.path, d.line, d.col)
            if report_directives and not d.codes and not d.bad:
                kept.append(Finding(*where, "BLK040",
                                    f"`{d.text}` without codes suppresses every finding here",
                                    "warning", hint="name the codes, e.g. "
                                    f"`bulwark: {d.kind}[BLK140]`"))
            if report_directives and d.bad:
                kept.append(Finding(*where, "BLK041",
                                    f"`bulwark: {d.kind}` names no known code: "
                                    f"{', '.join(d.bad)}", "warning",
                                    hint="codes look like BLK140, prefixes like BLK1 "
                                         "(docs/hooks/*.md)"))
            unused = [c for c in d.codes if c not in d.used and _relevant(c, families)]
            if unused:
                kept.append(Finding(*where, "BLK041",
                                    f"unused suppression: {', '.join(unused)} "
                                    f"{'is' if len(unused) == 1 else 'are'} not reported here",
                                    "warning", hint="remove it (or the unused codes) from "
                                                    f"`{d.text}`"))
    policies: dict[str | None, Any] = {}

    def policy_for(path: str) -> Any:
        root = ws.project_root_for(path)
        if root not in policies:
            policies[root] = load_policy(ws.fs, root)
        return policies[root]

    return select_filter(kept, policy_for, ws.project_root_for, select, ignore)
