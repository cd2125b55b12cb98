"""dbt node selection syntax (the subset every policy uses), evaluated on a Project.

Supported: union by space, intersection by comma, graph operators ``+x``, ``x+``,
``N+x``, ``x+N``, ``@x``; methods ``fqn`` (the default: names, dotted paths,
wildcards), ``tag:``, ``path:``, ``file:``, ``package:``, ``config.<key>:``,
``access:``, ``group:``, ``exposure:``, ``source:``, ``resource_type:``,
``version:``, ``unique_id:``. An unknown method is a :class:`UsageError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

from dbt_bulwark.findings import UsageError
from dbt_bulwark.project.model import Node, Project, Resource

_ATOM_RE = re.compile(r"^(?P<at>@)?(?:(?P<pdepth>\d*)(?P<parents>\+))?(?P<body>.*?)"
                      r"(?:(?P<children>\+)(?P<cdepth>\d*))?$")
METHODS = ("fqn", "tag", "path", "file", "package", "config", "access", "group", "exposure",
           "source", "resource_type", "version", "unique_id")


def _project_relative(project: Project, res: Resource) -> str:
    return res.original_file_path


def _is_selected(fqn: list[str], value: str, versioned: bool) -> bool:
    """dbt's fqn matching: the leaf name, dotted prefixes, and shell wildcards."""
    if not fqn:
        return False
    if versioned and len(fqn) >= 2:
        if fqn[-2] == value or "_".join(fqn[-2:]) == "_".join(value.split(".")[-2:]):
            return True
    elif fqn[-1] == value:
        return True
    flat = [item for seg in fqn for item in seg.split(".")]
    parts = value.split(".")
    if len(flat) < len(parts):
        return False
    for i, part in enumerate(parts):
        if any(w in part for w in "*?[]"):
            if fnmatchcase(".".join(flat[i:]), ".".join(parts[i:])):
                return True
            if "." not in value:
                return fnmatchcase(fqn[-2] if versioned else fqn[-1], value)
            return False
        if flat[i] != part:
            return False
    return True


def _fqn_match(fqn: list[str], value: str, versioned: bool) -> bool:
    """Match with or without the package name, as dbt's ``node_is_match``."""
    return _is_selected(fqn, value, versioned) or _is_selected(fqn[1:], value, versioned)


def _config_value(res: Resource, dotted: str) -> Any:
    value: Any = getattr(res, "config", {})
    for key in dotted.split("."):
        if isinstance(value, dict):
            value = value.get(key)
        else:
            return None
    return value


def _matches_value(actual: Any, wanted: str) -> bool:
    if isinstance(actual, list):
        return any(_matches_value(a, wanted) for a in actual)
    if isinstance(actual, bool):
        return str(actual).lower() == wanted.lower()
    if actual is None:
        return False
    return fnmatchcase(str(actual), wanted)


def _method_match(project: Project, res: Resource, method: str, arg: str | None,
                  value: str) -> bool:
    rt = res.resource_type
    if method == "fqn":
        if rt == "source":
            return False
        return _fqn_match(res.fqn, value, getattr(res, "version", None) is not None)
    if method == "tag":
        return any(fnmatchcase(t, value) for t in res.tags)
    if method == "path":
        rel = _project_relative(project, res)
        value = value.rstrip("/")
        return rel == value or rel.startswith(value + "/") or fnmatchcase(rel, value)
    if method == "file":
        return fnmatchcase(_project_relative(project, res).rsplit("/", 1)[-1], value) or \
            fnmatchcase(_project_relative(project, res).rsplit("/", 1)[-1].rsplit(".", 1)[0], value)
    if method == "package":
        return fnmatchcase(res.package_name, value)
    if method == "config":
        return bool(arg) and _matches_value(_config_value(res, arg or ""), value)
    if method == "access":
        return rt == "model" and isinstance(res, Node) and res.access == value
    if method == "group":
        return _matches_value(getattr(res, "config", {}).get("group"), value)
    if method == "exposure":
        return rt == "exposure" and fnmatchcase(res.name, value)
    if method == "source":
        if rt != "source":
            return False
        parts = value.split(".")
        names = [res.package_name, getattr(res, "source_name", ""), res.name]
        if len(parts) == 1:
            return fnmatchcase(names[1], parts[0])
        if len(parts) == 2:
            return fnmatchcase(names[1], parts[0]) and fnmatchcase(names[2], parts[1])
        return all(fnmatchcase(n, p) for n, p in zip(names, parts, strict=False))
    if method == "resource_type":
        return rt == value
    if method == "unique_id":
        return res.unique_id == value
    if method == "version":
        if not isinstance(res, Node) or res.version is None:
            return False
        if value == "latest":
            return str(res.version) == str(res.latest_version)
        if value == "old":
            return str(res.version) != str(res.latest_version)
        return str(res.version) == value
    raise UsageError(f"unknown selector method {method!r}; known: {', '.join(METHODS)}")


def _parse_method(body: str) -> tuple[str, str | None, str]:
    if ":" in body:
        head, value = body.split(":", 1)
        method, _, arg = head.partition(".")
        if method not in METHODS:
            raise UsageError(f"unknown selector method {head!r} in {body!r}; known: "
                             f"{', '.join(METHODS)}")
        return method, arg or None, value
    if "/" in body or body.endswith((".sql", ".py", ".csv")):
        return ("path" if "/" in body else "file"), None, body
    return "fqn", None, body


def _select_atom(project: Project, atom: str, universe: list[Resource],
                 with_tests: bool = True) -> set[str]:
    m = _ATOM_RE.match(atom)
    if not m or not m.group("body"):
        raise UsageError(f"cannot parse selector {atom!r}")
    method, arg, value = _parse_method(m.group("body"))
    base = {r.unique_id for r in universe if _method_match(project, r, method, arg, value)}
    out = set(base)
    if m.group("at"):
        for uid in base:
            desc = project.descendants(uid, include_tests=with_tests)
            out |= desc
            for d in desc | {uid}:
                out |= project.ancestors(d)
        return out
    if m.group("parents"):
        depth = int(m.group("pdepth")) if m.group("pdepth") else None
        for uid in base:
            out |= project.ancestors(uid, depth)
    if m.group("children"):
        depth = int(m.group("cdepth")) if m.group("cdepth") else None
        for uid in base:
            out |= project.descendants(uid, depth, include_tests=with_tests)
    return out


TEST_TYPES = frozenset({"test", "unit_test"})


def _with_tests(project: Project, chosen: set[str], tests: list[Resource], mode: str) -> set[str]:
    """Add the tests attached to ``chosen`` (dbt's indirect selection)."""
    if mode == "empty":
        return chosen
    out = set(chosen)
    ancestors: set[str] = set()
    if mode == "buildable":
        for uid in chosen:
            ancestors |= project.ancestors(uid)
    for test in tests:
        parents = set(getattr(test, "depends_on", []) or [])
        if not parents:
            continue
        if mode == "eager" and parents & chosen or \
                mode == "cautious" and parents <= chosen or \
                mode == "buildable" and parents <= chosen | ancestors and parents & chosen:
            out.add(test.unique_id)
    return out


def _evaluate(project: Project, terms: list[str], universe: list[Resource],
              with_tests: bool = True) -> set[str]:
    chosen: set[str] = set()
    for term in terms:
        parts = [p for p in term.split(",") if p]
        sets = [_select_atom(project, p, universe, with_tests) for p in parts]
        if sets:
            chosen |= set.intersection(*sets)
    return chosen


def select(project: Project, selector: str | Iterable[str] | None,
           exclude: str | Iterable[str] | None = None,
           resource_types: Iterable[str] | None = None,
           indirect_selection: str = "empty") -> list[Resource]:
    """Resources of ``project`` matched by a dbt selector (None = everything).

    With ``indirect_selection`` eager, cautious or buildable, data tests attached to
    selected nodes are added the way dbt does it (``bulwark ls`` uses eager, like
    ``dbt ls``). The default for policies, ``empty``, returns no test nodes unless
    ``resource_types`` asks for them.
    """
    types = set(resource_types or [])
    with_tests = indirect_selection != "empty" or bool(types & TEST_TYPES)
    universe = list(project.resources(include_tests=with_tests))
    tests = [r for r in universe if r.resource_type in TEST_TYPES]
    selectors = _split(selector)
    if selectors:
        chosen = _with_tests(project, _evaluate(project, selectors, universe, with_tests), tests,
                             indirect_selection)
    else:
        chosen = {r.unique_id for r in universe}
    excluded = _split(exclude)
    if excluded:
        chosen -= _with_tests(project, _evaluate(project, excluded, universe, with_tests), tests,
                              "eager" if indirect_selection != "empty" else "empty")
    if indirect_selection == "empty" and not types & TEST_TYPES:
        chosen = {u for u in chosen if not u.startswith(("test.", "unit_test."))}
    return [r for r in universe if r.unique_id in chosen and (not types or r.resource_type in types)]


def _split(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    out: list[str] = []
    for v in value:
        out.extend(str(v).split())
    return out


def validate(selector: str | Iterable[str] | None) -> None:
    """Parse ``selector`` without a project: a :class:`UsageError` for what cannot be
    parsed or names an unknown method (used to validate policy values)."""
    for term in _split(selector):
        for part in (p for p in term.split(",") if p):
            m = _ATOM_RE.match(part)
            if not m or not m.group("body"):
                raise UsageError(f"cannot parse selector {part!r}")
            _parse_method(m.group("body"))
