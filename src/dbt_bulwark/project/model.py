"""The in-memory model of a dbt project: nodes, sources, exposures, macros, graph.

Built by :mod:`dbt_bulwark.project.loader` without importing dbt. Field names follow
dbt's manifest (``unique_id``, ``original_file_path``, ``depends_on``...). Every
path a finding prints is ``repo_path``: relative to the repository root.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dbt_bulwark.findings import Finding
from dbt_bulwark.project.macros import MacroIndex


@dataclass
class DataTest:
    """A generic data test declared in YAML (``data_tests:`` / ``tests:``)."""

    test_name: str                 # unique, not_null, relationships, dbt_utils.xyz ...
    column: str | None             # None for model-level tests
    kwargs: dict[str, Any]
    repo_path: str
    line: int
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def short_name(self) -> str:
        return self.test_name.rsplit(".", 1)[-1]


@dataclass
class Column:
    name: str
    data_type: str | None = None
    description: str = ""
    line: int = 0
    constraints: list[dict[str, Any]] = field(default_factory=list)
    tests: list[DataTest] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    quote: bool | None = None


@dataclass(frozen=True)
class RefCall:
    name: str
    package: str | None = None
    version: Any = None

    def label(self) -> str:
        args = ([repr(self.package)] if self.package else []) + [repr(self.name)]
        if self.version is not None:
            args.append(f"v={self.version!r}")
        return f"ref({', '.join(args)})"


def versioned_name(name: str, version: Any) -> str:
    """The one label of a (versioned) model: ``orders``, ``orders.v2``."""
    return name if version is None else f"{name}.v{version}"


class _LazyColumns:
    """YAML columns, parsed on first use (most hooks read the columns of few nodes)."""

    _columns: list[Column] | None
    _columns_thunk: Any

    @property
    def columns(self) -> list[Column]:
        """The columns declared in YAML, in order."""
        if self._columns is None:
            thunk, self._columns_thunk = self._columns_thunk, None
            self._columns = list(thunk()) if thunk is not None else []
        return self._columns

    @columns.setter
    def columns(self, value: list[Column]) -> None:
        self._columns, self._columns_thunk = list(value), None

    def set_columns_lazily(self, thunk: Any) -> None:
        self._columns, self._columns_thunk = None, thunk


@dataclass
class Node(_LazyColumns):
    """A model, seed, snapshot, analysis or singular test."""

    unique_id: str
    resource_type: str
    name: str
    package_name: str
    path: str                  # relative to the resource folder (dbt's node.path)
    original_file_path: str    # relative to the package root
    repo_path: str             # relative to the repository root
    fqn: list[str]
    language: str = "sql"
    raw_code: str = ""
    version: Any = None
    latest_version: Any = None
    deprecation_date: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    constraints: list[dict[str, Any]] = field(default_factory=list)
    tests: list[DataTest] = field(default_factory=list)
    refs: list[RefCall] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    patch_path: str | None = None      # repo path of the properties YAML describing it
    patch_line: int = 0                # line of its `- name:` (or `- v:`) entry
    config_origin: dict[str, tuple[str, int]] = field(default_factory=dict)
    calls: dict[str, Any] = field(default_factory=dict)   # merged SQL config() calls
    jinja_error: tuple[int, str] | None = None
    rendered_by: str = "static"        # static | jinja | python-ast | none
    seed_columns: list[str] = field(default_factory=list)
    checksum: str = ""
    # YAML columns, parsed on first use (most hooks read the columns of few models)
    _columns: list[Column] | None = field(default=None, repr=False, compare=False)
    _columns_thunk: Any = field(default=None, repr=False, compare=False)

    # convenient views of the effective config
    @property
    def enabled(self) -> bool:
        from dbt_bulwark.project.config import truthy

        return truthy(self.config.get("enabled", True))

    @property
    def tags(self) -> list[str]:
        out: list[str] = []
        for t in self.config.get("tags") or []:
            if t not in out:
                out.append(str(t))
        return out

    @property
    def materialized(self) -> str:
        return str(self.config.get("materialized") or "view")

    @property
    def contract_enforced(self) -> bool:
        contract = self.config.get("contract") or {}
        return bool(contract.get("enforced")) if isinstance(contract, dict) else False

    @property
    def access(self) -> str:
        return str(self.config.get("access") or "protected")

    @property
    def meta(self) -> dict[str, Any]:
        meta = self.config.get("meta")
        return meta if isinstance(meta, dict) else {}

    @property
    def label(self) -> str:
        """How messages name the model: ``name``, or ``name.v2`` for a version."""
        return versioned_name(self.name, self.version)

    @property
    def relation_name(self) -> str:
        alias = self.config.get("alias")
        if alias:
            return str(alias)
        if self.version is not None:
            return f"{self.name}_v{self.version}"
        return self.name

    def column(self, name: str) -> Column | None:
        low = name.lower()
        for col in self.columns:
            if col.name.lower() == low:
                return col
        return None

    def where(self, key: str) -> tuple[str, int]:
        """Where a config key was last set (repo path, line); else the node's YAML or file."""
        if key in self.config_origin:
            return self.config_origin[key]
        if self.patch_path:
            return self.patch_path, self.patch_line
        return self.repo_path, 1


class _EnabledAndTags:
    """``enabled`` and ``tags`` read from ``config`` (sources and exposures)."""

    config: dict[str, Any]

    @property
    def enabled(self) -> bool:
        from dbt_bulwark.project.config import truthy

        return truthy(self.config.get("enabled", True))

    @property
    def tags(self) -> list[str]:
        return [str(t) for t in self.config.get("tags") or []]


@dataclass
class Source(_LazyColumns, _EnabledAndTags):
    unique_id: str
    source_name: str
    name: str
    package_name: str
    repo_path: str
    line: int
    fqn: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tests: list[DataTest] = field(default_factory=list)
    identifier: str | None = None
    original_file_path: str = ""       # relative to the package root, like dbt
    _columns: list[Column] | None = field(default=None, repr=False, compare=False)
    _columns_thunk: Any = field(default=None, repr=False, compare=False)

    @property
    def resource_type(self) -> str:
        return "source"

    @property
    def depends_on(self) -> list[str]:
        return []


@dataclass
class Exposure(_EnabledAndTags):
    unique_id: str
    name: str
    package_name: str
    repo_path: str
    line: int
    fqn: list[str]
    exposure_type: str = ""
    owner: dict[str, Any] = field(default_factory=dict)
    refs: list[RefCall] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    original_file_path: str = ""       # relative to the package root, like dbt

    @property
    def resource_type(self) -> str:
        return "exposure"


@dataclass
class Package:
    name: str
    root: str                 # directory relative to the repository root
    project_yml: dict[str, Any]
    is_root: bool = False
    local: bool = False
    # id(level dict of project_yml) -> (config keys, their lines): see loader._level
    level_memo: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    def paths(self, key: str, default: str) -> list[str]:
        value = self.project_yml.get(key)
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value:
            return [str(v) for v in value]
        return [default]


@dataclass
class UnitTest:
    name: str
    model: str
    repo_path: str
    line: int
    package_name: str


Resource = Node | Source | Exposure


@dataclass
class Project:
    """One dbt project (and the packages it can see), loaded without dbt."""

    name: str
    root: str                                   # project dir relative to the repository root
    project_yml: dict[str, Any]
    packages: dict[str, Package] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)           # enabled
    disabled: dict[str, list[Node]] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    disabled_sources: dict[str, Source] = field(default_factory=dict)
    exposures: dict[str, Exposure] = field(default_factory=dict)
    unit_tests: list[UnitTest] = field(default_factory=list)
    groups: dict[str, tuple[str, int]] = field(default_factory=dict)
    macros: MacroIndex | None = None
    vars: dict[str, Any] = field(default_factory=dict)        # root project vars (+ --vars)
    cli_vars: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)     # problems met while loading
    yaml_files: dict[str, Any] = field(default_factory=dict)  # repo path -> parsed YAML
    adapter_type: str | None = None
    abs_root: Any = None                                      # pathlib.Path of the project dir
    macros_hash: str = ""                                     # content hash of every macro file
    yaml_with_refs: set[str] = field(default_factory=set)     # YAML files calling ref()/source()
    declared_packages: list[str] = field(default_factory=list)  # packages.yml (not local:)
    cache: Any = field(default=None, repr=False)              # the ParseCache it was loaded with
    # (unique_id of the referring node, RefCall or (source, table), "missing" | "disabled")
    unresolved: list[tuple[str, Any, str]] = field(default_factory=list)
    _children: dict[str, set[str]] | None = field(default=None, repr=False)
    _test_children: dict[str, set[str]] | None = field(default=None, repr=False)
    # generic data tests and unit tests as dbt names them (test.<pkg>.<name>.<hash>):
    # built on first use (most hooks never need them), see ``data_tests``
    _data_tests: dict[str, Node] = field(default_factory=dict, repr=False)
    _disabled_tests: dict[str, Node] = field(default_factory=dict, repr=False)
    _tests_loader: Any = field(default=None, repr=False)
    _builder: Any = field(default=None, repr=False)   # what loaded it (derive_project)

    # -- data tests (lazy)
    def _ensure_tests(self) -> None:
        loader, self._tests_loader = self._tests_loader, None
        if loader is not None:
            loader(self._data_tests, self._disabled_tests)

    @property
    def data_tests(self) -> dict[str, Node]:
        """Enabled generic data tests and unit tests (``test.*``, ``unit_test.*``)."""
        self._ensure_tests()
        return self._data_tests

    @property
    def disabled_tests(self) -> dict[str, Node]:
        self._ensure_tests()
        return self._disabled_tests

    # -- lookups
    def resources(self, include_disabled: bool = False,
                  include_tests: bool = True) -> Iterator[Resource]:
        yield from self.nodes.values()
        yield from self.sources.values()
        yield from self.exposures.values()
        if include_tests:
            yield from self.data_tests.values()
        if include_disabled:
            for nodes in self.disabled.values():
                yield from nodes
            yield from self.disabled_sources.values()
            if include_tests:
                yield from self.disabled_tests.values()

    def get(self, unique_id: str) -> Resource | None:
        found = self.nodes.get(unique_id) or self.sources.get(unique_id) or \
            self.exposures.get(unique_id)
        if found is None and unique_id.startswith(("test.", "unit_test.")):
            found = self.data_tests.get(unique_id)
        return found

    def models(self, include_packages: bool = True) -> list[Node]:
        return [n for n in self.nodes.values() if n.resource_type == "model"
                and (include_packages or n.package_name == self.name)]

    def model_by_name(self, name: str, version: Any = None) -> Node | None:
        candidates = [n for n in self.nodes.values()
                      if n.resource_type == "model" and n.name == name]
        if version is not None:
            candidates = [n for n in candidates if str(n.version) == str(version)]
        elif len(candidates) > 1:
            latest = [n for n in candidates
                      if n.version is not None and str(n.version) == str(n.latest_version)]
            candidates = latest or candidates
        own = [n for n in candidates if n.package_name == self.name]
        found = own or candidates
        return found[0] if found else None

    def node_for_file(self, repo_path: str) -> list[Node]:
        out = [n for n in self.nodes.values() if n.repo_path == repo_path]
        for nodes in self.disabled.values():
            out.extend(n for n in nodes if n.repo_path == repo_path)
        return out

    # -- graph
    def parents(self, unique_id: str) -> list[str]:
        res = self.get(unique_id)
        return list(getattr(res, "depends_on", []) or []) if res else []

    def children_map(self) -> dict[str, set[str]]:
        """Parent -> children over models, seeds, snapshots, sources, exposures and
        singular tests (generic data tests: see :meth:`test_children_map`)."""
        if self._children is None:
            children: dict[str, set[str]] = {}
            for res in self.resources(include_tests=False):
                for parent in getattr(res, "depends_on", []) or []:
                    children.setdefault(parent, set()).add(res.unique_id)
            self._children = children
        return self._children

    def test_children_map(self) -> dict[str, set[str]]:
        """Parent -> generic data tests and unit tests attached to it."""
        if self._test_children is None:
            children: dict[str, set[str]] = {}
            for test in self.data_tests.values():
                for parent in test.depends_on:
                    children.setdefault(parent, set()).add(test.unique_id)
            self._test_children = children
        return self._test_children

    def children(self, unique_id: str, include_tests: bool = False) -> set[str]:
        kids = self.children_map().get(unique_id, set())
        if include_tests:
            kids = kids | self.test_children_map().get(unique_id, set())
        return kids

    def descendants(self, unique_id: str, depth: int | None = None,
                    include_tests: bool = False) -> set[str]:
        return _walk(unique_id, lambda u: self.children(u, include_tests), depth)

    def ancestors(self, unique_id: str, depth: int | None = None) -> set[str]:
        return _walk(unique_id, lambda u: set(self.parents(u)), depth)

    def invalidate_graph(self) -> None:
        self._children = None
        self._test_children = None

    def repo_path_of_project_file(self, rel: str) -> str:
        from dbt_bulwark.project.fs import join

        return join(self.root, rel)


def _walk(start: str, step: Any, depth: int | None) -> set[str]:
    seen: set[str] = set()
    frontier = {start}
    level = 0
    while frontier and (depth is None or level < depth):
        nxt: set[str] = set()
        for uid in frontier:
            for other in step(uid):
                if other not in seen and other != start:
                    seen.add(other)
                    nxt.add(other)
        frontier = nxt
        level += 1
    return seen


def iter_models(projects: Iterable[Project]) -> Iterator[tuple[Project, Node]]:
    for project in projects:
        for node in project.models(include_packages=False):
            yield project, node
