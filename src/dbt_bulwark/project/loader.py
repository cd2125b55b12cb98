"""Load dbt projects from a :class:`~dbt_bulwark.project.fs.FileSource` without dbt.

Reads ``dbt_project.yml``, installed and ``local:`` packages, models (SQL via
dbt-extractor, falling back to parse-mode Jinja like dbt; Python via ``ast``),
seeds, snapshots, analyses, singular tests, macros and properties YAML, then
resolves every node's config (:mod:`dbt_bulwark.project.config`), model versions and the
ref/source graph. Problems become :class:`~dbt_bulwark.findings.Finding` objects on
``Project.findings``; nothing here raises on bad input.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from dbt_bulwark.cache import ParseCache, content_hash
from dbt_bulwark.findings import Finding
from dbt_bulwark.project import config as cfg
from dbt_bulwark.project import yamlio
from dbt_bulwark.project.fs import SKIP_DIRS, FileSource, join
from dbt_bulwark.project.macros import MacroDef, MacroIndex, blank_outside
from dbt_bulwark.project.model import (
    Column,
    DataTest,
    Exposure,
    Node,
    Package,
    Project,
    RefCall,
    Source,
    UnitTest,
)

MAX_FILE_BYTES = 5 * 1024 * 1024
# a cold load renders this many files or more on every core (_ProjectBuilder.prerender)
PRERENDER_MIN = 64
# where a package's properties files (YAML) are read from, in dbt's order
_PROPERTY_PATHS = (("model-paths", "models"), ("seed-paths", "seeds"),
                   ("snapshot-paths", "snapshots"), ("analysis-paths", "analyses"),
                   ("macro-paths", "macros"), ("test-paths", "tests"))
SNAPSHOT_BLOCK_RE = re.compile(
    r"{%-?\s*snapshot\s+([A-Za-z_]\w*)\s*-?%}(.*?){%-?\s*endsnapshot\s*-?%}", re.S)
PROPERTY_KEYS = ("models", "seeds", "snapshots", "analyses", "sources", "exposures", "macros",
                 "groups", "unit_tests", "semantic_models", "metrics", "saved_queries",
                 "data_tests", "functions")

# ----------------------------------------------------------------------------- discovery


def discover_projects(fs: FileSource, under: str = "") -> list[str]:
    """Directories (relative to the source root) holding a ``dbt_project.yml``."""
    found = [os.path.dirname(p) for p in fs.walk(under) if p.rsplit("/", 1)[-1] == "dbt_project.yml"]
    return sorted(set(found))


def project_for_path(project_roots: list[str], repo_path: str) -> str | None:
    """The innermost project directory containing ``repo_path``."""
    best: str | None = None
    for root in project_roots:
        inside = root == "" or repo_path == root or repo_path.startswith(root + "/")
        if inside and (best is None or len(root) > len(best)):
            best = root
    return best


# ----------------------------------------------------------------------------- loader


class _Loader:
    def __init__(self, fs: FileSource, root: str, cli_vars: Mapping[str, Any] | None,
                 cache: ParseCache | None):
        self.fs = fs
        self.root = root
        self.cli_vars = dict(cli_vars or {})
        self.cache = cache
        self.findings: list[Finding] = []
        self.yaml_with_refs: set[str] = set()   # YAML files that call ref()/source()
        self.declared_packages: list[str] = []  # hub/git/tarball packages of packages.yml

    # -- small helpers
    def finding(self, path: str, line: int, code: str, message: str, severity: str = "error",
                hint: str = "", col: int = 0) -> None:
        self.findings.append(Finding(path, line, col, code, message, severity, hint))

    def peek_text(self, path: str) -> str | None:
        """The text of ``path``, or None when :meth:`read_text` would report a problem
        (which it does, once, when the file is really read)."""
        try:
            data = self.fs.read_bytes(path)
            return yamlio.decode(data) if len(data) <= MAX_FILE_BYTES else None
        except Exception:  # noqa: BLE001 - read_text says what is wrong with the file
            return None

    def read_text(self, path: str) -> str | None:
        try:
            data = self.fs.read_bytes(path)
        except (OSError, FileNotFoundError) as exc:
            self.finding(path, 0, "BLK002", f"cannot read file: {exc.__class__.__name__}",
                         "error")
            return None
        if len(data) > MAX_FILE_BYTES:
            self.finding(path, 0, "BLK004", f"file is larger than {MAX_FILE_BYTES // 2**20} MiB; "
                         "not checked", "warning")
            return None
        try:
            return yamlio.decode(data)
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            self.finding(path, line, "BLK003", "file is not valid UTF-8 (dbt reads UTF-8)",
                         hint="re-save the file as UTF-8")
            return None

    def read_yaml(self, path: str, text: str | None = None) -> Any:
        if text is None:
            text = self.read_text(path)
            if text is None:
                return None
        if "ref(" in text or "source(" in text:
            self.yaml_with_refs.add(path)
        kind, value = self.parse_yaml(text)
        if kind == "err":
            self._yaml_finding(path, *value)
            return None
        return value

    def parse_yaml(self, text: str) -> tuple[str, Any]:
        """``("ok", data)`` or ``("err", (line, col, message, code))`` (cached)."""
        key = yaml_key(text)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        try:
            found: tuple[str, Any] = ("ok", yamlio.load(text))
        except yamlio.YamlError as exc:
            found = ("err", (exc.line, exc.col, exc.message, exc.code))
        if self.cache is not None:
            self.cache.put(key, found)
        return found

    def _yaml_finding(self, path: str, line: int, col: int, message: str,
                      code: str = "BLK001") -> None:
        if code == "BLK005":
            self.finding(path, line, code, message, col=col,
                         hint="write the values out instead of nesting aliases")
        else:
            self.finding(path, line, "BLK001", message, col=col, hint="fix the YAML syntax")

    # -- project files
    def load_package_yml(self, root: str, is_root: bool) -> Package | None:
        path = join(root, "dbt_project.yml")
        data = self.read_yaml(path)
        if not isinstance(data, dict):
            if data is not None or is_root:
                self.finding(path, 1, "BLK010", "dbt_project.yml is not a mapping" if data
                             is not None else "dbt_project.yml could not be read",
                             hint="dbt_project.yml must be a YAML mapping with at least `name:`")
            return None
        data = self.render_project_yml(data, path)
        self.check_project_yml(data, path)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            self.finding(path, yamlio.line_of(data, "name", 1), "BLK010",
                         "dbt_project.yml has no `name`", hint="add `name: my_project`")
            name = os.path.basename(root) or "project"
        return Package(name=name, root=root, project_yml=data, is_root=is_root)

    def check_project_yml(self, data: Mapping[str, Any], path: str) -> None:
        """The top-level keys whose type dbt's project schema rejects (dbt parse stops with
        "at path ['model-paths']: 5 is not valid under any of the given schemas")."""
        for key, kind in _PROJECT_KEY_TYPES.items():
            value = data.get(key)
            if value is None or _project_type_ok(value, kind):
                continue
            self.finding(path, yamlio.line_of(data, key, 1) or 1, "BLK013",
                         f"`{key}:` must be {_KIND_TEXT[kind]}, not {_kind_of(value)} "
                         f"({_short(value)}); dbt parse rejects this dbt_project.yml",
                         hint=_KIND_HINT[kind].format(key=key))
        version = data.get("config-version")
        if _project_type_ok(version, "int") and version != 2:
            self.finding(path, yamlio.line_of(data, "config-version", 1) or 1, "BLK013",
                         f"`config-version: {version}`: dbt expects 2 and refuses the project",
                         hint="write `config-version: 2`")

    def render_project_yml(self, data: Any, path: str) -> Any:
        """Render Jinja in dbt_project.yml values (env_var/var), except hooks and vars.

        ``vars:`` values are rendered where they are used, in the calling node's context,
        as dbt's ``Var.get_rendered_var`` does (see ``RenderContext._var``).
        """
        skip = {"vars", "on-run-start", "on-run-end", "pre-hook", "post-hook", "+pre-hook",
                "+post-hook", "pre_hook", "post_hook", "+pre_hook", "+post_hook"}

        def walk(value: Any, key: Any = None, parent: Any = None) -> Any:
            if isinstance(value, dict):   # a copy: the parse cache holds the unrendered file
                copy = yamlio.LineDict(value)
                if isinstance(value, yamlio.LineDict):
                    copy.line, copy.key_lines = value.line, value.key_lines
                for k in list(value):
                    if k not in skip:
                        copy[k] = walk(value[k], k, value)
                return copy
            if isinstance(value, list):
                return [walk(v, key, parent) for v in value]
            if isinstance(value, str) and ("{{" in value or "{%" in value):
                # a rendering is cached while the env_var()s it read are unchanged
                cache_key = ("project-yml-value", content_hash(value), vars_key)
                hit = self.cache.get(cache_key) if self.cache is not None else None
                if isinstance(hit, tuple) and len(hit) == 2 and isinstance(hit[0], str) and \
                        isinstance(hit[1], dict) and \
                        all(os.environ.get(n) == v for n, v in hit[1].items()):
                    return _coerce_scalar(hit[0])
                from dbt_bulwark.sql.jinja_env import (
                    EnvVarMissing,
                    RenderContext,
                    RenderTimeout,
                    SandboxError,
                    VarMissing,
                    render,
                )

                ctx = RenderContext(package="", macros=MacroIndex(""), vars=self.cli_vars)
                try:
                    out = render(value, ctx).strip()
                except (VarMissing, EnvVarMissing) as exc:
                    self.finding(path, _value_line(parent, key), "BLK011", str(exc),
                                 hint="pass --vars or set the environment variable")
                    return value
                except (SandboxError, RenderTimeout) as exc:
                    code = "BLK021" if isinstance(exc, SandboxError) else "BLK022"
                    self.finding(path, _value_line(parent, key), code,
                                 f"Jinja in dbt_project.yml ({key}) "
                                 f"{'blocked by the sandbox' if code == 'BLK021' else ''}: "
                                 f"{exc}", hint="dbt refuses this too; remove it")
                    return value
                except Exception as exc:  # noqa: BLE001 - bad Jinja must not crash
                    self.finding(path, _value_line(parent, key), "BLK012",
                                 f"cannot render Jinja in dbt_project.yml "
                                 f"({key}): {exc}")
                    return value
                if self.cache is not None:
                    self.cache.put(cache_key, (out, dict(ctx.env_read)))
                return _coerce_scalar(out)
            return value

        vars_key = content_hash(repr(sorted((str(k), repr(v)) for k, v in self.cli_vars.items())))
        return walk(data)

    def packages(self, root_pkg: Package) -> list[Package]:
        """Installed packages (``dbt_packages/``) and ``local:`` packages from packages.yml.

        ``declared_packages`` gets the name each hub/git/tarball package installs under:
        ``package-lock.yml``'s ``name:`` when dbt wrote one, else a guess from the entry;
        packages declared by ``local:`` packages (transitive, installed by ``dbt deps``
        too) are declared as well.
        """
        out: dict[str, Package] = {}
        guessed: set[str] = set()
        seen_roots: set[str] = set()
        todo = [self.root]
        while todo:
            base = todo.pop(0)
            if base in seen_roots:
                continue
            seen_roots.add(base)
            locked = self.locked_names(base)
            for fname in ("packages.yml", "dependencies.yml"):
                path = join(base, fname)
                if not self.fs.is_file(path):
                    continue
                data = self.read_yaml(path)
                entries = data.get("packages") if isinstance(data, dict) else None
                for entry in entries if isinstance(entries, list) else []:
                    declared = locked.get(_entry_key(entry))
                    if not declared:
                        declared = _declared_package_name(entry)
                        if declared and isinstance(entry, dict) and "package" not in entry \
                                and "name" not in entry:
                            guessed.add(declared)   # a git/tarball name guessed from its URL
                    if declared and declared not in self.declared_packages:
                        self.declared_packages.append(declared)
                    if isinstance(entry, dict) and isinstance(entry.get("local"), str):
                        local_root = os.path.normpath(join(base, entry["local"]))
                        local_root = "" if local_root == "." else local_root
                        if self.fs.is_file(join(local_root, "dbt_project.yml")):
                            pkg = self.load_package_yml(local_root, False)
                            if pkg and pkg.name != root_pkg.name:
                                pkg.local = True
                                out.setdefault(pkg.name, pkg)
                            todo.append(local_root)
            for name in locked.values():
                if name not in self.declared_packages and base == self.root:
                    self.declared_packages.append(name)
        install = root_pkg.project_yml.get("packages-install-path") or \
            root_pkg.project_yml.get("modules-path") or "dbt_packages"
        install_root = join(self.root, str(install))
        for name in self.fs.listdir(install_root):
            pkg_root = join(install_root, name)
            if self.fs.is_file(join(pkg_root, "dbt_project.yml")):
                pkg = self.load_package_yml(pkg_root, False)
                if pkg and pkg.name != root_pkg.name:
                    out[pkg.name] = pkg  # the installed copy wins, as in dbt
        # after `dbt deps`, a git package sits under the name of its own dbt_project.yml:
        # an installed package nobody declared by that name is the one guessed from a URL
        unmatched = [n for n in out if n not in self.declared_packages and not out[n].local]
        if unmatched:
            self.declared_packages[:] = [d for d in self.declared_packages
                                         if d not in guessed or d in out]
        return list(out.values())

    def locked_names(self, base: str) -> dict[str, str]:
        """{entry key: package name} from ``package-lock.yml`` (dbt >= 1.7 writes ``name:``)."""
        path = join(base, "package-lock.yml")
        if not self.fs.is_file(path):
            return {}
        data = self.read_yaml(path)
        entries = data.get("packages") if isinstance(data, dict) else None
        out: dict[str, str] = {}
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str) and \
                    "local" not in entry:
                out[_entry_key(entry) or entry["name"]] = entry["name"]
        return out

    def files_under(self, pkg: Package, key: str, default: str, exts: tuple[str, ...]) -> list[
            tuple[str, str]]:
        """(resource-relative path, repo path) of files under the package's ``key`` paths."""
        out: list[tuple[str, str]] = []
        seen: set[str] = set()
        for sub in pkg.paths(key, default):
            base = join(pkg.root, sub)
            # inside a package, dbt_packages is not skipped when it *is* the package root
            for repo_path in self.fs.walk(base, True, SKIP_DIRS):
                if repo_path.endswith(exts) and repo_path not in seen:
                    seen.add(repo_path)
                    out.append((repo_path[len(base) + 1:] if base else repo_path, repo_path))
        return out


def _dict_at(item: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key)
    return dict(value) if isinstance(value, dict) else {}


def _entry_key(entry: Any) -> str:
    """What identifies a packages.yml entry in package-lock.yml (its hub/git/tarball ref)."""
    if not isinstance(entry, dict):
        return ""
    for k in ("package", "git", "tarball", "private"):
        if entry.get(k):
            return f"{k}:{str(entry[k]).strip().rstrip('/').lower()}"
    return ""


def _declared_package_name(entry: Any) -> str | None:
    """The package name a hub/git/tarball entry of packages.yml installs (a best guess
    for git and tarball: the last path part); None for ``local:`` entries."""
    if not isinstance(entry, dict) or "local" in entry:
        return None
    ref = entry.get("name") or entry.get("package") or entry.get("git") or \
        entry.get("tarball") or entry.get("private")
    if not ref:
        return None
    name = str(ref).rstrip("/").split("/")[-1]
    if name.endswith(".git"):
        name = name[:-4]
    if "package" not in entry and "name" not in entry:
        # a git/tarball package installs under its own dbt_project.yml name
        # (dbt-audit-helper -> audit_helper): known ones from the packages data
        from dbt_bulwark.project.known_packages import name_of_repo

        parts = str(ref).rstrip("/").removesuffix(".git").split("/")
        known = name_of_repo("/".join(parts[-2:])) if len(parts) >= 2 else None
        if known:
            return known
    return name.replace("-", "_")


# sqlglot dialect names (as `dialect:` in bulwark.yml may use them) -> dbt adapter types
_DIALECT_ADAPTERS = {"tsql": "sqlserver", "postgresql": "postgres", "spark2": "spark",
                     "hive": "spark", "presto": "trino"}


# dbt_project.yml keys and the type dbt's Project schema gives them (None is "absent")
_PROJECT_KEY_TYPES: dict[str, str] = {
    **{k: "paths" for k in ("model-paths", "source-paths", "macro-paths", "data-paths",
                            "seed-paths", "test-paths", "analysis-paths", "docs-paths",
                            "asset-paths", "function-paths", "snapshot-paths",
                            "clean-targets")},
    **{k: "str" for k in ("target-path", "profile", "log-path", "packages-install-path")},
    **{k: "dict" for k in ("models", "seeds", "snapshots", "analyses", "sources", "tests",
                           "data_tests", "unit_tests", "metrics", "semantic_models",
                           "saved_queries", "exposures", "functions", "flags", "vars")},
    "config-version": "int",
    "dispatch": "list",
    "restrict-access": "bool",
}
_KIND_TEXT = {"paths": "a list of paths", "str": "a string", "dict": "a mapping",
              "int": "a whole number (2)", "list": "a list", "bool": "true or false"}
_KIND_HINT = {"paths": "write it as a list: `{key}: [\"dir\"]`",
              "str": "write `{key}:` as one string", "dict": "write `{key}:` as a mapping "
              "(`key: value` lines)", "int": "write `{key}: 2`",
              "list": "write `{key}:` as a list", "bool": "write `{key}: true` or false"}


def _project_type_ok(value: Any, kind: str) -> bool:
    if kind == "paths":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "dict":
        return isinstance(value, dict)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list)
    if kind == "bool":
        return isinstance(value, bool)
    return True


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {list: "a list", dict: "a mapping", int: "a number", float: "a number",
            str: "a string"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _date_ok(value: Any) -> bool:
    """A ``deprecation_date`` dbt can read: absent, a YAML date/datetime, or an ISO string
    (dbt reads it with ``datetime.fromisoformat``; a Jinja string is rendered first)."""
    import datetime

    if value is None or isinstance(value, (datetime.date, datetime.datetime)):
        return True
    if isinstance(value, str):
        if "{{" in value or "{%" in value:
            return True
        try:
            datetime.datetime.fromisoformat(value.strip())
        except ValueError:
            return False
        return True
    return False


def _name_problem(entry: Mapping[str, Any], what: str) -> str:
    name = entry.get("name")
    if name is None:
        return f"{what} has no `name`"
    return f"`name` of {what} must be a string, not {_kind_of(name)} ({_short(name)})"


def _value_line(parent: Any, key: Any) -> int:
    return yamlio.line_of(parent, key, 1) or 1


def _coerce_scalar(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


# ----------------------------------------------------------------------------- SQL parsing


# `{{ expr }}` (whitespace control allowed), and a call with literal arguments only: quoted
# strings without quotes, backslashes or braces inside, integers, lists of such strings
# context members a probed call may read: the same for every node of a package, and
# without effects a parse records (see _ProjectBuilder.probe_call)
_PROBE_NAMES = frozenset({
    "adapter", "api", "dbt_version", "dict", "exceptions", "execute", "flags", "fromjson",
    "fromyaml", "list", "local_md5", "modules", "namespace", "project_name", "range",
    "return", "set", "target", "tojson", "toyaml", "var", "zip", "joiner", "cycler",
    "run_started_at", "invocation_id",
    "is_incremental"})   # the same for every node of a run (false in every parse-mode render)
_EXPR_BLOCK_RE = re.compile(r"{{-?(.*?)-?}}", re.S)
# the node's own relation, or an attribute of it: nothing a parse records
_THIS_READ_RE = re.compile(r"\s*this(?:\.(?:name|identifier|schema|database|table))?\s*")
_STR = r"""(?:'[^'"\\{}\n]*'|"[^'"\\{}\n]*")"""
_LITERAL = r"(?:" + _STR + r"|-?\d+|\[\s*(?:" + _STR + r"\s*(?:,\s*" + _STR + r"\s*)*)?\])"
_ARG = r"(?:(?:[A-Za-z_]\w*\s*=\s*)?" + _LITERAL + r")"
_LITERAL_CALL_RE = re.compile(
    r"\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)?)\s*\(\s*(" + _ARG + r"(?:\s*,\s*" + _ARG
    + r")*)?\s*\)\s*", re.S)


_EXTRACTOR_CALL_RE = re.compile(r"\s*(?:ref|source|config)\s*\(")


_CONFIG_FILTERS = ("as_bool", "as_text", "as_native", "as_number")


def literal_config(expr: str, vars_: Mapping[str, Any]) -> str | None:
    """``config(...)`` with each argument evaluated as a parse-mode render evaluates it, when
    every argument is built only from literals, ``var()`` (a set value, or a literal
    default) and dbt's ``as_*`` filters, and evaluates to what dbt-extractor can read
    (strings, booleans, lists of them): ``config(enabled=var('x', False) | as_bool)`` ->
    ``config(enabled=False)``. None for anything else (the template is rendered then)."""
    import ast

    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)
            and tree.func.id == "config" and not tree.args and tree.keywords
            and all(k.arg for k in tree.keywords)):
        return None
    out: list[str] = []
    try:
        for kw in tree.keywords:
            text = _extractor_literal(_evaluate(kw.value, vars_))
            if text is None:
                return None
            out.append(f"{kw.arg}={text}")
    except _NotLiteral:
        return None
    return f"config({', '.join(out)})"


class _NotLiteral(Exception):
    pass


_JINJA_NAMES = {"true": True, "True": True, "false": False, "False": False,
                "none": None, "None": None}


def _evaluate(node: Any, vars_: Mapping[str, Any]) -> Any:
    """The value of a Jinja expression made of literals, var(), as_* filters, and/or/not and
    one ``==`` or ``!=`` (which Python's parser reads alike, with the same precedence), or
    :class:`_NotLiteral`."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bool, int, float)):
        return node.value
    if isinstance(node, ast.Name) and node.id in _JINJA_NAMES:
        return _JINJA_NAMES[node.id]
    if isinstance(node, ast.List):
        return [_evaluate(e, vars_) for e in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == "var" and not node.keywords and 1 <= len(node.args) <= 2:
        name = _evaluate(node.args[0], vars_)
        if not isinstance(name, str):
            raise _NotLiteral
        if name in vars_:
            value = vars_[name]
            if isinstance(value, str) and ("{{" in value or "{%" in value):
                raise _NotLiteral          # dbt renders the value: left to the render
            return value
        if len(node.args) == 2:
            return _evaluate(node.args[1], vars_)
        raise _NotLiteral                  # a missing var: the render says what it is
    if isinstance(node, ast.BoolOp):       # Jinja's and/or are Python's (the last value read)
        value = None
        for item in node.values:
            value = _evaluate(item, vars_)
            if (not value) if isinstance(node.op, ast.And) else value:
                return value
        return value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _evaluate(node.operand, vars_)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and \
            isinstance(node.ops[0], (ast.Eq, ast.NotEq)):
        # Jinja compiles == and != to Python's (one operator: no chains)
        left, right = _evaluate(node.left, vars_), _evaluate(node.comparators[0], vars_)
        return (left == right) if isinstance(node.ops[0], ast.Eq) else (left != right)
    # a filter binds tighter than and/or/not/== in Jinja as | does in Python, so a left
    # operand that is one of those was written in parentheses: the filter reads all of it
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr) and \
            isinstance(node.right, ast.Name) and node.right.id in _CONFIG_FILTERS and \
            isinstance(node.left, (ast.Call, ast.Constant, ast.Name, ast.BinOp, ast.BoolOp,
                                   ast.UnaryOp, ast.Compare)) and \
            not (isinstance(node.left, ast.BinOp) and not isinstance(node.left.op, ast.BitOr)) \
            and not (isinstance(node.left, ast.UnaryOp) and not isinstance(node.left.op, ast.Not)):
        from dbt_bulwark.sql.jinja_env import DBT_FILTERS

        return DBT_FILTERS[node.right.id](_evaluate(node.left, vars_))
    raise _NotLiteral


def _extractor_literal(value: Any) -> str | None:
    """``value`` spelled as dbt-extractor reads a config value, or None (it reads strings,
    booleans and lists of them, not numbers or none)."""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        if any(c in value for c in "'\"\\{}\n\r") :
            return None
        return f"'{value}'"
    if isinstance(value, list):
        items = [_extractor_literal(v) for v in value]
        return None if any(i is None for i in items) else f"[{', '.join(items)}]"  # type: ignore[arg-type]
    return None


_STMT_TAG_RE = re.compile(r"{%-?\s*(\w+)\b(.*?)-?%}", re.S)
_BRANCH_TAGS = frozenset({"if", "elif", "else", "endif"})


def _compiles(text: str) -> bool:
    """The template ``text`` parses in the parse-mode environment, and nothing in it fails
    when it is compiled (an unknown filter or test, a keyword argument given twice), even
    in a branch the render does not take."""
    from jinja2 import nodes

    from dbt_bulwark.sql.jinja_env import environment

    env = environment(True)
    try:
        tree = env.parse(text)
    except Exception:  # noqa: BLE001 - a syntax error is the render's to report
        return False
    for node in tree.find_all((nodes.Filter, nodes.Test, nodes.Call)):
        if isinstance(node, nodes.Filter) and node.name not in env.filters or \
                isinstance(node, nodes.Test) and node.name not in env.tests:
            return False
        names = [k.key for k in getattr(node, "kwargs", None) or ()]
        if len(names) != len(set(names)):
            return False
    return True


def _strings_closed(expr: str) -> bool:
    """No string literal of ``expr`` runs on past its end."""
    quote = ""
    escaped = False
    for ch in expr:
        if escaped:
            escaped = False
        elif quote:
            if ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
    return not quote and not escaped


def _split_args(args: str) -> list[str]:
    """Top-level comma-separated parts of an argument list (commas in quotes or brackets
    kept); empty parts dropped."""
    parts: list[str] = []
    depth, quote, start = 0, "", 0
    for i, ch in enumerate(args):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(args[start:i])
            start = i + 1
    parts.append(args[start:])
    return [p for p in parts if p.strip()]


# the process that first called dbt-extractor: its thread pool does not survive a fork
_EXTRACTOR_PID: int | None = None


def yaml_key(text: str) -> tuple[str, str]:
    """The parse cache's key of a YAML file's parse."""
    return ("yaml", content_hash(text))


def extract_key(text: str) -> tuple[str, str]:
    """The parse cache's key of dbt-extractor's reading of a template (``{}``: unreadable)."""
    return ("extract", content_hash(text))


def extractor_fresh() -> bool:
    """Whether dbt-extractor has not run in this process yet (nor in a parent it was forked
    from): a child forked now may run it."""
    return _EXTRACTOR_PID is None


def _template_cost(item: tuple[Any, ...]) -> float:
    """The guessed cost of reading a template: it grows with the Jinja it compiles, not
    with its length (the last element of ``item`` is the text)."""
    text = item[-1]
    return 1 + text.count("{{") + 4 * text.count("{%")


def _static_reading(static: dict[str, Any]) -> dict[str, Any]:
    """What :meth:`_ProjectBuilder.parse_sql` finds in dbt-extractor's reading."""
    calls = cfg.merge_config_calls([{k: v} for k, v in static["configs"]])
    return {"refs": static["refs"], "sources": static["sources"], "calls": calls,
            "error": None, "by": "static"}


def extract_static(text: str, cache: ParseCache | None) -> dict[str, Any] | None:
    """dbt-extractor's static parse of a model (what dbt itself tries first), or None.

    In a process forked after dbt-extractor ran (:mod:`dbt_bulwark.parallel`) it is not
    called (its thread pool's threads are not in the child: a call could wait forever):
    None, as for a template it cannot read, so the caller renders it as dbt falls back to."""
    global _EXTRACTOR_PID
    key = extract_key(text)
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit or None
    if _EXTRACTOR_PID is None:
        _EXTRACTOR_PID = os.getpid()
    elif os.getpid() != _EXTRACTOR_PID:
        return None
    try:
        from dbt_extractor import ExtractionError, py_extract_from_source
    except ImportError:  # pragma: no cover - dependency missing
        return None
    try:
        result = py_extract_from_source(text)
        out = {
            "refs": [(r.get("name"), r.get("package"), r.get("version")) for r in result["refs"]],
            "sources": sorted(tuple(s) for s in result["sources"]),
            "configs": list(result["configs"]),
        }
    except ExtractionError:
        out = {}
    except Exception:  # noqa: BLE001 - never crash on odd input
        out = {}
    if cache is not None:
        cache.put(key, out)
    return out or None


def extract_python(text: str) -> tuple[list[RefCall], list[tuple[str, str]], dict[str, Any],
                                       tuple[int, str] | None]:
    """refs, sources and config of a Python model, read with ``ast`` as dbt does."""
    refs: list[RefCall] = []
    sources: list[tuple[str, str]] = []
    config: dict[str, Any] = {}
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        return refs, sources, config, (exc.lineno or 0, f"Python syntax error: {exc.msg}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "dbt"):
            continue
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except ValueError:
            continue
        if node.func.attr == "ref" and args:
            version = kwargs.get("version", kwargs.get("v"))
            if len(args) >= 2:
                refs.append(RefCall(str(args[1]), str(args[0]), version))
            else:
                refs.append(RefCall(str(args[0]), None, version))
        elif node.func.attr == "source" and len(args) >= 2:
            sources.append((str(args[0]), str(args[1])))
        elif node.func.attr == "config":
            cfg.merge_into(config, kwargs)
    return refs, sources, config, None


# ----------------------------------------------------------------------------- vars


def vars_for(project_vars: Any, package: str) -> dict[str, Any]:
    """dbt's ``VarProvider.vars_for``: global vars, then the package-scoped dict."""
    if not isinstance(project_vars, Mapping):
        return {}
    out = dict(project_vars)
    scoped = project_vars.get(package)
    if isinstance(scoped, Mapping):
        out.update(scoped)
    return out


def node_vars(root: Package, pkg: Package, cli_vars: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    if not pkg.is_root:
        merged.update(vars_for(pkg.project_yml.get("vars"), pkg.name))
    merged.update(vars_for(root.project_yml.get("vars"), pkg.name))
    merged.update(cli_vars)
    return merged


# ----------------------------------------------------------------------------- layers


def _section(pkg: Package, resource_type: str) -> Any:
    key = cfg.PROJECT_SECTION.get(resource_type, "models")
    data = pkg.project_yml
    if key == "data_tests" and "data_tests" not in data:
        return data.get("tests")
    return data.get(key)


def resolve_config(node_rt: str, fqn: list[str], pkg: Package, root: Package,
                   patch: Mapping[str, Any] | None, patch_path: str | None,
                   calls: Mapping[str, Any] | None, calls_path: str,
                   calls_lines: Mapping[str, int] | None = None
                   ) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
    """Effective config plus where each key was last set (path, line)."""
    origin: dict[str, tuple[str, int]] = {}
    if not patch and not calls and _section(pkg, node_rt) is None and \
            (pkg.is_root or _section(root, node_rt) is None):
        return cfg.finalize(cfg.fresh_defaults(node_rt)), origin
    result = cfg.fresh_defaults(node_rt)

    def apply_project(p: Package) -> None:
        path = join(p.root, "dbt_project.yml")
        for level in cfg.fqn_search(_section(p, node_rt), fqn):
            layer, lines = _level(p, level)
            cfg.merge_into(result, layer)
            for key, line in lines.items():
                origin[key] = (path, line)

    apply_project(pkg)
    if patch:
        cfg.merge_into(result, patch)
        for key in patch:
            origin[key] = (patch_path or "", yamlio.line_of(patch, key))
    if calls:
        cfg.merge_into(result, calls)
        for key in calls:
            origin[key] = (calls_path, (calls_lines or {}).get(key, 1))
    if not pkg.is_root:
        apply_project(root)
    return cfg.finalize(result), origin


def _level(pkg: Package, level: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """Config keys of one dbt_project.yml level and their lines (memoized per package:
    every model of a folder walks the same levels)."""
    memo = pkg.level_memo
    hit = memo.get(id(level))
    if hit is None:
        layer = cfg.level_configs(level)
        lines = {key: yamlio.line_of(level, f"+{key}") if f"+{key}" in level
                 else yamlio.line_of(level, key) for key in layer}
        hit = memo[id(level)] = (layer, lines)
    return hit


_CONFIG_CALL_RE = re.compile(r"\bconfig\s*\(")
# the same without the leading \b (a pattern starting with \b gets no literal-prefix search
# from `re`: 30x slower on long files); the word boundary is checked by hand
_CONFIG_CALL_FAST = re.compile(r"config\s*\(")


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"   # what `\w` matches in a str pattern


_PARENS_RE = re.compile(r"[()]")
_KEY_RES: dict[str, re.Pattern[str]] = {}


def _key_re(key: str) -> re.Pattern[str]:
    found = _KEY_RES.get(key)
    if found is None:
        found = _KEY_RES[key] = re.compile(rf"\b{re.escape(key)}\s*=")
    return found


@functools.lru_cache(maxsize=8192)
def config_call_lines(text: str, keys: tuple[str, ...]) -> Mapping[str, int]:
    """Line of each key inside the ``config(...)`` calls of a SQL file (best effort;
    remembered for the run: the head and its git base share most files). Read only."""
    out: dict[str, int] = {}
    for m in _CONFIG_CALL_FAST.finditer(text):
        if m.start() and _word_char(text[m.start() - 1]):
            continue
        start = m.end()
        depth, i = 1, start
        while depth:   # to the matching ')' (or the end), parenthesis by parenthesis
            paren = _PARENS_RE.search(text, i)
            if paren is None:
                i = len(text)
                break
            depth += 1 if paren.group() == "(" else -1
            i = paren.end()
        body = text[start:i]
        base_line = text.count("\n", 0, start) + 1
        for key in keys:
            km = _key_re(str(key)).search(body)
            if km:
                out[str(key)] = base_line + body.count("\n", 0, km.start())
    return out


# ----------------------------------------------------------------------------- YAML entries

_NORMALIZED_ATTRS = ("meta", "docs", "group", "contract", "access")


def patch_config(entry: Mapping[str, Any], path: str, loader: _Loader) -> yamlio.LineDict:
    """The entry's ``config:`` with top-level attributes dbt moves into config."""
    raw = entry.get("config")
    out = yamlio.LineDict(raw if isinstance(raw, dict) else {})
    if isinstance(raw, yamlio.LineDict):
        out.line, out.key_lines = raw.line, dict(raw.key_lines)
    for attr in _NORMALIZED_ATTRS:
        if attr in entry:
            if attr in out:
                loader.finding(path, yamlio.line_of(entry, attr), "BLK031",
                               f"`{attr}` is set both at top level and under `config:` "
                               "(dbt rejects this)", hint=f"keep only `config: {attr}:`")
                continue
            out[attr] = entry[attr]
            out.key_lines[attr] = yamlio.line_of(entry, attr)
    return out


def parse_tests(items: Any, column: str | None, path: str, line: int) -> list[DataTest]:
    out: list[DataTest] = []
    for item in items if isinstance(items, list) else []:
        item_line = yamlio.line_of(item, default=line)
        if isinstance(item, str):
            out.append(DataTest(item, column, {}, path, item_line))
        elif isinstance(item, dict) and item:
            if "test_name" in item:
                name = str(item["test_name"])
                kwargs = {k: v for k, v in item.items() if k not in ("test_name", "name")}
            else:
                keys = [k for k in item if k not in ("name", "config", "description")]
                name = str(keys[0] if keys else next(iter(item)))
                kwargs = item[name] if isinstance(item.get(name), dict) else {}
            out.append(DataTest(name, column, dict(kwargs), path, item_line,
                                _dict_at(kwargs, "config")))
    return out


def parse_columns(items: Any, path: str, loader: _Loader, owner: str) -> list[Column]:
    out: list[Column] = []
    if items is None:
        return out
    if not isinstance(items, list):
        loader.finding(path, yamlio.line_of(items), "BLK032",
                       f"`columns` of {owner} must be a list", hint="write `columns:` as `- name: ...` items")
        return out
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            continue
        name = str(item["name"])
        line = item.line if isinstance(item, yamlio.LineDict) else 0
        raw_tests = item.get("data_tests") or item.get("tests")
        tests = parse_tests(raw_tests, name, path, line) if raw_tests else []
        dt = item.get("data_type")
        cons = item.get("constraints")
        meta = item.get("meta")
        conf = item.get("config")
        if isinstance(conf, dict) and isinstance(conf.get("meta"), dict):
            meta = {**(meta if isinstance(meta, dict) else {}), **conf["meta"]}
        out.append(Column(name=name, data_type=str(dt) if dt is not None else None,
                          description=str(item.get("description") or ""), line=line,
                          constraints=[c for c in cons if isinstance(c, dict)]
                          if isinstance(cons, list) else [],
                          tests=tests, meta=meta if isinstance(meta, dict) else {},
                          quote=item.get("quote")))
    return out


def _may_template_types(node: Any) -> bool:
    """False when the node's YAML columns, not parsed yet, have no ``{`` in a data_type:
    they stay unparsed (most hooks read the columns of few models)."""
    thunk = getattr(node, "_columns_thunk", None)
    if getattr(node, "_columns", None) is not None or not isinstance(thunk, functools.partial) \
            or thunk.func is not parse_columns or not thunk.args:
        return True
    items = thunk.args[0]
    if not isinstance(items, list):
        return True
    return any(isinstance(item, dict) and item.get("data_type") is not None
               and "{" in str(item.get("data_type")) for item in items)


def render_data_types(project: Any, adapter: str | None) -> None:
    """Render Jinja in columns' ``data_type`` (``"{{ 'UInt8' if target.type == 'clickhouse'
    else 'int' }}"``) as dbt does, with ``target.type`` = ``adapter``; once per project.
    A value that cannot be rendered is left as written."""
    key = (adapter or "").lower()  # None (no adapter known) renders too, as duckdb
    if getattr(project, "_data_types_rendered", None) == key:
        return
    project._data_types_rendered = key
    todo = [c for n in project.nodes.values() if _may_template_types(n) for c in n.columns
            if c.data_type and "{" in c.data_type]
    todo += [c for s in project.sources.values() for c in getattr(s, "columns", [])
             if c.data_type and "{" in c.data_type]
    if not todo:
        return
    from dbt_bulwark.sql.jinja_env import RenderContext, render

    ctx = RenderContext(package=project.name, macros=project.macros or MacroIndex(project.name),
                        vars=project.vars, adapter_type=(adapter or "duckdb").lower())
    for col in todo:
        raw = col.data_type
        if "{{" not in raw and "{%" not in raw:
            continue
        try:
            col.data_type = render(raw, ctx).strip() or raw
        except Exception:  # noqa: BLE001 - left as written
            continue


def version_columns(base: list[Column], entry: Mapping[str, Any], path: str,
                    loader: _Loader) -> list[Column]:
    """Columns of one model version: ``include``/``exclude`` over the model's columns."""
    items = entry.get("columns")
    if items is None:
        return list(base)
    if not isinstance(items, list):
        return parse_columns(items, path, loader, "a version")
    include: Any = None
    exclude: list[str] = []
    own_items = []
    for item in items:
        if isinstance(item, dict) and ("include" in item or "exclude" in item) and "name" not in item:
            include = item.get("include", "all")
            exclude = [str(x).lower() for x in item.get("exclude") or []]
        else:
            own_items.append(item)
    own = parse_columns(own_items, path, loader, "a version")
    own_names = {c.name.lower() for c in own}
    if include is None:
        return own
    inherited: list[Column] = []
    for col in base:
        low = col.name.lower()
        if low in own_names or low in exclude:
            continue
        if include in ("all", "*") or (isinstance(include, list)
                                       and low in {str(x).lower() for x in include}):
            inherited.append(col)
    return inherited + own


def _as_version(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ----------------------------------------------------------------------------- the load


def load_project(fs: FileSource, root: str = "", cli_vars: Mapping[str, Any] | None = None,
                 cache: ParseCache | None = None) -> Project:
    """Load the dbt project whose ``dbt_project.yml`` sits in ``root`` (relative to ``fs``)."""
    loader = _Loader(fs, root, cli_vars, cache)
    return _ProjectBuilder(loader).build()


def derive_project(head: Project, fs: FileSource, changed: Sequence[str]) -> Project | None:
    """The project ``fs`` holds, made from ``head`` (loaded from other files) when the two
    differ only in the SQL bodies of some nodes, else None (load it).

    ``changed``: the repository paths whose content differs between the two file trees,
    added and removed files included. Each must be the SQL file of one of ``head``'s models,
    analyses or singular tests, present in ``fs``, whose text there reads as the same node:
    the same refs, sources and ``config()`` calls on the same lines, no Jinja error (read
    by the very parse the loader runs, with ``head``'s macros and vars). Then every other
    file, so every config, patch, test and edge of the graph, is the same: the other
    project is ``head`` with those nodes' code (a git base one file away from the work
    tree costs one file's parse, not a project's load)."""
    import copy
    import dataclasses

    builder: _ProjectBuilder | None = head._builder
    if builder is None:
        return None
    by_path: dict[str, list[Node]] = {}
    for node in builder.nodes:
        by_path.setdefault(node.repo_path, []).append(node)
    reader = _Loader(fs, head.root, head.cli_vars, None)
    replaced: dict[int, Node] = {}
    for path in changed:
        nodes = by_path.get(path)
        if not nodes or len(nodes) > 1:
            return None
        node = nodes[0]
        if node.language != "sql" or node.resource_type not in ("model", "analysis", "test") \
                or node.jinja_error:
            return None
        text = reader.read_text(path) if fs.is_file(path) else None
        if text is None or reader.findings:
            return None
        parsed = builder.parse_sql(builder.pkgs[node.package_name], text, path)
        if parsed["error"] or \
                [RefCall(str(n), p, v) for n, p, v in parsed["refs"]] != node.refs or \
                [(str(a), str(b)) for a, b in parsed["sources"]] != node.sources or \
                parsed["calls"] != node.calls:
            return None
        keys = tuple(node.calls)
        if keys and config_call_lines(text, keys) != config_call_lines(node.raw_code, keys):
            return None
        replaced[id(node)] = dataclasses.replace(
            node, raw_code=text, checksum=content_hash(text), rendered_by=parsed["by"])
    derived = copy.copy(head)   # the same files' findings, YAML, macros and sources
    derived.nodes = {uid: replaced.get(id(n), n) for uid, n in head.nodes.items()}
    derived.disabled = {uid: [replaced.get(id(n), n) for n in nodes]
                        for uid, nodes in head.disabled.items()}
    derived.invalidate_graph()
    derived._builder = None

    def tests(enabled_out: dict[str, Node], disabled_out: dict[str, Node]) -> None:
        enabled_out.update(head.data_tests)   # built once, from the same YAML
        disabled_out.update(head.disabled_tests)
        derived.invalidate_graph()

    derived._data_tests, derived._disabled_tests = {}, {}
    derived._tests_loader = tests
    return derived


class _ProjectBuilder:
    def __init__(self, loader: _Loader):
        self.L = loader
        self.nodes: list[Node] = []
        self.patches: dict[tuple[str, str, str], tuple[Mapping[str, Any], str]] = {}
        self._used_patches: set[tuple[str, str, str]] = set()
        # what prerender() found without rendering, taken by the node's parse_sql()
        self._unrendered: dict[tuple[str, str], dict[str, Any]] = {}

    # -- entry point
    def build(self) -> Project:
        L = self.L
        root_pkg = L.load_package_yml(L.root, True)
        if root_pkg is None:
            return Project(name=os.path.basename(L.root) or "project", root=L.root,
                           project_yml={}, findings=L.findings)
        self.root_pkg = root_pkg
        pkgs = [root_pkg] + L.packages(root_pkg)
        self.pkgs = {p.name: p for p in pkgs}
        project = Project(name=root_pkg.name, root=L.root, project_yml=root_pkg.project_yml,
                          packages=self.pkgs, cli_vars=dict(L.cli_vars))
        project.vars = vars_for(root_pkg.project_yml.get("vars"), root_pkg.name)
        project.vars.update(L.cli_vars)
        self.project = project
        project.adapter_type = self.parse_adapter_type(root_pkg)
        self.macros = MacroIndex(root_pkg.name)
        project.macros = self.macros
        macro_texts: list[str] = []
        for pkg in pkgs:
            for _rel, rp in L.files_under(pkg, "macro-paths", "macros", (".sql",)):
                text = L.read_text(rp)
                if text is not None:
                    self.macros.add_file(pkg.name, rp, text)
                    macro_texts.append(content_hash(text))
        self.macros_hash = content_hash("".join(macro_texts))
        self.banned = any(self.macros.find(n, root_pkg.name) for n in ("ref", "source", "config"))
        self.prerender(pkgs)
        yaml_paths: list[tuple[Package, str, str]] = []
        for pkg in pkgs:
            for rel, rp in L.files_under(pkg, "test-paths", "tests", (".sql",)):
                text = L.read_text(rp)
                if text is None:
                    continue
                if "{%" in text and re.search(r"{%-?\s*(test|macro)\s", text):
                    self.macros.add_file(pkg.name, rp, text)
                else:
                    self.add_sql_node(pkg, "test", rel, rp, text)
            for rel, rp in L.files_under(pkg, "model-paths", "models", (".sql", ".py")):
                text = L.read_text(rp)
                if text is not None:
                    self.add_sql_node(pkg, "model", rel, rp, text)
            for rel, rp in L.files_under(pkg, "analysis-paths", "analyses", (".sql",)):
                text = L.read_text(rp)
                if text is not None:
                    self.add_sql_node(pkg, "analysis", rel, rp, text)
            for rel, rp in L.files_under(pkg, "snapshot-paths", "snapshots", (".sql",)):
                text = L.read_text(rp)
                if text is not None:
                    self.add_snapshot_file(pkg, rel, rp, text)
            for rel, rp in L.files_under(pkg, "seed-paths", "seeds", (".csv",)):
                self.add_seed(pkg, rel, rp)
            seen: set[str] = set()
            for key, default in _PROPERTY_PATHS:
                for rel, rp in L.files_under(pkg, key, default, (".yml", ".yaml")):
                    if rp not in seen:
                        seen.add(rp)
                        yaml_paths.append((pkg, rel, rp))
        for pkg, rel, rp in yaml_paths:
            self.read_properties(pkg, rel, rp)
        self.apply_versions()
        self.resolve_all()
        self.link()
        project._tests_loader = self.load_tests
        project._builder = self
        project.findings = L.findings
        project.macros_hash = self.macros_hash
        project.yaml_with_refs = L.yaml_with_refs
        project.declared_packages = L.declared_packages
        fs_root = getattr(L.fs, "root", None)
        if fs_root is not None:
            from pathlib import Path

            project.abs_root = Path(fs_root) / getattr(L.fs, "prefix", "") / L.root
        project.cache = L.cache
        return project

    def parse_adapter_type(self, root_pkg: Package) -> str | None:
        """``target.type`` while parsing, as dbt would have it for the user's target: the
        policy's ``dialect:``, else the profile's adapter type, else None (duckdb)."""
        L = self.L
        try:
            from dbt_bulwark.findings import UsageError
            from dbt_bulwark.policy import load_policy

            dialect = load_policy(L.fs, L.root).dialect
        except UsageError:   # a bad policy is reported by the command itself
            dialect = None
        if isinstance(dialect, str) and dialect.strip():
            key = dialect.strip().lower()
            return _DIALECT_ADAPTERS.get(key, key)
        from pathlib import Path

        from dbt_bulwark.project.profiles import project_adapter

        fs_root = getattr(L.fs, "root", None)
        base = Path(fs_root) / getattr(L.fs, "prefix", "") / L.root if fs_root else Path(".")
        try:
            return project_adapter(root_pkg.project_yml.get("profile"), base)
        except Exception:  # noqa: BLE001 - an unreadable profile is "no profile"
            return None

    # -- files
    def _fqn(self, pkg: Package, rel: str, name: str) -> list[str]:
        parts = rel.split("/")[:-1]
        return [pkg.name, *parts, name]

    def parse_sql(self, pkg: Package, text: str, path: str) -> dict[str, Any]:
        """refs, sources, config calls of a SQL node: static first, Jinja as dbt falls back."""
        found = self._unrendered.pop((pkg.name, text), None) or \
            self.parse_without_render(pkg, text)
        return found if found is not None else self.render_sql(pkg, text)

    def render_sql(self, pkg: Package, text: str) -> dict[str, Any]:
        """What the parse-mode render of a SQL node's template finds (cached)."""
        vars_ = node_vars(self.root_pkg, pkg, self.L.cli_vars)
        adapter_type = self.project.adapter_type or "duckdb"
        key = self.render_key(pkg, text, vars_)
        cache = self.L.cache
        from dbt_bulwark.sql.jinja_env import (
            EnvVarMissing,
            RenderContext,
            RenderTimeout,
            SandboxError,
            VarMissing,
            error_line,
            render,
        )

        ctx = RenderContext(package=pkg.name, macros=self.macros, vars=vars_,
                            adapter_type=adapter_type)
        from dbt_bulwark.sql.builtins import make_builtins

        ctx.fallback = make_builtins(ctx)   # dbt.* global-project macros exist at parse time
        error: tuple[int, str] | None = None
        error_code = "BLK020"
        try:
            render(text, ctx)
        except (VarMissing, EnvVarMissing) as exc:
            error = (_find_line(text, getattr(exc, "name", "")), str(exc))
        except SandboxError as exc:
            error, error_code = (error_line(exc), str(exc)), "BLK021"
        except RenderTimeout as exc:
            error, error_code = (error_line(exc), str(exc)), "BLK022"
        except Exception as exc:  # noqa: BLE001 - any Jinja failure becomes a finding
            error = (error_line(exc), f"{exc.__class__.__name__}: {exc}")
        calls = cfg.merge_config_calls(ctx.config.calls)
        out = {"refs": [(n, p, v) for n, p, v in ctx.refs], "sources": list(ctx.sources),
               "calls": calls, "error": error, "by": "jinja", "error_code": error_code,
               "env": dict(ctx.env_read)}
        if cache is not None:
            cache.put(key, out)
        return out

    def parse_without_render(self, pkg: Package, text: str) -> dict[str, Any] | None:
        """What :meth:`parse_sql` finds when that needs no template rendered: dbt-extractor's
        static parse, an earlier render (cache), or a render whose only Jinja is inert calls
        and if blocks (:meth:`elide_inert_calls`, cached); None when the template must be
        rendered."""
        found = self.read_without_jinja(pkg, text)
        if found is not None:
            return found
        elided = None if self.banned else self.elide_inert_calls(pkg, text)
        if elided is not None and self.L.cache is not None:
            self.L.cache.put(self.render_key(
                pkg, text, node_vars(self.root_pkg, pkg, self.L.cli_vars)), elided)
        return elided

    def read_without_jinja(self, pkg: Package, text: str) -> dict[str, Any] | None:
        """dbt-extractor's static parse of ``text``, or an earlier render of it (cache)."""
        static = None if self.banned else extract_static(text, self.L.cache)
        if static is not None:
            return _static_reading(static)
        key = self.render_key(pkg, text, node_vars(self.root_pkg, pkg, self.L.cli_vars))
        return self.cached_render(key)

    def read_cached(self, pkg: Package, text: str) -> dict[str, Any] | None:
        """:meth:`read_without_jinja` from the parse cache only (dbt-extractor not run)."""
        static = self.L.cache.get(extract_key(text)) if self.L.cache is not None else None
        if static:
            return _static_reading(static)
        if static is None:
            return None          # never read: dbt-extractor may read it
        return self.cached_render(
            self.render_key(pkg, text, node_vars(self.root_pkg, pkg, self.L.cli_vars)))

    def render_key(self, pkg: Package, text: str, vars_: dict[str, Any]) -> tuple[str, ...]:
        """The parse cache's key of the parse-mode render of ``text`` in ``pkg``."""
        return ("render", content_hash(text), pkg.name, self.macros_hash,
                self.project.adapter_type or "duckdb", self._vars_hash(pkg.name, vars_))

    def _vars_hash(self, package: str, vars_: dict[str, Any]) -> str:
        """The hash of a package's node vars (the same for each of its nodes: once)."""
        if not hasattr(self, "_vars_hashes"):
            self._vars_hashes: dict[str, tuple[dict[str, Any], str]] = {}
        known = self._vars_hashes.get(package)
        if known is None or known[0] != vars_:
            known = (vars_, content_hash(repr(sorted(vars_.items(), key=lambda kv: str(kv[0])))))
            self._vars_hashes[package] = known
        return known[1]

    def cached_render(self, key: tuple[str, ...]) -> dict[str, Any] | None:
        hit = self.L.cache.get(key) if self.L.cache is not None else None
        # a render that read env_var() holds only while those variables are unchanged
        if hit is not None and all(os.environ.get(n) == v
                                   for n, v in hit.get("env", {}).items()):
            return hit
        return None

    def prerender(self, pkgs: list[Package]) -> None:
        """Fill the parse cache with what the models and analyses that dbt-extractor cannot
        read hold, on every core (:func:`dbt_bulwark.parallel.map_shares`): the Jinja of
        their templates (probes of their calls and conditions, compiling, rendering) is
        most of a cold load. The files are then read as usual, from the cache (what needed
        no render is handed to their :meth:`parse_sql`).

        dbt-extractor's thread pool does not survive a fork. When this process has not run
        it yet, the forked children run it too: each chunk reads its files whole, as
        :meth:`parse_sql` does, and parses the properties files (YAML) given to it
        (:meth:`prerender_all`). Otherwise dbt-extractor runs in this process only: it
        reads every file first, and in the end the text a chunk left of each template
        whose only Jinja is inert (:meth:`without_inert_jinja`); one it cannot read there
        is rendered afterwards, as without the prerender."""
        if self.banned or self.L.cache is None:
            return
        files: list[tuple[Package, str]] = []
        for pkg in pkgs:
            for key, default in (("model-paths", "models"), ("analysis-paths", "analyses")):
                for _rel, rp in self.L.files_under(pkg, key, default, (".sql",)):
                    text = self.L.peek_text(rp)
                    if text is not None:
                        files.append((pkg, text))
        if extractor_fresh():
            self.prerender_all(pkgs, files)
            return
        todo: list[tuple[Package, str]] = []
        for pkg, text in files:
            found = self.read_without_jinja(pkg, text)
            if found is None:
                todo.append((pkg, text))
            else:
                self._unrendered[(pkg.name, text)] = found
        if len(todo) < PRERENDER_MIN:
            return          # (each file is read by parse_sql)
        from dbt_bulwark.cache import template_store
        from dbt_bulwark.parallel import map_shares

        def share(items: Sequence[tuple[Package, str]]) -> list[tuple[str, str, str]]:
            left: list[tuple[str, str, str]] = []
            for pkg, text in items:
                rest = self.without_inert_jinja(pkg, text)
                if rest is None:
                    self.render_sql(pkg, text)
                else:
                    left.append((pkg.name, text, rest))
            return left

        results = map_shares(todo, share, [self.L.cache, template_store()], PRERENDER_MIN,
                             cost=_template_cost)
        for name, text, rest in (item for result in results for item in result):
            found = self.read_rest(rest)
            if found is None:
                continue      # rendered by parse_sql
            pkg = self.pkgs[name]
            self._unrendered[(name, text)] = found
            self.L.cache.put(self.render_key(
                pkg, text, node_vars(self.root_pkg, pkg, self.L.cli_vars)), found)

    def prerender_all(self, pkgs: list[Package], files: list[tuple[Package, str]]) -> None:
        """The prerender of a process that has not run dbt-extractor: the SQL files with
        Jinja and the properties files, in chunks that each read whole (dbt-extractor,
        else the if-block and inert-call reading, else the render; YAML parsed), every
        result a parse-cache entry. Files without Jinja are left to :meth:`parse_sql`."""
        todo: list[tuple[Package, str, str]] = []
        for pkg, text in files:
            if "{" not in text:
                continue
            found = self.read_cached(pkg, text)
            if found is None:
                todo.append((pkg, "", text))
            else:
                self._unrendered[(pkg.name, text)] = found
        if len(todo) < PRERENDER_MIN:
            return          # (each file is read by parse_sql)
        L = self.L
        assert L.cache is not None
        for pkg in pkgs:
            seen: set[str] = set()
            for key, default in _PROPERTY_PATHS:
                for _rel, rp in L.files_under(pkg, key, default, (".yml", ".yaml")):
                    yaml_text = L.peek_text(rp) if rp not in seen else None
                    seen.add(rp)
                    if yaml_text is not None and L.cache.get(yaml_key(yaml_text)) is None:
                        todo.append((pkg, rp, yaml_text))
        from dbt_bulwark.cache import template_store
        from dbt_bulwark.parallel import map_shares

        def share(items: Sequence[tuple[Package, str, str]]) -> None:
            for pkg, yaml_path, text in items:
                if yaml_path:
                    L.parse_yaml(text)
                elif self.parse_without_render(pkg, text) is None:
                    self.render_sql(pkg, text)

        def cost(item: tuple[Package, str, str]) -> float:
            return 1 + len(item[2]) / 2000 if item[1] else _template_cost(item)

        map_shares(todo, share, [L.cache, template_store()], PRERENDER_MIN, cost=cost)

    def elide_inert_calls(self, pkg: Package, text: str) -> dict[str, Any] | None:
        """What the parse-mode render of ``text`` would find, without compiling it, when the
        only Jinja dbt-extractor cannot read is ``{{ ... }}`` expressions without effect on
        a parse: calls of *inert* macros with literal arguments (see :meth:`inert_macro`),
        or expressions whose probe is clean (see :meth:`probe_call`). dbt-extractor's
        reading of the text without them is then the render's. Anything else (statements,
        comments, an expression with an effect or that could fail): None, and the template
        is rendered.

        ``{% if %}`` / ``{% elif %}`` / ``{% else %}`` statements, when they are the only
        ones, are first replaced by the branch the render takes (:meth:`select_branches`)."""
        rest = self.without_inert_jinja(pkg, text)
        return None if rest is None else self.read_rest(rest)

    def without_inert_jinja(self, pkg: Package, text: str) -> str | None:
        """``text`` with its if blocks replaced by the branch the render takes and its inert
        expressions blanked, for dbt-extractor to read (:meth:`elide_inert_calls`); None
        when the template must be rendered."""
        if "{#" in text:
            return None
        branched = False
        if "{%" in text:
            selected = self.select_branches(pkg, text)
            if selected is None:
                return None
            text, branched = selected, True
        elif "{{" not in text:
            return None
        pieces: list[str] = []
        pos = 0
        elided = 0
        vars_: dict[str, Any] | None = None
        for m in _EXPR_BLOCK_RE.finditer(text):
            expr = m.group(1)
            # a block whose end was found inside a string or a dict: not a block at all
            closed = "{" not in expr and "}" not in expr and _strings_closed(expr)
            if _EXTRACTOR_CALL_RE.match(expr):
                if not closed:
                    return None
                if vars_ is None:
                    # var() evaluated here is dbt's, unless a macro of that name replaces it
                    vars_ = {} if self.macros.find("var", pkg.name) or self.macros.find("var") \
                        else node_vars(self.root_pkg, pkg, self.L.cli_vars)
                literal = literal_config(expr, vars_) if vars_ or "var(" not in expr else None
                if literal is not None:       # config(enabled=var('x', False) | as_bool)
                    pieces.append(text[pos:m.start()])
                    pieces.append("{{ " + literal + " }}")
                    pos = m.end()
                    elided += 1
                continue                     # dbt-extractor reads these (or fails)
            call = _LITERAL_CALL_RE.fullmatch(expr)
            if not (_THIS_READ_RE.fullmatch(expr)       # {{ this.name }}: a read, no call
                    or call is not None and self.inert_call(pkg, call.group(1), call.group(2) or "")
                    or closed and self.probe_call(pkg, expr.strip())):
                return None
            pieces.append(text[pos:m.start()])
            pieces.append(" ")
            pos = m.end()
            elided += 1
        if not elided and not branched:
            return None
        pieces.append(text[pos:])
        return "".join(pieces)

    @staticmethod
    def read_rest(rest: str) -> dict[str, Any] | None:
        """dbt-extractor's reading of what :meth:`without_inert_jinja` left (None: it
        cannot read it; the template is rendered)."""
        static = extract_static(rest, None)
        if static is None:
            return None
        calls = cfg.merge_config_calls([{k: v} for k, v in static["configs"]])
        return {"refs": static["refs"], "sources": static["sources"], "calls": calls,
                "error": None, "by": "jinja", "error_code": "BLK020", "env": {}}

    def select_branches(self, pkg: Package, text: str) -> str | None:
        """``text`` with its ``{% if %}`` blocks replaced by what a parse-mode render of a
        model of ``pkg`` takes, the rest blanked (newlines kept, so lines do not move), when
        ``if``/``elif``/``else``/``endif`` are its only statements, the template compiles
        (:func:`_compiles`), and every condition the render
        evaluates probes clean (:meth:`probe_condition`: the same for every node of the
        package, without effect). None otherwise (the template is rendered)."""
        tags = list(_STMT_TAG_RE.finditer(text))
        if not tags or _STMT_TAG_RE.sub("", text).count("{%") or \
                any(m.group(1) not in _BRANCH_TAGS for m in tags) or \
                any("{%" in e.group(1) or "%}" in e.group(1)
                    for e in _EXPR_BLOCK_RE.finditer(text)):
            return None     # (a tag spelled inside an expression: Jinja reads it otherwise)
        keep: list[tuple[int, int]] = []
        frames: list[list[bool]] = []    # per open if: [a branch was taken, this one is]
        pos = 0

        def live() -> bool:
            return all(f[1] for f in frames)

        for m in tags:
            if live():
                keep.append((pos, m.start()))
            kind, arg = m.group(1), m.group(2)
            if "{" in arg or "}" in arg or not _strings_closed(arg):
                return None
            if kind == "if":
                outer = live()
                taken = self.probe_condition(pkg, arg) if outer else False
                if taken is None:
                    return None
                frames.append([taken or not outer, taken])
            elif kind in ("elif", "else") and frames:
                frame = frames.pop()
                if frame[0] or not live():
                    frames.append([True, False])
                else:
                    taken = True if kind == "else" else self.probe_condition(pkg, arg)
                    if taken is None:
                        return None
                    frames.append([taken, taken])
            elif kind == "endif" and frames:
                frames.pop()
            else:
                return None
            pos = m.end()
        if frames or not _compiles(text):    # (last: parsing costs most)
            return None
        keep.append((pos, len(text)))
        return blank_outside(text, keep)

    def probe_condition(self, pkg: Package, cond: str) -> bool | None:
        """What ``{% if cond %}`` decides in any parse-mode render of a model of ``pkg``
        (None: it could differ between nodes, have an effect, or fail; see
        :meth:`probe_call`)."""
        if "return" in cond:
            return None
        rendered = self._probe(pkg, "{% if " + cond + " %}1{% else %}0{% endif %}")
        return None if rendered is None else rendered == "1"

    def inert_call(self, pkg: Package, name: str, args: str) -> bool:
        """``name(args)`` (literal arguments) in a model of ``pkg`` calls an inert macro with
        arguments it accepts (too many, unknown or repeated ones raise in Jinja)."""
        if "." in name:
            space, _, short = name.partition(".")
            if short.startswith("_") or space in self._context_names(pkg) \
                    or self.macros.find(space, pkg.name) or self.macros.find(space) \
                    or space not in self.macros.by_package:
                return False
            mdef = self.macros.find(short, space)
        else:
            if name in self._context_names(pkg):
                return False
            mdef = self.macros.find(name, pkg.name) or self.macros.find(name)
        params = self.inert_macro(mdef) if mdef is not None else None
        if params is None:
            return False
        positional = 0
        seen: set[str] = set()
        for arg in _split_args(args):
            kw = re.match(r"\s*([A-Za-z_]\w*)\s*=(?!=)", arg)
            if kw is None:
                if seen:
                    return False             # positional after keyword: a syntax error
                positional += 1
                continue
            if kw.group(1) not in params or kw.group(1) in seen:
                return False
            seen.add(kw.group(1))
        return positional <= len(params) and not seen & set(params[:positional])

    def probe_call(self, pkg: Package, expr: str) -> bool:
        """``{{ expr }}`` (a call with literal arguments) is inert in any parse-mode render of
        a model of ``pkg``: rendered once alone, it calls no ref/source/config/env_var,
        reads no missing var, calls nothing of the warehouse, does not fail, and every
        global name its macros look up is a macro, a package or a context member that is
        the same for every node of the package (:data:`_PROBE_NAMES`), so its effect does
        not depend on the node or on what the template did before it."""
        if "return" in expr:
            return False      # a top-level return() ends the render: what follows is unread
        return self._probe(pkg, "{{ " + expr + " }}") is not None

    def _probe(self, pkg: Package, template: str) -> str | None:
        """The output of ``template`` rendered alone in a parse-mode context of ``pkg``, when
        that calls no ref/source/config/env_var, reads no missing var, calls nothing of
        the warehouse, does not fail and reads only names that are the same for every node
        of the package; else None. Remembered per package."""
        probes = self.__dict__.setdefault("_probes", {})
        key = (pkg.name, template)
        if key in probes:
            return probes[key]
        from dbt_bulwark.sql.builtins import make_builtins
        from dbt_bulwark.sql.jinja_env import RenderContext, render

        contexts = self.__dict__.setdefault("_probe_ctx", {})
        ctx = contexts.get(pkg.name)
        if ctx is None:
            ctx = RenderContext(package=pkg.name, macros=self.macros,
                                vars=node_vars(self.root_pkg, pkg, self.L.cli_vars),
                                adapter_type=self.project.adapter_type or "duckdb")
            ctx.fallback = make_builtins(ctx)
            contexts[pkg.name] = ctx
        ctx.names_read = set()
        out: str | None = None
        try:
            out = render(template, ctx)
        except Exception:  # noqa: BLE001 - a call that fails is left to the render
            out = None
        read, ctx.names_read = ctx.names_read, None
        dirty = bool(ctx.refs or ctx.sources or ctx.config.calls or ctx.env_read
                     or ctx.vars_missing or ctx.env_missing or ctx.warehouse_calls)
        if dirty or out is None:
            contexts.pop(pkg.name, None)      # the next probe starts clean
        context = self._context_names(pkg)
        if dirty or not all(n in _PROBE_NAMES or n not in context for n in read):
            out = None
        probes[key] = out
        return out

    def _context_names(self, pkg: Package) -> frozenset[str]:
        """The names a parse-mode template of ``pkg`` sees before any macro (ref, var,
        adapter, ...): a macro of the same name is shadowed by them."""
        cached = self._ctx_names.get(pkg.name) if hasattr(self, "_ctx_names") else None
        if cached is None:
            from dbt_bulwark.sql.builtins import make_builtins
            from dbt_bulwark.sql.jinja_env import RenderContext, environment

            ctx = RenderContext(package=pkg.name, macros=self.macros, vars={},
                                adapter_type=self.project.adapter_type or "duckdb")
            ctx.fallback = make_builtins(ctx)
            names = set(dict(ctx.namespace(pkg.name))) | set(environment(True).globals)
            cached = frozenset(names)
            if not hasattr(self, "_ctx_names"):
                self._ctx_names: dict[str, frozenset[str]] = {}
            self._ctx_names[pkg.name] = cached
        return cached

    def inert_macro(self, mdef: MacroDef) -> list[str] | None:
        """The parameters of macro ``mdef`` when it is inert: defined once in its file, its
        parameters plain names (defaults literal), its body text with ``{{ param }}`` only
        (no statement, comment or call), and it compiles. Else None."""
        if not hasattr(self, "_inert"):
            self._inert: dict[tuple[str, str, str], list[str] | None] = {}
        key = (mdef.package, mdef.path, mdef.name)
        if key in self._inert:
            return self._inert[key]
        self._inert[key] = None
        defs = re.findall(r"{%-?\s*(?:macro|test|materialization)\s+" + re.escape(mdef.name)
                          + r"\b", mdef.text)
        m = re.search(r"{%-?\s*macro\s+" + re.escape(mdef.name)
                      + r"\s*\(([^(){}%]*)\)\s*-?%}(.*?){%-?\s*endmacro\s*-?%}",
                      mdef.text, re.S)
        if len(defs) != 1 or m is None:
            return None
        params: list[str] = []
        for part in _split_args(m.group(1)):
            pm = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*(?:=\s*(" + _LITERAL + r"|none|None|"
                              r"true|false|True|False)\s*)?", part)
            if pm is None:
                return None
            params.append(pm.group(1))
        if len(set(params)) != len(params) or {"varargs", "kwargs", "caller"} & set(params):
            return None
        body = m.group(2)
        if "{%" in body or "{#" in body:
            return None
        for block in _EXPR_BLOCK_RE.finditer(body):
            if block.group(1).strip() not in params:
                return None
        rest = _EXPR_BLOCK_RE.sub("", body)
        if "{{" in rest or "}}" in rest:
            return None
        try:
            from dbt_bulwark.sql.jinja_env import macro_template

            macro_template(self.macros, mdef)   # compiled as the render would (shared)
        except Exception:  # noqa: BLE001 - a macro that does not compile fails the render
            return None
        self._inert[key] = params
        return params

    def add_sql_node(self, pkg: Package, rt: str, rel: str, rp: str, text: str,
                     name: str | None = None) -> Node | None:
        stem, ext = os.path.splitext(rel.rsplit("/", 1)[-1])
        name = name or stem
        language = "python" if ext == ".py" else "sql"
        ofp = rp[len(pkg.root) + 1:] if pkg.root else rp
        node = Node(unique_id=f"{rt}.{pkg.name}.{name}", resource_type=rt, name=name,
                    package_name=pkg.name, path=rel, original_file_path=ofp, repo_path=rp,
                    fqn=self._fqn(pkg, rel, name), language=language, raw_code=text,
                    checksum=content_hash(text))
        if language == "python":
            refs, sources, calls, error = extract_python(text)
            if "def model(" not in text:
                return None
            node.refs, node.sources, node.calls, node.jinja_error = refs, sources, calls, error
            node.rendered_by = "python-ast"
        else:
            parsed = self.parse_sql(pkg, text, rp)
            node.refs = [RefCall(str(n), p, v) for n, p, v in parsed["refs"]]
            node.sources = [(str(a), str(b)) for a, b in parsed["sources"]]
            node.calls = parsed["calls"]
            node.jinja_error = parsed["error"]
            node.rendered_by = parsed["by"]
            code = parsed.get("error_code") or "BLK020"
        if node.jinja_error:
            line, msg = node.jinja_error
            if language == "sql" and code == "BLK021":
                self.L.finding(rp, line, code, f"blocked by dbt's Jinja sandbox: {msg}",
                               hint="dbt refuses this construct too; remove it")
            elif language == "sql" and code == "BLK022":
                self.L.finding(rp, line, code, f"Jinja {msg}",
                               hint="a template must render quickly; look for a runaway loop")
            else:
                self.L.finding(rp, line, "BLK020", f"dbt cannot parse this file: {msg}",
                               hint="fix the Jinja so that `dbt parse` can render it")
        self.nodes.append(node)
        return node

    def add_snapshot_file(self, pkg: Package, rel: str, rp: str, text: str) -> None:
        for m in SNAPSHOT_BLOCK_RE.finditer(text):
            name, body = m.group(1), m.group(2)
            node = self.add_sql_node(pkg, "snapshot", rel, rp, body, name=name)
            if node is not None:
                node.raw_code = body
                if node.jinja_error:
                    offset = text.count("\n", 0, m.start(2))
                    node.jinja_error = (node.jinja_error[0] + offset, node.jinja_error[1])

    def add_seed(self, pkg: Package, rel: str, rp: str) -> None:
        name = os.path.splitext(rel.rsplit("/", 1)[-1])[0]
        try:
            head = self.L.fs.read_bytes(rp)[:65536]
        except OSError:
            head = b""
        import csv
        import io

        first = head.decode("utf-8-sig", "replace").splitlines()[:1]
        cols = next(csv.reader(io.StringIO(first[0])), []) if first else []
        ofp = rp[len(pkg.root) + 1:] if pkg.root else rp
        self.nodes.append(Node(unique_id=f"seed.{pkg.name}.{name}", resource_type="seed",
                               name=name, package_name=pkg.name, path=rel,
                               original_file_path=ofp, repo_path=rp,
                               fqn=self._fqn(pkg, rel, name),
                               seed_columns=[c.strip() for c in cols]))

    # -- properties YAML
    def read_properties(self, pkg: Package, rel: str, rp: str) -> None:
        L = self.L
        data = L.read_yaml(rp)
        if data is None:
            return
        self.project.yaml_files[rp] = data
        if not isinstance(data, dict):
            L.finding(rp, 1, "BLK030", "a properties file must be a YAML mapping "
                      "(`version: 2`, `models:` ...)", hint="start the file with `version: 2`")
            return
        for key in PROPERTY_KEYS:
            if key in data and data[key] is not None and not isinstance(data[key], list):
                L.finding(rp, yamlio.line_of(data, key), "BLK030", f"`{key}:` must be a list",
                          hint=f"write `{key}:` followed by `- name: ...` items")
        self.check_property_types(data, rp)
        for key, rt in (("models", "model"), ("seeds", "seed"), ("snapshots", "snapshot"),
                        ("analyses", "analysis")):
            for entry in data.get(key) or [] if isinstance(data.get(key), list) else []:
                if not isinstance(entry, dict):
                    continue
                name = entry.get("name")
                if not isinstance(name, str):
                    L.finding(rp, yamlio.line_of(entry, "name"), "BLK033",
                              _name_problem(entry, f"an entry under `{key}:`"),
                              hint="add `name:`" if entry.get("name") is None else
                              "write the name as a single string")
                    continue
                if rt == "snapshot" and "relation" in entry:
                    self.add_yaml_snapshot(pkg, rel, rp, entry)
                    continue
                pk = (rt, pkg.name, name)
                if pk in self.patches:
                    other = self.patches[pk][1]
                    L.finding(rp, yamlio.line_of(entry), "BLK034",
                              f"{rt} '{name}' is described twice (also in {other}); dbt "
                              "rejects duplicate patches", hint="merge the two entries")
                    continue
                self.patches[pk] = (entry, rp)
        for entry in data.get("sources") or [] if isinstance(data.get("sources"), list) else []:
            if isinstance(entry, dict):
                self.add_sources(pkg, rel, rp, entry)
        for entry in data.get("exposures") or [] if isinstance(data.get("exposures"), list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                self.add_exposure(pkg, rel, rp, entry)
        for entry in data.get("groups") or [] if isinstance(data.get("groups"), list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                self.project.groups[entry["name"]] = (rp, yamlio.line_of(entry))
        for entry in data.get("unit_tests") or [] if isinstance(data.get("unit_tests"), list) \
                else []:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                self.project.unit_tests.append(UnitTest(entry["name"], str(entry.get("model")),
                                                        rp, yamlio.line_of(entry), pkg.name))

    def check_property_types(self, data: Mapping[str, Any], rp: str) -> None:
        """Values dbt's properties schema rejects and that nothing else here reports
        (BLK038): a column `name` that is not a string, an exposure `owner` that is not a
        mapping, a `deprecation_date` that is not a date, a unit test `model` that is not
        a string. Each makes `dbt parse` stop."""
        L = self.L

        def bad(obj: Any, key: str, what: str, must: str) -> None:
            value = obj.get(key)
            L.finding(rp, yamlio.line_of(obj, key), "BLK038",
                      f"`{key}` of {what} must be {must}, not {_kind_of(value)} "
                      f"({_short(value)}); dbt parse rejects this file",
                      hint=f"write `{key}:` as {must}")

        def columns(obj: Any, what: str) -> None:
            cols = obj.get("columns")
            for col in cols if isinstance(cols, list) else []:
                # a number or boolean (a list/mapping is fast-compile's BLK150)
                if isinstance(col, dict) and isinstance(col.get("name"), (int, float)):
                    bad(col, "name", f"a column of {what}", "a string")

        def entries(key: str) -> list[Any]:
            value = data.get(key)
            return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []

        for key, label in (("models", "model"), ("seeds", "seed"), ("snapshots", "snapshot"),
                           ("analyses", "analysis")):
            for entry in entries(key):
                what = f"{label} '{entry.get('name')}'"
                columns(entry, what)
                if key == "models":
                    if not _date_ok(entry.get("deprecation_date")):
                        bad(entry, "deprecation_date", what, "a date (YYYY-MM-DD)")
                    versions = entry.get("versions")
                    for ventry in versions if isinstance(versions, list) else []:
                        if not isinstance(ventry, dict):
                            continue
                        vwhat = f"version {ventry.get('v')} of {what}"
                        columns(ventry, vwhat)
                        if not _date_ok(ventry.get("deprecation_date")):
                            bad(ventry, "deprecation_date", vwhat, "a date (YYYY-MM-DD)")
        for src in entries("sources"):
            tables = src.get("tables")
            for table in tables if isinstance(tables, list) else []:
                if isinstance(table, dict):
                    columns(table, f"source table '{src.get('name')}.{table.get('name')}'")
        for exp in entries("exposures"):
            owner = exp.get("owner")
            if "owner" in exp and not isinstance(owner, dict):   # an empty owner too
                bad(exp, "owner", f"exposure '{exp.get('name')}'",
                    "a mapping (`name:` and/or `email:`)")
        for test in entries("unit_tests"):
            model = test.get("model")
            if model is not None and not isinstance(model, str):
                bad(test, "model", f"unit test '{test.get('name')}'", "a model name (string)")

    def add_yaml_snapshot(self, pkg: Package, rel: str, rp: str, entry: Mapping[str, Any]) -> None:
        name = str(entry["name"])
        relation = str(entry.get("relation") or "")
        parsed = self.parse_sql(pkg, "{{ " + relation + " }}", rp) if relation else \
            {"refs": [], "sources": [], "calls": {}, "error": None}
        ofp = rp[len(pkg.root) + 1:] if pkg.root else rp
        node = Node(unique_id=f"snapshot.{pkg.name}.{name}", resource_type="snapshot",
                    name=name, package_name=pkg.name, path=rel, original_file_path=ofp,
                    repo_path=rp, fqn=self._fqn(pkg, rel, name),
                    refs=[RefCall(str(n), p, v) for n, p, v in parsed["refs"]],
                    sources=[(str(a), str(b)) for a, b in parsed["sources"]],
                    patch_path=rp, patch_line=yamlio.line_of(entry))
        self.nodes.append(node)
        self.patches[("snapshot", pkg.name, name)] = (entry, rp)

    def add_sources(self, pkg: Package, rel: str, rp: str, entry: Mapping[str, Any]) -> None:
        src_name = entry.get("name")
        if not isinstance(src_name, str):
            self.L.finding(rp, yamlio.line_of(entry, "name"), "BLK033",
                           _name_problem(entry, "a source"),
                           hint="add `name:`" if src_name is None else
                           "write the name as a single string")
            return
        tables = entry.get("tables") or []
        if not isinstance(tables, list):
            self.L.finding(rp, yamlio.line_of(entry, "tables"), "BLK030",
                           f"`tables:` of source '{src_name}' must be a list",
                           hint="write `tables:` followed by `- name: ...` items")
            return
        src_conf = patch_config(entry, rp, self.L)
        dirs = rel.split("/")[:-1]
        for table in tables:
            if not isinstance(table, dict) or not isinstance(table.get("name"), str):
                continue
            tname = table["name"]
            fqn = [pkg.name, *dirs, src_name, tname]
            patch = cfg.deep_merge(src_conf, patch_config(table, rp, self.L))
            conf, _origin = resolve_config("source", fqn, pkg, self.root_pkg, patch, rp, None, rp)
            source = Source(unique_id=f"source.{pkg.name}.{src_name}.{tname}",
                            source_name=src_name, name=tname, package_name=pkg.name,
                            repo_path=rp, line=yamlio.line_of(table), fqn=fqn, config=conf,
                            description=str(table.get("description") or ""),
                            identifier=table.get("identifier"),
                            original_file_path=rp[len(pkg.root) + 1:] if pkg.root else rp)
            items, owner = table.get("columns"), f"source '{src_name}.{tname}'"
            if items is not None and not isinstance(items, list):
                parse_columns(items, rp, self.L, owner)   # the finding, now
            elif items:
                source.set_columns_lazily(
                    functools.partial(parse_columns, items, rp, self.L, owner))
            source.tests = parse_tests(table.get("data_tests", table.get("tests")), None, rp,
                                       source.line)
            if source.enabled:
                self.project.sources[source.unique_id] = source
            else:
                self.project.disabled_sources[source.unique_id] = source

    def add_exposure(self, pkg: Package, rel: str, rp: str, entry: Mapping[str, Any]) -> None:
        name = str(entry["name"])
        deps = entry.get("depends_on") or []
        text = " ".join("{{ " + str(d) + " }}" for d in deps if isinstance(d, str))
        parsed = self.parse_sql(pkg, text, rp) if text else {"refs": [], "sources": []}
        patch = patch_config(entry, rp, self.L)
        if isinstance(entry.get("tags"), (list, str)):
            patch = yamlio.LineDict(cfg.merge_into(dict(patch), {"tags": entry["tags"]}))
        fqn = [pkg.name, *rel.split("/")[:-1], name]
        conf, _ = resolve_config("exposure", fqn, pkg, self.root_pkg, patch, rp, None, rp)
        exp = Exposure(unique_id=f"exposure.{pkg.name}.{name}", name=name, package_name=pkg.name,
                       repo_path=rp, line=yamlio.line_of(entry), fqn=fqn,
                       exposure_type=str(entry.get("type") or ""),
                       owner=_dict_at(entry, "owner"),
                       refs=[RefCall(str(n), p, v) for n, p, v in parsed["refs"]],
                       sources=[(str(a), str(b)) for a, b in parsed["sources"]], config=conf,
                       description=str(entry.get("description") or ""),
                       original_file_path=rp[len(pkg.root) + 1:] if pkg.root else rp)
        if exp.enabled:
            self.project.exposures[exp.unique_id] = exp

    # -- versions, config, graph
    def apply_versions(self) -> None:
        by_key: dict[tuple[str, str], list[Node]] = {}
        for node in self.nodes:
            if node.resource_type == "model":
                by_key.setdefault((node.package_name, node.name), []).append(node)
        for (rt, pkg_name, name), (entry, rp) in list(self.patches.items()):
            versions = entry.get("versions") if rt == "model" else None
            if not isinstance(versions, list) or not versions:
                continue
            vs = [v for v in versions if isinstance(v, dict) and "v" in v]
            if not vs:
                continue
            latest = entry.get("latest_version")
            if latest is None:
                try:
                    latest = max(v["v"] for v in vs)
                except TypeError:
                    latest = vs[-1]["v"]
            base_cols = parse_columns(entry.get("columns"), rp, self.L, f"model '{name}'")
            for ventry in vs:
                v = ventry["v"]
                fname = ventry.get("defined_in") or f"{name}_v{_as_version(v)}"
                candidates = by_key.get((pkg_name, str(fname)), [])
                if not candidates and _as_version(v) == _as_version(latest):
                    candidates = by_key.get((pkg_name, name), [])
                if not candidates:
                    self.L.finding(rp, yamlio.line_of(ventry), "BLK035",
                                   f"version {v} of model '{name}' has no SQL file "
                                   f"(looked for {fname}.sql)",
                                   hint=f"create {fname}.sql or set `defined_in:`", severity="warning")
                    continue
                node = candidates.pop(0)
                node.name = name
                node.version = v
                node.latest_version = latest
                node.unique_id = f"model.{pkg_name}.{name}.v{_as_version(v)}"
                node.fqn = node.fqn[:-1] + [name, f"v{_as_version(v)}"]
                vpatch = patch_config(entry, rp, self.L)
                vconf = patch_config(ventry, rp, self.L)
                merged = yamlio.LineDict(cfg.deep_merge(vpatch, vconf))
                merged.key_lines = {**vpatch.key_lines, **vconf.key_lines}
                node.patch_path, node.patch_line = rp, yamlio.line_of(ventry)
                node.description = str(ventry.get("description") or entry.get("description") or "")
                node.columns = version_columns(base_cols, ventry, rp, self.L)
                node.constraints = ventry.get("constraints") or entry.get("constraints") or []
                node.deprecation_date = _str_or_none(ventry.get("deprecation_date"))
                node.tests = parse_tests(entry.get("data_tests", entry.get("tests")), None, rp,
                                         yamlio.line_of(entry)) + \
                    parse_tests(ventry.get("data_tests", ventry.get("tests")), None, rp,
                                yamlio.line_of(ventry))
                node.config = {"__patch__": merged}  # resolved in resolve_all
            self.patches.pop((rt, pkg_name, name))

    def resolve_all(self) -> None:
        project = self.project
        for node in self.nodes:
            pkg = self.pkgs[node.package_name]
            patch: Mapping[str, Any] | None = None
            patch_path: str | None = None
            if "__patch__" in node.config:
                patch, patch_path = node.config.pop("__patch__"), node.patch_path
            else:
                found = self.patches.get((node.resource_type, node.package_name, node.name))
                if found:
                    entry, patch_path = found
                    patch = patch_config(entry, patch_path, self.L)
                    node.patch_path, node.patch_line = patch_path, yamlio.line_of(entry)
                    node.description = str(entry.get("description") or "")
                    items = entry.get("columns")
                    owner = f"{node.resource_type} '{node.name}'"
                    if items is not None and not isinstance(items, list):
                        parse_columns(items, patch_path, self.L, owner)   # the finding
                    elif items:
                        node.set_columns_lazily(
                            functools.partial(parse_columns, items, patch_path, self.L, owner))
                    node.constraints = entry.get("constraints") or []
                    node.deprecation_date = _str_or_none(entry.get("deprecation_date"))
                    node.tests = parse_tests(entry.get("data_tests", entry.get("tests")), None,
                                             patch_path, yamlio.line_of(entry))
                    found_key = (node.resource_type, node.package_name, node.name)
                    self._used_patches.add(found_key)
            lines = config_call_lines(node.raw_code, tuple(node.calls)) if node.calls \
                else None
            node.config, node.config_origin = resolve_config(
                node.resource_type, node.fqn, pkg, self.root_pkg, patch, patch_path,
                node.calls, node.repo_path, lines)
            if node.enabled:
                if node.unique_id in project.nodes:
                    other = project.nodes[node.unique_id]
                    self.L.finding(node.repo_path, 1, "BLK036",
                                   f"two enabled {node.resource_type}s are named "
                                   f"'{node.name}' (also {other.repo_path}); dbt rejects this",
                                   hint="rename one of them or disable it")
                    continue
                project.nodes[node.unique_id] = node
            else:
                project.disabled.setdefault(node.unique_id, []).append(node)
        for (rt, pkg_name, name), (entry, rp) in self.patches.items():
            if (rt, pkg_name, name) in self._used_patches or pkg_name != project.name:
                continue
            if entry.get("versions"):
                continue
            # dbt only warns ("Did not find matching node for patch") and builds the rest:
            # info on its own; the regression layer makes a new one (an entry this change
            # added or orphaned) a warning
            self.L.finding(rp, yamlio.line_of(entry), "BLK037",
                           f"{rt} '{name}' is described in YAML but has no file",
                           severity="info",
                           hint=f"create the {rt} file, or remove or rename this entry")

    def load_tests(self, enabled_out: dict[str, Node], disabled_out: dict[str, Node]) -> None:
        """Build the test nodes into the given dicts and link them (called lazily); refs
        in their arguments that do not resolve are added to ``project.unresolved``."""
        self.build_tests(enabled_out, disabled_out)
        self.link(list(enabled_out.values()))
        self.project.invalidate_graph()

    def build_tests(self, enabled_out: dict[str, Node], disabled_out: dict[str, Node]) -> None:
        """Generic data tests and unit tests as dbt creates them (see generic_tests.py)."""
        from dbt_bulwark.project.dbt_rules import unpacks_test_arguments
        from dbt_bulwark.project.generic_tests import build_test_node

        project = self.project
        unpack = unpacks_test_arguments(self.root_pkg.project_yml)   # dbt >= 1.10 rule
        targets: list[tuple[Any, bool]] = [(n, True) for n in project.nodes.values()]
        targets += [(n, False) for nodes in project.disabled.values() for n in nodes]
        targets += [(s, True) for s in project.sources.values()]
        targets += [(s, False) for s in project.disabled_sources.values()]
        for target, enabled in targets:
            if target.resource_type not in ("model", "seed", "snapshot", "source"):
                continue
            tests = [(t, None) for t in target.tests]
            tests += [(t, c) for c in target.columns for t in c.tests]
            if not tests:
                continue
            pkg = self.pkgs[target.package_name]
            yaml_path = target.repo_path if isinstance(target, Source) else target.patch_path
            if not yaml_path:
                continue
            ofp = yaml_path[len(pkg.root) + 1:] if pkg.root else yaml_path
            yaml_rel = ofp.split("/", 1)[1] if "/" in ofp else ofp
            for test, column in tests:
                if isinstance(target, Source):
                    node = build_test_node(test, package=pkg.name, target_kind="source",
                                           target_name=target.source_name, version=None,
                                           source_table=target.name, column=column,
                                           yaml_rel=yaml_rel, repo_path=yaml_path,
                                           original_file_path=ofp, unpack_arguments=unpack)
                else:
                    node = build_test_node(test, package=pkg.name, target_kind="model",
                                           target_name=target.name, version=target.version,
                                           source_table=None, column=column, yaml_rel=yaml_rel,
                                           repo_path=yaml_path, original_file_path=ofp,
                                           unpack_arguments=unpack)
                if node is None:
                    continue
                calls = node.calls
                node.calls = {}
                extra = node.config
                node.config, node.config_origin = resolve_config(
                    "test", node.fqn, pkg, self.root_pkg, None, None, calls, yaml_path)
                node.config.update(extra)
                if enabled and node.enabled:
                    enabled_out[node.unique_id] = node
                else:
                    node.config["enabled"] = False
                    disabled_out[node.unique_id] = node
        for ut in project.unit_tests:
            ut_pkg = self.pkgs.get(ut.package_name)
            if ut_pkg is None:
                continue
            pkg = ut_pkg
            ofp = ut.repo_path[len(pkg.root) + 1:] if pkg.root else ut.repo_path
            rel = ofp.split("/", 1)[1] if "/" in ofp else ofp
            node = Node(unique_id=f"unit_test.{pkg.name}.{ut.model}.{ut.name}",
                        resource_type="unit_test", name=ut.name, package_name=pkg.name,
                        path=rel, original_file_path=ofp, repo_path=ut.repo_path,
                        fqn=[pkg.name, *rel.split("/")[:-1], ut.model, ut.name],
                        refs=[RefCall(ut.model)], patch_path=ut.repo_path, patch_line=ut.line)
            node.config, node.config_origin = resolve_config(
                "unit_test", node.fqn, pkg, self.root_pkg, None, None, None, ut.repo_path)
            model = project.model_by_name(ut.model)
            if model is not None and node.enabled:
                enabled_out[node.unique_id] = node
            else:
                node.config["enabled"] = False
                disabled_out[node.unique_id] = node

    def link(self, items: list[Any] | None = None, record_unresolved: bool = True) -> None:
        """Resolve refs and sources into ``depends_on`` (dbt's search order)."""
        project = self.project
        refable: dict[str, list[Node]] = {}
        for node in project.nodes.values():
            if node.resource_type in ("model", "seed", "snapshot"):
                refable.setdefault(node.name, []).append(node)
        disabled_names = {n.name for nodes in project.disabled.values() for n in nodes}
        by_source: dict[tuple[str, str], list[Source]] = {}
        for src in project.sources.values():
            by_source.setdefault((src.source_name, src.name), []).append(src)
        def search(current_pkg: str, target_pkg: str | None) -> list[str | None]:
            if target_pkg:
                return [target_pkg]
            if current_pkg == project.name:
                return [project.name, None]
            return [project.name, current_pkg, None]

        def resolve_ref(ref: RefCall, node_pkg: str) -> Node | None:
            for pkg in search(node_pkg, ref.package):
                for cand in refable.get(ref.name, []):
                    if pkg is not None and cand.package_name != pkg:
                        continue
                    if ref.version is not None:
                        if cand.version is None or _as_version(cand.version) != \
                                _as_version(ref.version):
                            continue
                    elif cand.version is not None and \
                            _as_version(cand.version) != _as_version(cand.latest_version):
                        continue
                    return cand
            return None

        def resolve_source(src: tuple[str, str], node_pkg: str) -> Source | None:
            cands = by_source.get(src, [])
            for pkg in search(node_pkg, None):
                for cand in cands:
                    if pkg is None or cand.package_name == pkg:
                        return cand
            return None

        if items is None:
            items = list(project.nodes.values()) + list(project.exposures.values())
            for nodes in project.disabled.values():
                items.extend(nodes)
        for item in items:
            deps: list[str] = []
            for ref in item.refs:
                target = resolve_ref(ref, item.package_name)
                if target is None:
                    reason = "disabled" if ref.name in disabled_names else "missing"
                    if record_unresolved:
                        project.unresolved.append((item.unique_id, ref, reason))
                elif target.unique_id not in deps:
                    deps.append(target.unique_id)
            for src in item.sources:
                found = resolve_source(src, item.package_name)
                if found is None:
                    if record_unresolved:
                        project.unresolved.append((item.unique_id, src, "missing"))
                elif found.unique_id not in deps:
                    deps.append(found.unique_id)
            item.depends_on = deps
        project.invalidate_graph()


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _find_line(text: str, needle: str) -> int:
    if not needle:
        return 1
    idx = text.find(needle)
    return text.count("\n", 0, idx) + 1 if idx >= 0 else 1


