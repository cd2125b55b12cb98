"""The team's policy: ``bulwark.yml`` (repo root or beside a dbt_project.yml) or
``[tool.bulwark]`` in ``pyproject.toml``.

A project-level ``bulwark.yml`` is deep-merged over the repository-level one.
Unknown keys, wrong types and wrong values (an unknown ``fail_on``, dialect, code,
layer, or a selector that does not parse) are a
:class:`~dbt_bulwark.findings.UsageError` naming the file, the line, the key and the
allowed values (exit code 2). :data:`SCHEMA` lists every key, its type and its default
for validation (the README documents it); :class:`Policy` is the same tree as frozen
dataclasses, what the hooks read (``policy.schema_diff.warn_only``).
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dbt_bulwark.findings import UsageError

# key -> (type(s), default) ; a nested dict is a section
SCHEMA: dict[str, Any] = {
    "dialect": ((str, type(None)), None),   # sqlglot dialect / dbt adapter type for SQL parsing
    "fail_on": (str, "error"),              # error | warning: the lowest severity that fails
    "fail_on_existing": (bool, False),      # findings already at the base revision fail too
    "exclude": (list, []),                  # glob patterns of repo paths never checked
    "select": ((list, str, type(None)), None),  # codes/prefixes to report (None = all)
    "ignore": ((list, str), []),            # codes/prefixes never reported
    "per_path_ignores": (dict, {}),         # glob -> codes/prefixes ignored in those paths
    "dbt_version": ((str, type(None)), None),   # "1.9": apply that dbt's rules (dbt_rules.py)
    "critical": {
        "select": ((str, list, type(None)), None),   # dbt selector; None = already tagged
        "min_downstream": ((int, type(None)), None),
        "feeds_exposures": (bool, False),
        "public": (bool, False),
        "tags": (list, ["critical"]),
        "require": {
            "description": (bool, True),
            "owner": (bool, True),
            "primary_key": (bool, True),
            "contract": (bool, True),
        },
        "check_base": (bool, True),
    },
    "locked": {
        "tag": (str, "locked"),
    },
    "contracts": {
        "select": ((str, list), "tag:critical tag:locked access:public"),
        "require_primary_key": (bool, False),
        "check_types": (bool, True),
        "check_columns": (bool, True),
    },
    "fast_compile": {
        "check_sql": (bool, True),
        "check_columns": (bool, True),
        "trust_source_columns": (bool, False),   # declared source columns are complete
        "env_vars": (dict, {}),
    },
    "schema_diff": {
        "protected": ((str, list), "config.contract.enforced:true tag:critical tag:locked"),
        "main_branch": ((str, type(None)), None),
        "warn_only": (bool, False),
    },
    "ci": {
        "main_branch": ((str, type(None)), None),
        "layers": ((list, type(None)), None),
        "target": ((str, type(None)), None),
    },
    "baselines": {
        "select": ((str, list), "tag:critical"),
        "directory": (str, ".bulwark/baselines"),
        "float_tolerance": ((int, float), 1e-9),
        "row_count_tolerance": ((int, float), 0),
    },
    "data_quality": {
        "select": ((str, list, type(None)), None),
    },
}


def defaults(schema: dict[str, Any] = SCHEMA) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, spec in schema.items():
        out[key] = defaults(spec) if isinstance(spec, dict) else copy.deepcopy(spec[1])
    return out


def _validate(data: Any, schema: dict[str, Any], path: str, prefix: str) -> dict[str, Any]:
    from dbt_bulwark.project import yamlio

    if not isinstance(data, dict):
        raise UsageError(f"`{prefix or 'policy'}` must be a mapping", path,
                         yamlio.line_of(data) or None)
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        spec = schema.get(key)
        line = yamlio.line_of(data, key) or None
        if spec is None:
            known = ", ".join(sorted(schema))
            raise UsageError(f"unknown key `{dotted}` (known here: {known})", path, line)
        if isinstance(spec, dict):
            out[key] = _validate(value if value is not None else {}, spec, path, dotted)
            continue
        types = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
        if float in types and isinstance(value, int) and not isinstance(value, bool):
            value = float(value) if int not in types else value
        if isinstance(value, bool) and bool not in types:
            raise UsageError(f"`{dotted}` must be {_type_names(types)}, not a boolean", path, line)
        if not isinstance(value, types):
            raise UsageError(f"`{dotted}` must be {_type_names(types)}", path, line)
        check = VALUE_CHECKS.get(dotted.removeprefix("tool.bulwark."))
        if check is not None and value is not None:
            try:
                value = check(value)
            except ValueError as exc:
                raise UsageError(f"`{dotted}`: {exc}", path,
                                 getattr(exc, "line", None) or line) from None
        out[key] = value
    return out


# ----------------------------------------------------------------------------- values

def _check_fail_on(value: str) -> str:
    from dbt_bulwark.findings import SEVERITIES

    if value not in SEVERITIES:
        raise ValueError(f"unknown severity {value!r}; allowed: {', '.join(SEVERITIES)}")
    return value


def known_dialects() -> list[str]:
    """Every name ``dialect:`` accepts: sqlglot's dialects and the dbt adapter types
    bulwark maps to one (``sqlserver`` -> tsql, ``synapse``, ``fabric``, ``glue``...)."""
    from sqlglot.dialects.dialect import Dialects

    from dbt_bulwark.sql.columns import _ADAPTER_DIALECTS

    return sorted({d.value for d in Dialects if d.value} | set(_ADAPTER_DIALECTS))


# sqlglot's dialect names (``sqlglot.dialects.Dialects``), so that reading a policy does not
# import sqlglot (a hook that needs no SQL analysis never pays for it); a name not listed
# is looked up in the installed sqlglot. tests/test_fix_transactions.py checks the list.
SQLGLOT_DIALECTS = frozenset({
    "athena", "bigquery", "clickhouse", "databricks", "dax", "doris", "dremio", "drill",
    "druid", "duckdb", "dune", "exasol", "fabric", "hive", "materialize", "mysql", "oracle",
    "postgres", "presto", "prql", "redshift", "risingwave", "snowflake", "solr", "spark",
    "spark2", "sqlite", "starrocks", "tableau", "teradata", "trino", "tsql"})


def _check_dialect(value: str) -> str:
    name = value.strip().lower()
    if name in SQLGLOT_DIALECTS:
        return name
    allowed = known_dialects()
    if name not in allowed:
        import difflib

        close = difflib.get_close_matches(name, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dialect {value!r}{hint}; allowed: {', '.join(allowed)}")
    return name


def _check_selector(value: Any) -> Any:
    from dbt_bulwark.project.selector import validate

    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"a selector must be a string, not {item!r}")
    try:
        validate(items)
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return value


def _check_codes(value: Any) -> list[str]:
    from dbt_bulwark.codes import check_code_list

    return check_code_list(value)


def _check_per_path(value: dict) -> dict[str, list[str]]:
    from dbt_bulwark.codes import check_code_list

    out: dict[str, list[str]] = {}
    for glob, codes in value.items():
        if not isinstance(glob, str) or not glob:
            raise ValueError(f"keys are glob patterns of paths, not {glob!r}")
        try:
            out[glob] = check_code_list(codes)
        except ValueError as exc:
            from dbt_bulwark.project import yamlio

            problem = ValueError(f"{glob!r}: {exc}")
            problem.line = yamlio.line_of(value, glob) or None  # type: ignore[attr-defined]
            raise problem from None
    return out


def _check_layers(value: list) -> list:
    from dbt_bulwark.run.ci import LAYERS

    unknown = [str(x) for x in value if x not in LAYERS]
    if unknown:
        raise ValueError(f"unknown layer(s) {', '.join(unknown)}; allowed: {', '.join(LAYERS)}")
    return value


# dotted key -> check(value) returning the (normalised) value or raising ValueError
VALUE_CHECKS: dict[str, Any] = {
    "fail_on": _check_fail_on,
    "dialect": _check_dialect,
    "select": _check_codes,
    "ignore": _check_codes,
    "per_path_ignores": _check_per_path,
    "critical.select": _check_selector,
    "contracts.select": _check_selector,
    "schema_diff.protected": _check_selector,
    "baselines.select": _check_selector,
    "data_quality.select": _check_selector,
    "ci.layers": _check_layers,
}


def _type_names(types: tuple[type, ...]) -> str:
    names = {str: "a string", list: "a list", dict: "a mapping", bool: "true/false",
             int: "an integer", float: "a number", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ----------------------------------------------------------------------------- typed policy
# One frozen dataclass per section of SCHEMA (same keys, same defaults: a test holds them
# together), so a reader writes ``policy.schema_diff.warn_only`` and mypy checks it.


@dataclass(frozen=True)
class CriticalRequire:
    description: bool = True
    owner: bool = True
    primary_key: bool = True
    contract: bool = True


@dataclass(frozen=True)
class CriticalSection:
    select: str | list[str] | None = None
    min_downstream: int | None = None
    feeds_exposures: bool = False
    public: bool = False
    tags: list[str] = field(default_factory=lambda: ["critical"])
    require: CriticalRequire = field(default_factory=CriticalRequire)
    check_base: bool = True


@dataclass(frozen=True)
class LockedSection:
    tag: str = "locked"


@dataclass(frozen=True)
class ContractsSection:
    select: str | list[str] = "tag:critical tag:locked access:public"
    require_primary_key: bool = False
    check_types: bool = True
    check_columns: bool = True


@dataclass(frozen=True)
class FastCompileSection:
    check_sql: bool = True
    check_columns: bool = True
    trust_source_columns: bool = False
    env_vars: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaDiffSection:
    protected: str | list[str] = "config.contract.enforced:true tag:critical tag:locked"
    main_branch: str | None = None
    warn_only: bool = False


@dataclass(frozen=True)
class CiSection:
    main_branch: str | None = None
    layers: list[str] | None = None
    target: str | None = None


@dataclass(frozen=True)
class BaselinesSection:
    select: str | list[str] = "tag:critical"
    directory: str = ".bulwark/baselines"
    float_tolerance: float = 1e-9
    row_count_tolerance: float = 0


@dataclass(frozen=True)
class DataQualitySection:
    select: str | list[str] | None = None


@dataclass(frozen=True)
class Policy:
    """The policy in force for one project: read with :func:`load_policy`."""

    dialect: str | None = None
    fail_on: str = "error"
    fail_on_existing: bool = False
    exclude: list[str] = field(default_factory=list)
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    per_path_ignores: dict[str, list[str]] = field(default_factory=dict)
    dbt_version: str | None = None
    critical: CriticalSection = field(default_factory=CriticalSection)
    locked: LockedSection = field(default_factory=LockedSection)
    contracts: ContractsSection = field(default_factory=ContractsSection)
    fast_compile: FastCompileSection = field(default_factory=FastCompileSection)
    schema_diff: SchemaDiffSection = field(default_factory=SchemaDiffSection)
    ci: CiSection = field(default_factory=CiSection)
    baselines: BaselinesSection = field(default_factory=BaselinesSection)
    data_quality: DataQualitySection = field(default_factory=DataQualitySection)
    # files it was read from; dotted keys the user set (not part of what the policy says)
    sources: list[str] = field(default_factory=list, compare=False)
    explicit: frozenset[str] = field(default=frozenset(), compare=False)

    @classmethod
    def from_data(cls, data: dict[str, Any], sources: Iterable[str] = (),
                  explicit: Iterable[str] = ()) -> Policy:
        """The policy of validated ``data`` (keys missing from it keep their defaults)."""
        return _build(cls, data, sources=list(sources), explicit=frozenset(explicit))

    def is_set(self, dotted: str) -> bool:
        """Whether the user's files set ``dotted`` (else it is the default)."""
        return dotted in self.explicit

    def settings(self) -> dict[str, Any]:
        """What the policy says, as plain data (cache keys, comparisons)."""
        out = dataclasses.asdict(self)
        out.pop("sources")
        out.pop("explicit")
        return out


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    """The resolved field types of a policy dataclass (resolved once a process)."""
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _build(cls: type[Any], data: dict[str, Any], **extra: Any) -> Any:
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kind = hints[f.name]
        value = data[f.name]
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            values[f.name] = _build(kind, value if isinstance(value, dict) else {})
        else:
            values[f.name] = copy.deepcopy(value)
    return cls(**values, **extra)


def _dotted_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        out.add(dotted)
        if isinstance(value, dict):
            out |= _dotted_keys(value, dotted)
    return out


def read_policy_file(fs: Any, rel: str) -> dict[str, Any] | None:
    """Validated policy data from a ``bulwark.yml`` or ``pyproject.toml`` in ``fs``."""
    from dbt_bulwark.project import yamlio

    if not fs.is_file(rel):
        return None
    try:
        text = yamlio.decode(fs.read_bytes(rel))
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read policy: {exc}", rel) from None
    if rel.endswith("pyproject.toml"):
        if "bulwark" not in text:
            return None
        toml = _toml_module()
        if toml is None:
            raise UsageError("[tool.bulwark] needs the `tomli` package on Python < 3.11 "
                             "(pip install tomli), or move the policy to bulwark.yml", rel)
        try:
            doc = toml.loads(text)
        except toml.TOMLDecodeError as exc:
            raise UsageError(f"invalid TOML: {exc}", rel) from None
        section = doc.get("tool", {}).get("bulwark")
        if section is None:
            return None
        return _validate(section, SCHEMA, rel, "tool.bulwark")
    try:
        data = yamlio.load(text)
    except yamlio.YamlError as exc:
        raise UsageError(exc.message, rel, exc.line or None) from None
    if data is None:
        return {}
    return _validate(data, SCHEMA, rel, "")


def _toml_module() -> Any:
    """``tomllib`` (Python >= 3.11), else ``tomli`` (declared for Python 3.10), else None."""
    import importlib

    for name in ("tomllib", "tomli"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def load_policy(fs: Any, project_root: str | None = None) -> Policy:
    """Repository policy (``bulwark.yml`` or ``[tool.bulwark]``), then the project's own."""
    from dbt_bulwark.project.fs import join

    layers: list[tuple[str, dict[str, Any]]] = []
    root_data = read_policy_file(fs, "bulwark.yml")
    if root_data is not None:
        layers.append(("bulwark.yml", root_data))
    else:
        toml_data = read_policy_file(fs, "pyproject.toml")
        if toml_data is not None:
            layers.append(("pyproject.toml", toml_data))
    if project_root:
        rel = join(project_root, "bulwark.yml")
        data = read_policy_file(fs, rel)
        if data is not None:
            layers.append((rel, data))
    merged = defaults()
    explicit: set[str] = set()
    for _path, data in layers:
        merged = _merge(merged, data)
        explicit |= _dotted_keys(data)
    return Policy.from_data(merged, [path for path, _data in layers], explicit)
