"""A dbt-flavoured Jinja environment that runs without dbt or a warehouse.

It knows dbt's block tags (``materialization``, ``test``, ``docs``, ``snapshot``),
indexes macros of the project and its packages, and renders a node in *parse*
mode the way ``dbt parse`` does: ``execute`` is False, unknown names are
permissive, and ``config()``/``ref()``/``source()``/``var()`` calls are captured.
Compile-mode rendering (used by fast-compile) builds on :class:`RenderContext`.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.sandbox

from dbt_bulwark.project.macros import MACRO_DEF_RE, MacroDef, MacroIndex  # noqa: F401 - re-exported
from dbt_bulwark.sql import STANDIN

_MISSING = object()


class _MacroLikeExtension(jinja2.ext.Extension):
    """``{% test name(args) %}`` and ``{% materialization name, adapter='x' %}`` as macros."""

    tags = {"test", "materialization", "data_test"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        token = next(parser.stream)
        kind = token.value
        node = jinja2.nodes.Macro(lineno=token.lineno)
        name = parser.parse_assign_target(name_only=True).name
        node.args, node.defaults = [], []
        if kind == "materialization":
            adapter = "default"
            while parser.stream.skip_if("comma"):
                target = parser.parse_assign_target(name_only=True)
                if target.name == "adapter":
                    parser.stream.expect("assign")
                    value = parser.parse_expression()
                    adapter = getattr(value, "value", "default")
                elif target.name == "supported_languages":
                    target.set_ctx("param")
                    node.args.append(target)
                    parser.stream.expect("assign")
                    node.defaults.append(parser.parse_expression())
            node.name = f"materialization_{name}_{adapter}"
        else:
            parser.parse_signature(node)
            node.name = f"test_{name}"
        node.body = parser.parse_statements((f"name:end{kind}",), drop_needle=True)
        return node


class _DocsExtension(jinja2.ext.Extension):
    """``{% docs name %}...{% enddocs %}``: parsed, renders nothing."""

    tags = {"docs"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        parser.parse_assign_target(name_only=True)
        parser.parse_statements(("name:enddocs",), drop_needle=True)
        return jinja2.nodes.Output([], lineno=lineno)


class _SnapshotExtension(jinja2.ext.Extension):
    """``{% snapshot name %}body{% endsnapshot %}``: renders its body."""

    tags = {"snapshot"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        parser.parse_assign_target(name_only=True)
        body = parser.parse_statements(("name:endsnapshot",), drop_needle=True)
        return jinja2.nodes.Scope(body, lineno=lineno)


_UNDEFINED_LOG: list[list[str]] = []   # stack of recorders (compile mode notes what was unknown)
_STANDINS: list[bool] = []             # non-empty while a stand-in render runs (standin_mode)
# non-empty while a recorder runs (record_unknown_flow): notes each place where something
# unknown steered the render (a loop over it, a test of it, its text other than a stand-in)
_FLOW: list[list[str]] = []


_SANDBOX_FLAGS = frozenset({"unsafe_callable", "alters_data"})


def _flow(what: str) -> None:
    if _FLOW:
        _FLOW[-1].append(what)


class PermissiveUndefined(jinja2.Undefined):
    """Parse-time undefined: callable, subscriptable, attribute-able, renders as ''.

    While a recorder is pushed (:func:`record_undefined`), every top-level name that
    resolved to nothing is noted, so compile mode can tell "unknown macro" or
    "package not installed" from SQL it can check.
    """

    def __init__(self, hint: Any = None, obj: Any = jinja2.utils.missing, name: Any = None,
                 exc: Any = jinja2.exceptions.UndefinedError):
        super().__init__(hint, obj, name, exc)
        # a name looked up and not found (not a macro parameter left out: those carry a hint)
        if name and obj is jinja2.utils.missing and hint is None:
            if _UNDEFINED_LOG:
                _UNDEFINED_LOG[-1].append(str(name))
            self.__dict__["_standin"] = True
        elif isinstance(obj, PermissiveUndefined) and obj.__dict__.get("_standin"):
            self.__dict__["_standin"] = True    # pkg.macro of an unknown pkg

    def __str__(self) -> str:
        if _STANDINS and self.__dict__.get("_standin"):
            return STANDIN
        _flow("text")
        return ""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in _SANDBOX_FLAGS:
            raise AttributeError(name)   # (the sandbox asks each callable for these)
        return PermissiveUndefined(obj=self, name=name)

    def __getitem__(self, name: Any) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "caller" in kwargs:   # {% call unknown(...) %}: a call block's output is not str()-ed
            return ""
        return self

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override,unused-ignore]
        _flow("loop")
        return iter(())

    def __bool__(self) -> bool:
        _flow("test")
        return False

    def __len__(self) -> int:
        _flow("length")
        return 0

    def __eq__(self, other: object) -> bool:
        _flow("test")
        return type(self) is type(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = jinja2.Undefined.__hash__


class standin_mode:  # used as a context manager
    """``with standin_mode():`` an unknown name (and an attribute or call of it) renders as
    :data:`STANDIN` instead of nothing; a missing macro argument still renders as ''."""

    def __enter__(self) -> None:
        _STANDINS.append(True)

    def __exit__(self, *exc: Any) -> None:
        _STANDINS.pop()


class record_unknown_flow:  # used as a context manager
    """``with record_unknown_flow() as seen:`` ``seen`` lists each place where an unknown
    value steered the render (iterated, tested, measured, or rendered as text other than
    a stand-in): what the render shows there is not what dbt would render."""

    def __enter__(self) -> list[str]:
        _FLOW.append([])
        return _FLOW[-1]

    def __exit__(self, *exc: Any) -> None:
        _FLOW.pop()


class record_undefined:  # used as a context manager
    """``with record_undefined() as names:`` collects top-level undefined names."""

    def __enter__(self) -> list[str]:
        self.names: list[str] = []
        _UNDEFINED_LOG.append(self.names)
        return self.names

    def __exit__(self, *exc: Any) -> None:
        _UNDEFINED_LOG.pop()


def _as_native(value: Any) -> Any:
    import ast

    try:
        return ast.literal_eval(str(value).strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return value


def _as_bool(value: Any) -> Any:
    out = _as_native(value)
    if isinstance(out, str):
        return {"true": True, "false": False}.get(out.strip().lower(), out)
    return out


# dbt's own filters (dbt.clients.jinja): without them dbt-valid templates fail to compile
DBT_FILTERS: dict[str, Callable[[Any], Any]] = {
    "as_text": lambda v: "" if v is None else str(v),
    "as_bool": _as_bool,
    "as_number": _as_native,
    "as_native": _as_native,
}


# ----------------------------------------------------------------------------- sandbox
MAX_RANGE = 100_000   # dbt's (and jinja2.sandbox's) cap on range()


class SandboxError(jinja2.sandbox.SecurityError):
    """A construct dbt's sandbox refuses (an attribute escape, an oversized range())."""


class RenderTimeout(Exception):
    """A template rendered for longer than :func:`render_timeout` seconds."""

    def __init__(self, seconds: float, lineno: int | None = None):
        super().__init__(f"rendering took longer than {seconds:g} s and was stopped")
        self.seconds = seconds
        self.lineno = lineno   # where it was stopped, in the template rendered


def _safe_range(*args: Any) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise SandboxError(f"range too big: the sandbox blocks ranges larger than {MAX_RANGE:,} "
                           f"items (got {len(rng):,})")
    return rng


class SandboxedDbtEnvironment(jinja2.sandbox.SandboxedEnvironment):
    """dbt renders every template in ``jinja2.sandbox``: no ``_``-attributes, no
    internal attributes of functions/frames/generators, ``range()`` capped at 100,000.
    Unlike the stock sandbox, a refused attribute raises at once (with the permissive
    undefined of parse mode it would otherwise render as nothing and go unnoticed)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.globals["range"] = _safe_range

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SandboxError(f"access to attribute {attribute!r} of {type(obj).__name__!r} "
                           "object is unsafe")


def make_environment(permissive: bool = True) -> jinja2.Environment:
    env = SandboxedDbtEnvironment(
        extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols", _MacroLikeExtension,
                    _DocsExtension, _SnapshotExtension],
        undefined=PermissiveUndefined if permissive else jinja2.StrictUndefined,
        keep_trailing_newline=True,
        # no compile-time constant folding: it only moves work (the same values, the same
        # errors) from render to compile, and a template is compiled once per content but
        # the folding pass visits every node of it (~1/4 of code generation on real models)
        optimized=False,
    )
    env.filters.update(DBT_FILTERS)
    return env


_ENVS: dict[bool, jinja2.Environment] = {}


def environment(permissive: bool = True) -> jinja2.Environment:
    env = _ENVS.get(permissive)
    if env is None:
        env = _ENVS[permissive] = make_environment(permissive)
    return env


def error_line(exc: BaseException) -> int:
    """The line, in the template being rendered, of a rendering error (1 when unknown).

    Frames of compiled templates are mapped back to template lines (jinja keeps the
    table); an error inside a macro of another file is reported at the call site in the
    outermost template (the file being rendered)."""
    line = getattr(exc, "lineno", None)
    if isinstance(line, int) and line > 0 and isinstance(exc, jinja2.TemplateSyntaxError):
        return line
    tb = exc.__traceback__
    root: Any = None
    found = 0
    while tb is not None:
        template = tb.tb_frame.f_globals.get("__jinja_template__")
        if template is not None:
            if root is None:
                root = template
            if template is root:
                with contextlib.suppress(Exception):   # no debug info: keep the last line
                    found = template.get_corresponding_lineno(tb.tb_lineno)
        tb = tb.tb_next
    if found > 0:
        return found
    if isinstance(line, int) and line > 0:
        return line
    return 1


def syntax_error(text: str) -> tuple[int, str] | None:
    """(line, message) of a Jinja syntax error in ``text``, or None."""
    try:
        environment().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return exc.lineno or 0, exc.message or str(exc)
    return None


# macros: see dbt_bulwark.project.macros (no jinja2 needed to index them)


# ----------------------------------------------------------------------------- context
class Relation:
    """What ``ref()``/``source()``/``this`` return: renders as an identifier."""

    def __init__(self, identifier: str, database: str = "", schema: str = "",
                 name: str = ""):
        self.identifier = identifier
        self.database = database
        self.schema = schema
        self.name = name or identifier
        self.table = self.name

    def __str__(self) -> str:
        return self.identifier

    def __html__(self) -> str:
        return self.identifier

    def render(self) -> str:
        return self.identifier

    def include(self, *args: Any, **kwargs: Any) -> Relation:
        return self

    def incorporate(self, *args: Any, **kwargs: Any) -> Relation:
        return self

    def quote(self, *args: Any, **kwargs: Any) -> Relation:
        return self

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return PermissiveUndefined(obj=self, name=name)


class ConfigCapture:
    """The ``config`` object: ``config(...)`` records, ``config.get`` reads what is known."""

    def __init__(self, known: Mapping[str, Any] | None = None):
        self.calls: list[dict[str, Any]] = []
        self.known = dict(known or {})

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        opts: dict[str, Any] = {}
        for arg in args:
            if isinstance(arg, Mapping):
                opts.update(arg)
        opts.update(kwargs)
        # a value computed by something unknown (an uninstalled package's macro:
        # `enabled=fivetran_utils.enabled_vars([...])`) is unknown, not false: dropped
        self.calls.append({k: v for k, v in opts.items()
                           if not isinstance(v, PermissiveUndefined)})
        return ""

    def get(self, name: str, default: Any = None, validator: Any = None) -> Any:
        for call in reversed(self.calls):
            if name in call:
                return call[name]
        return self.known.get(name, default)

    def require(self, name: str, validator: Any = None) -> Any:
        return self.get(name, "")

    def set(self, name: str, value: Any) -> str:
        self.calls.append({name: value})
        return ""

    def persist_relation_docs(self) -> bool:
        return False

    def persist_column_docs(self) -> bool:
        return False


class DbtCompilationError(jinja2.TemplateRuntimeError):
    """What dbt raises as a ``CompilationError`` while rendering (wrong ref()/source()
    arguments...)."""


class VarMissing(Exception):
    def __init__(self, name: str):
        super().__init__(f"Required var '{name}' not found in config")
        self.name = name


class EnvVarMissing(Exception):
    def __init__(self, name: str):
        super().__init__(f"Env var required but not provided: '{name}'")
        self.name = name


@dataclass
class RenderContext:
    """Everything a node's Jinja may reach, without a warehouse.

    ``ref_name``/``source_name`` turn a call into the identifier rendered in SQL.
    """

    package: str
    macros: MacroIndex
    vars: Mapping[str, Any]
    adapter_type: str = "duckdb"
    target_name: str = "dev"
    schema: str = "main"
    database: str = "memory"
    execute: bool = False
    is_incremental: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    ref_name: Callable[[str, str | None, Any], str] = lambda name, pkg, v: name
    source_name: Callable[[str, str], str] = lambda src, tbl: f"{src}.{tbl}"
    this_name: str = "this"
    # captured
    refs: list[tuple[str, str | None, Any]] = field(default_factory=list)
    sources: list[tuple[str, str]] = field(default_factory=list)
    vars_missing: list[str] = field(default_factory=list)
    env_missing: list[str] = field(default_factory=list)
    env_read: dict[str, str | None] = field(default_factory=dict)   # env_var() name -> value
    macros_called: list[str] = field(default_factory=list)
    config: ConfigCapture = field(default_factory=ConfigCapture)
    warehouse_calls: list[str] = field(default_factory=list)
    # names resolved after the project's and packages' macros (dbt's global-project stand-ins)
    fallback: Mapping[str, Any] = field(default_factory=dict)
    # compile mode: what dbt's `model` holds that bulwark knows (name, config...); else unknown
    model: Mapping[str, Any] | None = None
    _module_cache: dict[tuple[str, str, Any], Any] = field(default_factory=dict, repr=False)
    _namespaces: dict[str | None, _Namespace] = field(default_factory=dict, repr=False)
    _var_depth: int = field(default=0, repr=False)
    # when a set: every global name a template or macro of this context looks up (Jinja
    # resolves a frame's names when it enters it, branches not taken included)
    names_read: set[str] | None = field(default=None, repr=False)

    # -- dbt functions
    def _ref(self, *args: Any, **kwargs: Any) -> Relation:
        version = kwargs.get("version", kwargs.get("v"))
        if len(args) not in (1, 2):   # dbt: RefArgsError, at parse time
            raise DbtCompilationError(
                f"wrong number of arguments to ref(): {len(args)} given; it takes the model "
                "name, optionally after the package name: ref('model') or "
                "ref('package', 'model')")
        str_args = [str(a) for a in args]
        if len(str_args) == 2:
            pkg, name = str_args[0], str_args[1]
        else:
            pkg, name = None, str_args[0]
        self.refs.append((name, pkg, version))
        return Relation(self.ref_name(name, pkg, version), self.database, self.schema, name)

    def _source(self, *args: Any, **kwargs: Any) -> Relation:
        if len(args) != 2:   # dbt: NumberSourceArgsError, at parse time
            raise DbtCompilationError(
                f"wrong number of arguments to source(): {len(args)} given; it takes "
                "exactly two: source('source_name', 'table_name')")
        src, tbl = str(args[0]), str(args[1])
        self.sources.append((src, tbl))
        return Relation(self.source_name(src, tbl), self.database, src, tbl)

    def _var(self, name: str, default: Any = _MISSING) -> Any:
        if name in self.vars:
            value = self.vars[name]
            if isinstance(value, str) and ("{{" in value or "{%" in value) and \
                    self._var_depth < 8:
                # dbt renders a var's value in the calling node's context (Var.get_rendered_var):
                # "{{ env_var('P', 'data') }}/x", "{{ source('s', 't') }}" (a dependency too)
                self._var_depth += 1
                try:
                    return render(value, self)
                except (VarMissing, EnvVarMissing):
                    raise
                except Exception:  # noqa: BLE001 - kept as written, as before
                    return value
                finally:
                    self._var_depth -= 1
            return value
        if default is _MISSING:
            self.vars_missing.append(name)
            if not self.execute:
                return None   # like dbt's parse-time var(): a missing var is None, not an error
            raise VarMissing(name)
        return default

    def _env_var(self, name: str, default: Any = _MISSING) -> Any:
        self.env_read[str(name)] = self.env.get(name)
        if name in self.env:
            return self.env[name]
        if default is _MISSING:
            self.env_missing.append(name)
            raise EnvVarMissing(name)
        return default

    def _run_query(self, *args: Any, **kwargs: Any) -> Any:
        self.warehouse_calls.append("run_query")
        return PermissiveUndefined(obj=None, name="run_query")

    def _statement(self, *args: Any, **kwargs: Any) -> str:
        self.warehouse_calls.append("statement")
        return ""

    def _load_result(self, *args: Any, **kwargs: Any) -> Any:
        self.warehouse_calls.append("load_result")
        return PermissiveUndefined(obj=None, name="load_result")

    def _dispatch(self, macro_name: str, macro_namespace: str | None = None,
                  packages: Any = None) -> Any:
        for prefix in (self.adapter_type, "default"):
            candidate = f"{prefix}__{macro_name}"
            for pkg in ([macro_namespace] if macro_namespace else []) + [None]:
                found = self.macros.find(candidate, pkg)
                if found:
                    return self._macro_callable(found)
        if macro_name in self.fallback:
            return self.fallback[macro_name]
        return PermissiveUndefined(name=macro_name)

    # -- macros
    def _macro_callable(self, mdef: MacroDef) -> Any:
        key = (mdef.package, mdef.path, mdef.block)
        # compiled templates are shared; modules are per context (their globals are this
        # node's ref/this/var/is_incremental, not those of whichever node came first)
        mod = self._module_cache.get(key)
        if mod is None:
            template = macro_template(self.macros, mdef)
            mod = template.make_module(vars=self.namespace(mdef.package), shared=True)
            self._module_cache[key] = mod
        fn = getattr(mod, mdef.name, None)
        if fn is None:
            return PermissiveUndefined(name=mdef.name)
        self.macros_called.append(mdef.name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except _Return as ret:
                return ret.value

        return call

    def namespace(self, package: str | None = None) -> dict[str, Any]:
        """The globals a template of ``package`` sees (macros resolved lazily by name): one
        mapping per package for the context's life, as dbt gives every macro of a render
        the node's one context (a render makes a module per macro it calls, each reading
        these globals; Jinja never writes into them). Built on first use, after the
        context's fields are set; a caller that adds names works on a copy (:func:`render`)."""
        found = self._namespaces.get(package)
        if found is None:
            found = self._namespaces[package] = self._new_namespace(package)
        return found

    def _new_namespace(self, package: str | None) -> _Namespace:
        ns: dict[str, Any] = {
            "ref": self._ref, "source": self._source, "var": self._var,
            "env_var": self._env_var, "config": self.config,
            "is_incremental": lambda: self.is_incremental, "execute": self.execute,
            "target": _Target(self), "adapter": _Adapter(self), "run_query": self._run_query,
            "load_result": self._load_result, "statement": self._statement,
            "this": Relation(self.this_name, self.database, self.schema),
            "log": lambda *a, **k: "", "print": lambda *a, **k: "",
            "return": _raise_return,
            "exceptions": _EXCEPTIONS, "modules": _MODULES,
            "fromjson": lambda s, default=None: _safe(json.loads, s, default),
            "tojson": lambda o, default=None: json.dumps(o, default=str),
            "fromyaml": lambda s, default=None: _safe(_yaml_load, s, default),
            "toyaml": lambda o, default=None: _yaml_dump(o),
            "zip": zip, "set": set, "list": list, "dict": dict, "range": _safe_range,
            # jinja's own globals: a shared context does not see the environment's
            "namespace": jinja2.utils.Namespace, "cycler": jinja2.utils.Cycler,
            "joiner": jinja2.utils.Joiner, "lipsum": jinja2.utils.generate_lorem_ipsum,
            "graph": {"nodes": {}, "sources": {}, "exposures": {}},
            "project_name": self.macros.root_package, "dbt_version": "1.11.0",
            "invocation_id": "00000000-0000-0000-0000-000000000000",
            "run_started_at": datetime.datetime(2000, 1, 1),
            "flags": PermissiveUndefined(obj=None, name="flags"), "local_md5": _md5,
            "api": _Api(self), "builtins": {},
            "model": self.model if self.model is not None
            else PermissiveUndefined(obj=None, name="model"), "selected_resources": [],
        }
        return _Namespace(ns, self, package)


class _WarehouseMembers:
    """A context object whose members not defined here need the warehouse: reading one
    records a warehouse call (the SQL is not trusted) and gives an undefined value."""

    _member = ""
    _ctx: RenderContext

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        self._ctx.warehouse_calls.append(f"{self._member}.{name}")
        return PermissiveUndefined(obj=self, name=name)


class _Adapter(_WarehouseMembers):
    """``adapter``: ``type``, ``dispatch`` and ``quote`` need no warehouse; any other member
    makes the SQL untrusted (recorded as a warehouse call). The sandbox hides ``_ctx``."""

    _member = "adapter"

    def __init__(self, ctx: RenderContext):
        self._ctx = ctx
        self.type = ctx.adapter_type

    def dispatch(self, name: str, macro_namespace: str | None = None,
                 packages: Any = None) -> Any:
        return self._ctx._dispatch(name, macro_namespace, packages)

    def quote(self, identifier: Any) -> str:   # no warehouse needed
        q = "`" if self._ctx.adapter_type in ("bigquery", "databricks", "spark") else '"'
        return f"{q}{identifier}{q}"



class _Target:
    """``target``: the render context's target; any other member is undefined."""

    profile_name = "bulwark"
    threads = 1

    def __init__(self, ctx: RenderContext):
        self.name = ctx.target_name
        self.type = ctx.adapter_type
        self.schema = ctx.schema
        self.database = ctx.database

    def __getattr__(self, name: str) -> Any:
        return PermissiveUndefined(obj=self, name=name)


class _Exceptions:
    """``exceptions``: ``raise_compiler_error`` fails the render; anything else is a no-op."""

    @staticmethod
    def raise_compiler_error(msg: str, *a: Any) -> None:
        raise jinja2.TemplateRuntimeError(str(msg))

    @staticmethod
    def warn(*a: Any, **k: Any) -> str:
        return ""

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: ""


class _Modules:
    """``modules``: the standard modules dbt offers that need no warehouse."""

    datetime = datetime
    itertools = itertools
    re = re
    json = json

    def __getattr__(self, name: str) -> Any:
        return PermissiveUndefined(obj=self, name=name)


# (stateless: one of each for every render; the sandbox lets no template change them)
_EXCEPTIONS = _Exceptions()
_MODULES = _Modules()


_TYPE_LABELS = {"STRING": "TEXT", "TIMESTAMP": "TIMESTAMP", "FLOAT": "FLOAT",
                "INTEGER": "INT", "BOOLEAN": "BOOLEAN"}
_TYPE_LABELS_BY_ADAPTER = {
    "bigquery": {"STRING": "STRING", "TIMESTAMP": "TIMESTAMP", "FLOAT": "FLOAT64",
                 "INTEGER": "INT64", "BOOLEAN": "BOOLEAN", "TEXT": "STRING"},
    "snowflake": {"STRING": "TEXT", "TIMESTAMP": "TIMESTAMP_NTZ", "FLOAT": "FLOAT",
                  "INTEGER": "INT", "BOOLEAN": "BOOLEAN"},
    "databricks": {"STRING": "STRING", "TEXT": "STRING", "TIMESTAMP": "TIMESTAMP",
                   "FLOAT": "FLOAT", "INTEGER": "INT", "BOOLEAN": "BOOLEAN"},
    "spark": {"STRING": "STRING", "TEXT": "STRING", "TIMESTAMP": "TIMESTAMP",
              "FLOAT": "FLOAT", "INTEGER": "INT", "BOOLEAN": "BOOLEAN"},
}


class _ApiColumn(_WarehouseMembers):
    """``api.Column``: ``translate_type`` needs no warehouse; anything else is recorded."""

    _member = "api.Column"

    def __init__(self, ctx: RenderContext):
        self._ctx = ctx
        self._labels = _TYPE_LABELS_BY_ADAPTER.get(ctx.adapter_type.lower(), _TYPE_LABELS)

    def translate_type(self, dtype: Any) -> str:
        return self._labels.get(str(dtype).upper(), str(dtype))



class _ApiRelation(_WarehouseMembers):
    """``api.Relation``: ``create`` needs no warehouse; anything else is recorded."""

    _member = "api.Relation"

    def __init__(self, ctx: RenderContext):
        self._ctx = ctx

    @staticmethod
    def create(database: Any = None, schema: Any = None, identifier: Any = None,
               **kw: Any) -> Relation:
        ident = ".".join(str(p) for p in (database, schema, identifier) if p)
        return Relation(ident, str(database or ""), str(schema or ""), str(identifier or ""))



class _Api(_WarehouseMembers):
    """``api.Column`` / ``api.Relation``: the warehouse-free parts (translate_type, create);
    anything else makes the SQL untrusted (recorded as a warehouse call)."""

    _member = "api"

    def __init__(self, ctx: RenderContext):
        self._ctx = ctx
        self.Column = _ApiColumn(ctx)
        self.Relation = _ApiRelation(ctx)



class _Return(Exception):
    def __init__(self, value: Any):
        super().__init__("return")
        self.value = value


def _raise_return(value: Any = None) -> None:
    raise _Return(value)


def _macros_catch_return() -> None:
    """Make ``{{ return(x) }}`` end the macro that called it with value ``x``, also when a
    macro calls another macro of the same file (jinja then calls that one directly, not
    through :meth:`RenderContext._macro_callable`): dbt wraps every macro, so
    ``{% set s = other_macro() %}`` gets the returned value, not the caller's."""
    from jinja2.runtime import Macro

    if getattr(Macro, "_bulwark_catches_return", False):
        return
    invoke = Macro._invoke

    def _invoke(self: Any, arguments: Any, autoescape: bool) -> Any:
        try:
            return invoke(self, arguments, autoescape)
        except _Return as ret:
            return ret.value

    Macro._invoke = _invoke  # type: ignore[method-assign]
    Macro._bulwark_catches_return = True  # type: ignore[attr-defined]


_macros_catch_return()


def _safe(fn: Callable[[Any], Any], value: Any, default: Any) -> Any:
    try:
        return fn(value)
    except Exception:  # noqa: BLE001 - as dbt: any failure gives the default
        return default


def _yaml_load(s: str) -> Any:
    from dbt_bulwark.project import yamlio

    return yamlio.load(s)   # alias bombs refused


def _yaml_dump(o: Any) -> str:
    import yaml

    return yaml.safe_dump(o)


def _md5(s: str) -> str:
    import hashlib

    return hashlib.md5(s.encode()).hexdigest()


class _PackageNamespace:
    """``dbt_utils.star(...)``: the macros of one package as attributes."""

    def __init__(self, ctx: RenderContext, package: str):
        self._ctx = ctx
        self._package = package

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            # dbt's package namespace is a mapping: the sandbox refuses `_x` attributes and
            # then looks the name up as an item (`dbt_utils._is_ephemeral(...)` is valid)
            raise AttributeError(name)
        return self[name]

    def __getitem__(self, name: str) -> Any:
        found = self._ctx.macros.find(name, self._package)
        if found is None:
            return PermissiveUndefined(name=f"{self._package}.{name}")
        return self._ctx._macro_callable(found)


class _Namespace(dict):
    """Template globals; a missing key resolves to a macro (own package first)."""

    def __init__(self, base: dict[str, Any], ctx: RenderContext, package: str | None):
        super().__init__(base)
        self._ctx = ctx
        self._package = package

    def __missing__(self, key: str) -> Any:
        ctx = self._ctx
        found = ctx.macros.find(key, self._package) if self._package else None
        found = found or ctx.macros.find(key)
        if found is not None:
            return ctx._macro_callable(found)
        if key in ctx.macros.by_package:
            return _PackageNamespace(ctx, key)
        if key in ctx.fallback:
            return ctx.fallback[key]
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:  # jinja checks membership before lookup
        ctx = self._ctx
        if ctx.names_read is not None and isinstance(key, str):
            ctx.names_read.add(key)
        if dict.__contains__(self, key):
            return True
        if not isinstance(key, str):
            return False
        return bool(ctx.macros.find(key, self._package) if self._package else None) or bool(
            ctx.macros.find(key)) or key in ctx.macros.by_package or key in ctx.fallback

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override,unused-ignore]
        try:
            return self[key]
        except KeyError:
            return default


def macro_template(macros: MacroIndex, mdef: MacroDef) -> jinja2.Template:
    """The compiled template of macro ``mdef``: its own block, as dbt compiles each macro
    (a macro of the same file it calls is looked up by name, as dbt does; a file's other
    macros are not compiled for it). Kept in the index for every context."""
    key = (mdef.package, mdef.path, mdef.block)
    template = macros._modules.get(key)
    if template is None:
        template = macros._modules[key] = _from_string(mdef.source())
    return template


def _from_string(text: str) -> jinja2.Template:
    """The permissive environment's template for ``text``, compiled once per content."""
    from dbt_bulwark.cache import compiled_template

    return compiled_template(environment(True), text)


# ----------------------------------------------------------------------------- time limit
def render_timeout() -> float:
    """Seconds one template may render (``BULWARK_RENDER_TIMEOUT``, default 10)."""
    try:
        value = float(os.environ.get("BULWARK_RENDER_TIMEOUT") or 10)
    except ValueError:
        value = 10.0
    return value if value > 0 else 10.0


class _Expired(BaseException):   # raised into the rendering thread; BaseException so
    """that no ``except Exception`` in a template helper swallows it."""


class _Watchdog:
    """One daemon thread per process that stops renders past their deadline.

    A render registers (thread id, deadline); when the deadline passes the watchdog
    raises :class:`_Expired` inside that thread (``PyThreadState_SetAsyncExc``, delivered
    between two bytecodes, so a ``{% for %}`` without any call is stopped too). No
    signals: it works in threads and in fork()ed workers (re-created after a fork).
    """

    def __init__(self) -> None:
        import threading

        self.cond = threading.Condition(threading.Lock())
        self.active: dict[int, list[Any]] = {}   # token -> [thread id, deadline, fired]
        self.next_token = 0
        self.wake_at: float | None = None   # when the sleeping thread wakes; None: on notify
        self.thread: Any = None
        self.pid = os.getpid()
        try:
            import ctypes

            self._set_async = ctypes.pythonapi.PyThreadState_SetAsyncExc
            self._set_async.argtypes = (ctypes.c_ulong, ctypes.py_object)
            self._clear_arg: Any = ctypes.py_object()   # NULL: clears a pending exception
        except (ImportError, AttributeError):  # pragma: no cover - not CPython
            self._set_async = None  # type: ignore[assignment]

    def start(self, seconds: float) -> int:
        import threading
        import time

        if self._set_async is None:
            return -1
        with self.cond:
            if self.thread is None or self.pid != os.getpid():
                self.pid = os.getpid()
                self.thread = threading.Thread(target=self._run, name="bulwark-render-watchdog",
                                               daemon=True)
                self.thread.start()
            self.next_token += 1
            token = self.next_token
            self.active[token] = [threading.get_ident(), time.monotonic() + seconds, False]
            # wake the thread only when it would sleep past this deadline (waking it for
            # every render cost a thread switch per template)
            deadline = self.active[token][1]
            if self.wake_at is None or deadline < self.wake_at:
                self.cond.notify()
        return token

    def stop(self, token: int) -> bool:
        """Unregister; True when the render was stopped (any pending stop is cleared)."""
        if token < 0:
            return False
        with self.cond:
            entry = self.active.pop(token, None)
            if entry is not None and entry[2]:
                self._set_async(entry[0], self._clear_arg)
                return True
        return False

    def _run(self) -> None:
        import time

        with self.cond:
            while True:
                if not self.active:
                    self.wake_at = None
                    self.cond.wait()
                    continue
                now = time.monotonic()
                soonest = min(e[1] for e in self.active.values())
                if soonest > now:
                    self.wake_at = soonest
                    self.cond.wait(soonest - now)
                    self.wake_at = None
                    continue
                for entry in self.active.values():
                    if entry[1] <= now:
                        entry[2] = True
                        entry[1] = now + 0.5   # again, should something catch it
                        self._set_async(entry[0], _Expired)


_WATCHDOG: _Watchdog | None = None


def _watchdog() -> _Watchdog:
    global _WATCHDOG
    if _WATCHDOG is None:
        _WATCHDOG = _Watchdog()
    return _WATCHDOG


def _after_fork() -> None:   # the parent's lock/thread do not exist in a forked child
    global _WATCHDOG
    _WATCHDOG = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


# ------------------------------------------------------------------ one compile per shape
_EXPR_BODY_RE = re.compile(r"{{(.*?)}}", re.S)
_STRING_RE = re.compile(r"'([^'\\{}\n]*)'|\"([^\"\\{}\n]*)\"")
# where a string literal may stand as a value that a name can replace: after an operator,
# an opening bracket, a comma, `=` of a keyword argument or a keyword; before a closing
# bracket, a comma, an operator, a filter, an attribute, a subscript or a keyword. Not
# after `.`/`|`/`is` (a name there is an attribute, filter or test), not before a lone `=`
# (a name there is a keyword argument), not beside another literal (Jinja joins those).
_VALUE_BEFORE_MARKS = frozenset("([,:{~+-*/%<>=!")
_KEYWORD_BEFORE_RE = re.compile(r"(?<![\w.])(?:in|and|or|not|if|else)$")
_VALUE_AFTER_RE = re.compile(
    r"\s*(?:$|==|!=|[)\],:}~+\-*/%<>|.\[]|(?:in|and|or|if|else|not)\b)")
_LITERAL_NAME = "__bw_literal_{}"


def literal_shape(text: str) -> tuple[str, dict[str, str]] | None:
    """``text`` with the string literals of its ``{{ ... }}`` expressions replaced by names,
    and the name -> literal map, when its Jinja is expressions only (no statement, comment
    or backslash) and each literal stands where a name means the same value; else None.

    Templates that differ only in their literals then share one compiled template: the 136
    data-quality models of tuva (``{{ dq_model_sql('<its name>') }}``) and the probes of
    inert calls (``{{ quote_column('plan') }}``) are each a few shapes."""
    if "{%" in text or "{#" in text or "\\" in text or "{{" not in text or \
            "__bw_literal_" in text:     # (a name of its own would be bound to a literal)
        return None
    literals: dict[str, str] = {}
    out: list[str] = []
    pos = 0
    for m in _EXPR_BODY_RE.finditer(text):
        body = m.group(1)
        pieces: list[str] = []
        at = 0
        for s in _STRING_RE.finditer(body):
            if not _value_before(body, s.start()) or not _VALUE_AFTER_RE.match(body, s.end()):
                return None
            name = _LITERAL_NAME.format(len(literals))
            literals[name] = s.group(1) if s.group(1) is not None else s.group(2)
            pieces += (body[at:s.start()], name)
            at = s.end()
        pieces.append(body[at:])
        shaped = "".join(pieces)
        if "'" in shaped or '"' in shaped:
            return None        # a literal this reading does not take: leave the text as is
        out += (text[pos:m.start(1)], shaped)
        pos = m.end(1)
    if not literals:
        return None
    out.append(text[pos:])
    return "".join(out), literals


def _value_before(body: str, at: int) -> bool:
    """Whether what precedes offset ``at`` of ``body`` (spaces aside) lets a value start
    there: the start, an operator or opening mark, or a keyword (a look at a few characters:
    linear in a long expression with many literals)."""
    while at and body[at - 1].isspace():
        at -= 1
    return not at or body[at - 1] in _VALUE_BEFORE_MARKS or \
        _KEYWORD_BEFORE_RE.search(body, max(0, at - 5), at) is not None


def _template_and_literals(text: str) -> tuple[jinja2.Template, dict[str, str]]:
    """The compiled template of ``text``'s literal shape (:func:`literal_shape`) and the
    values of its names; the template of ``text`` itself when it has no such shape or the
    shape does not compile (the error is then the text's own)."""
    shape = literal_shape(text)
    if shape is not None:
        with contextlib.suppress(jinja2.TemplateSyntaxError):
            return _from_string(shape[0]), shape[1]
    return _from_string(text), {}


def render(text: str, ctx: RenderContext, package: str | None = None) -> str:
    """Render ``text`` with ``ctx``; raises jinja2 errors, VarMissing, EnvVarMissing,
    :class:`SandboxError` and :class:`RenderTimeout`."""
    seconds = render_timeout()
    watchdog = _watchdog()
    token = watchdog.start(seconds)
    fired = False
    line = None
    try:
        try:
            template, literals = _template_and_literals(text)
            names = ctx.namespace(package or ctx.package)
            if literals:   # the shape's literal values: this render's own copy
                names = _Namespace({**names, **literals}, ctx, package or ctx.package)
            context = template.new_context(names, shared=True)
            try:
                out = template.environment.concat(template.root_render_func(context))  # type: ignore[attr-defined,unused-ignore]
            except _Return as ret:  # a top-level {{ return() }}
                out = str(ret.value)
        finally:
            fired = watchdog.stop(token)
    except _Expired as exc:
        fired = True
        line = error_line(exc)
    if fired:
        raise RenderTimeout(seconds, line)
    return out
