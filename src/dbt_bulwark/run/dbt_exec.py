"""Run dbt itself, in-process, for the execution layers (``bulwark ci --full``, baselines).

This is the ONLY module of dbt-bulwark that imports dbt (``dbt.cli.main.dbtRunner``),
and it does so inside functions: importing this module is cheap.

Where dbt runs:

* **the user's own profile** when one is configured for the project's ``profile:``
  (``--profiles-dir``, ``DBT_PROFILES_DIR``, the project directory, the current
  directory, ``~/.dbt``) and its adapter is installed; ``--target`` picks the
  target. The user's ``profiles.yml`` is read, never written: bulwark writes a
  copy of that one target into its own temporary directory with the schema
  replaced by a **scratch schema** ``<target schema>_bulwark_<user>_<run id>``,
  so nothing is ever built into the user's schemas and two runs at once (two
  developers, two CI jobs) never share one. After parsing, every node dbt would
  build must land in the scratch schema (or ``<scratch>_<custom>``, dbt's default
  ``generate_schema_name``); a project whose macro sends nodes elsewhere is refused.
  Seeds and upstream models are built there too (as on the embedded engine), and
  :meth:`DbtSession.close` drops every scratch schema (``drop_schema_named``) --
  also when the run failed.
* otherwise the **embedded DuckDB** default: a ``profiles.yml`` generated in
  bulwark's own directory (``<repo>/.bulwark-cache/dbt/<project>/``, a temporary
  directory with ``--no-cache``), a fresh database file every run. Seeds are
  loaded with ``dbt seed``; declared sources get empty tables created from their
  YAML columns (a source without typed columns cannot be emulated: the models
  reading it are reported, not guessed). Sources have no rows there, so data
  checks of models fed by sources are "no data".

dbt's target directory and logs go to that same bulwark directory, so the
user's ``target/`` (partial parse state, run_results.json) is never touched.
One :class:`DbtSession` parses the project once and hands the manifest to every
later invocation (``dbtRunner(manifest=...)``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbt_bulwark.findings import UsageError
from dbt_bulwark.project.model import Node, Project, Source
from dbt_bulwark.project.profiles import find_user_profile, profile_adapter

EMBEDDED_TARGET = "bulwark_embedded"
EMBEDDED_DB = "bulwark"          # database name of the embedded DuckDB file (its stem)

Progress = Callable[[str], None]


class DbtUnavailable(Exception):
    """dbt (or the adapter a layer needs) cannot run here; the message says why."""


def dbt_missing_reason(adapter: str | None = None) -> str | None:
    """None when dbt-core can be imported, else a one-line reason with the fix
    (the pip command names the adapter the project's profile uses, when known)."""
    try:
        if importlib.util.find_spec("dbt.cli.main") is None:
            raise ModuleNotFoundError
    except (ModuleNotFoundError, ValueError):
        return (f"dbt-core is not installed in this environment: {install_hint(adapter)}")
    return None


def project_adapter_for(project: Project, repo_root: Path, target: str | None = None,
                        profiles_dir: str | None = None) -> str | None:
    """The adapter type the project's profile target uses (None: no profile found)."""
    project_dir = (Path(repo_root) / project.root) if project.root else Path(repo_root)
    name = str(project.project_yml.get("profile") or project.name)
    found = find_user_profile(name, project_dir, profiles_dir)
    return profile_adapter(found[1], target) if found else None


def adapter_installed(adapter_type: str) -> bool:
    try:
        return importlib.util.find_spec(f"dbt.adapters.{adapter_type}") is not None
    except (ModuleNotFoundError, ValueError):
        return False


@dataclass
class Engine:
    """Where dbt runs: ``embedded`` (generated DuckDB profile) or ``profile`` (the user's)."""

    mode: str
    adapter: str
    profiles_dir: Path
    target: str | None
    description: str
    # the project targets another warehouse whose adapter is missing; DuckDB stands in,
    # so a failure may be a dialect difference rather than a bug (reported as skipped)
    substitute_for: str | None = None
    scratch_schema: str | None = None     # profile mode: where everything is built

    @property
    def isolated(self) -> bool:
        """Everything (seeds, upstream models) is built here by bulwark itself."""
        return self.mode == "embedded" or self.scratch_schema is not None


# ----------------------------------------------------------------------------- results

@dataclass
class NodeResult:
    unique_id: str
    resource_type: str
    status: str                    # success | error | fail | warn | pass | skipped | no-op
    message: str = ""
    failures: int | None = None
    attached: str | None = None    # tests: the model/seed/source they test
    severity: str = "ERROR"        # tests: their configured severity
    test_name: str | None = None   # generic tests: unique, not_null, ...
    column: str | None = None
    path: str = ""                 # original_file_path (tests: the YAML or SQL file)


@dataclass
class Invocation:
    command: list[str]
    success: bool
    results: list[NodeResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)   # `show` output
    columns: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- session

class DbtSession:
    """One dbt project run by dbt in this process; use as a context manager."""

    def __init__(self, project: Project, repo_root: Path, *, target: str | None = None,
                 profiles_dir: str | None = None, embedded: bool = False,
                 cli_vars: dict[str, Any] | None = None, use_cache: bool = True,
                 progress: Progress | None = None, threads: int | None = None):
        reason = dbt_missing_reason()
        if reason:
            raise DbtUnavailable(dbt_missing_reason(
                project_adapter_for(project, repo_root, target, profiles_dir)))
        self.project = project
        self.repo_root = Path(repo_root)
        self.project_dir = (self.repo_root / project.root).resolve() if project.root \
            else self.repo_root.resolve()
        self.cli_vars = dict(cli_vars or {})
        self.progress = progress
        self.threads = threads
        self._tmp: str | None = None
        self.run_id = run_id()
        if use_cache:
            slug = (project.root or project.name).replace("/", "__") or "root"
            self.workdir = self.repo_root / ".bulwark-cache" / "dbt" / slug
            self.workdir.mkdir(parents=True, exist_ok=True)
            ignore = self.repo_root / ".bulwark-cache" / ".gitignore"
            if not ignore.exists():
                ignore.write_text("*\n", encoding="utf-8")
        else:
            self._tmp = tempfile.mkdtemp(prefix="bulwark-dbt-")
            self.workdir = Path(self._tmp)
        self.engine = self._choose_engine(target, profiles_dir, embedded)
        self._scratch_created = False
        if self.engine.mode == "profile":
            if not self._tmp:
                # a run on a server may overlap another one from the same checkout: its
                # target/, logs and profile copy are its own, removed at close
                self._tmp = tempfile.mkdtemp(prefix=f"bulwark-dbt-{self.run_id}-")
                self.workdir = Path(self._tmp)
            self.engine.profiles_dir = self.workdir / "profile"
        self._manifest: Any = None
        self.built_with_data: set[str] = set()      # unique_ids built with data this session
        self.seeded = False
        self.unemulated_sources: dict[str, str] = {}   # source uid -> why it has no table
        if self.engine.mode == "embedded":
            self._prepare_embedded()
        else:
            self._prepare_scratch_profile(found_profile=self._found)

    # -- lifecycle
    def __enter__(self) -> DbtSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.engine.scratch_schema and self._scratch_created:
            self._scratch_created = False
            self.drop_scratch()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    # -- engine
    @property
    def profile_name(self) -> str:
        return str(self.project.project_yml.get("profile") or self.project.name)

    def _choose_engine(self, target: str | None, profiles_dir: str | None,
                       embedded: bool) -> Engine:
        found = None if embedded else find_user_profile(self.profile_name, self.project_dir,
                                                        profiles_dir)
        self._found = found
        if target and found is None:
            where = profiles_dir or os.environ.get("DBT_PROFILES_DIR") or \
                "the project directory, the current directory or ~/.dbt"
            raise UsageError(f"--target {target}: no profile '{self.profile_name}' in a "
                             f"profiles.yml under {where}")
        substitute = None
        if found is not None:
            pdir, profile = found
            adapter = profile_adapter(profile, target)
            if target and target not in (profile.get("outputs") or {}):
                names = ", ".join(sorted(str(k) for k in profile.get("outputs") or {}))
                raise UsageError(f"--target {target}: profile '{self.profile_name}' in "
                                 f"{pdir / 'profiles.yml'} has no such target "
                                 f"(targets: {names or 'none'})")
            if adapter and adapter_installed(adapter):
                name = target or profile.get("target") or "dev"
                return Engine("profile", adapter, pdir, target,
                              f"profile '{self.profile_name}' target '{name}' ({adapter}) "
                              f"from {pdir / 'profiles.yml'}")
            if target:
                raise DbtUnavailable(f"profile '{self.profile_name}' target '{target}' uses "
                                     f"adapter '{adapter}', which is not installed "
                                     f"({install_hint(adapter)})")
            if adapter and adapter != "duckdb":
                substitute = adapter
        if not adapter_installed("duckdb"):
            why = f"adapter '{substitute}' is not installed and " if substitute else ""
            raise DbtUnavailable(f"{why}dbt-duckdb (the embedded default) is not installed "
                                 "(pip install dbt-duckdb)")
        desc = "embedded DuckDB (generated profile"
        desc += f"; standing in for {substitute}, whose adapter is not installed)" \
            if substitute else ")"
        return Engine("embedded", "duckdb", self.workdir / "profile", EMBEDDED_TARGET, desc,
                      substitute_for=substitute)

    # -- the user's target, on a scratch schema
    def _prepare_scratch_profile(self, found_profile: Any) -> None:
        """Copy the chosen target of the user's profile into our own profiles.yml with
        its schema replaced by the scratch schema (the user's file is only read)."""
        import json

        assert found_profile is not None
        _pdir, profile = found_profile
        name = self.engine.target or profile.get("target") or "dev"
        output = dict((profile.get("outputs") or {}).get(name) or {})
        base = _render_schema(output.get("schema") or output.get("dataset") or "")
        scratch = scratch_schema_name(base, self.run_id)
        key = "dataset" if "dataset" in output and "schema" not in output else "schema"
        output[key] = scratch
        if self.threads:
            output["threads"] = self.threads
        self.engine.scratch_schema = scratch
        self.engine.target = name
        self.engine.description += f"; scratch schema {scratch}"
        pdir = self.engine.profiles_dir
        pdir.mkdir(parents=True, exist_ok=True)
        data = {self.profile_name: {"target": name, "outputs": {name: output}}}
        (pdir / "profiles.yml").write_text(json.dumps(data, indent=2, default=str),
                                           encoding="utf-8")

    def scratch_schemas(self) -> list[str]:
        """Every schema this run may create: the scratch schema, the schemas of the
        manifest's nodes (all inside it, see :meth:`_check_scratch`), dbt's test audit."""
        scratch = self.engine.scratch_schema
        if not scratch:
            return []
        out = {scratch, f"{scratch}_dbt_test__audit"}
        if self._manifest is not None:
            for node in self._manifest.nodes.values():
                schema = str(getattr(node, "schema", "") or "")
                if schema.lower().startswith(scratch.lower()):
                    out.add(schema)
        return sorted(out)

    def _check_scratch(self) -> None:
        """Refuse a project whose nodes would build outside the scratch schema."""
        scratch = (self.engine.scratch_schema or "").lower()
        if not scratch:
            return
        for node in self._manifest.nodes.values():
            rtype = str(getattr(node.resource_type, "value", node.resource_type))
            if rtype not in ("model", "seed", "snapshot"):
                continue
            schema = str(getattr(node, "schema", "") or "").lower()
            if schema != scratch and not schema.startswith(scratch + "_"):
                self._manifest = None
                raise DbtUnavailable(
                    f"{node.unique_id} would be built into schema '{node.schema}', outside "
                    f"bulwark's scratch schema '{self.engine.scratch_schema}' (a custom "
                    "generate_schema_name?); refusing to build on your warehouse "
                    "(make the macro keep target.schema as prefix, or use --embedded)")
        self._scratch_created = True

    def drop_scratch(self) -> list[str]:
        """Drop every scratch schema of this run (on the server, through dbt)."""
        dropped = []
        for schema in self.scratch_schemas():
            inv = self.invoke(["run-operation", "drop_schema_named", "--args",
                               json_dumps({"schema_name": schema})], "drop scratch schema")
            if inv.success:
                dropped.append(schema)
        return dropped

    # -- embedded DuckDB
    def _source_relation(self, src: Source) -> tuple[str, str, str]:
        """(database, schema, identifier) of a source, as dbt resolves them on DuckDB."""
        entry = self._source_entry(src)
        conf = src.config or {}
        database = conf.get("database") or (entry or {}).get("database") or EMBEDDED_DB
        schema = conf.get("schema") or (entry or {}).get("schema") or src.source_name
        ident = src.identifier or src.name
        return str(database), str(schema), str(ident)

    def _source_entry(self, src: Source) -> dict[str, Any] | None:
        data = self.project.yaml_files.get(src.repo_path)
        if not isinstance(data, dict):
            return None
        for entry in data.get("sources") or []:
            if isinstance(entry, dict) and entry.get("name") == src.source_name:
                return entry
        return None

    def _prepare_embedded(self) -> None:
        import duckdb  # dbt-duckdb's own dependency

        pdir = self.engine.profiles_dir
        pdir.mkdir(parents=True, exist_ok=True)
        dbdir = self.workdir / "db"
        shutil.rmtree(dbdir, ignore_errors=True)   # a fresh database every run
        dbdir.mkdir(parents=True)
        main_path = dbdir / f"{EMBEDDED_DB}.duckdb"
        tables: dict[str, list[tuple[str, str, str, list[tuple[str, str]]]]] = {}
        for uid, src in sorted(self.project.sources.items()):
            if src.package_name != self.project.name and not self._used(uid):
                continue
            cols: list[tuple[str, str | None]] = [(c.name, c.data_type) for c in src.columns]
            if not cols:
                self.unemulated_sources[uid] = "declares no columns"
                continue
            untyped = [n for n, t in cols if not t]
            if untyped:
                self.unemulated_sources[uid] = f"column '{untyped[0]}' has no data_type"
                continue
            db, schema, ident = self._source_relation(src)
            tables.setdefault(db, []).append((uid, schema, ident,
                                              [(n, str(t)) for n, t in cols]))
        attach = []
        for db, items in sorted(tables.items()):
            path = main_path if db == EMBEDDED_DB else dbdir / f"{db}.duckdb"
            if db != EMBEDDED_DB:
                attach.append({"path": str(path), "alias": db})
            con = duckdb.connect(str(path))
            try:
                for uid, schema, ident, typed in items:
                    body = ", ".join(f"{_q(n)} {t}" for n, t in typed)
                    try:
                        con.execute(f"create schema if not exists {_q(schema)}")
                        con.execute(f"create table {_q(schema)}.{_q(ident)} ({body})")
                    except duckdb.Error as exc:
                        self.unemulated_sources[uid] = f"cannot create its table: {exc}"
            finally:
                con.close()
        output: dict[str, Any] = {"type": "duckdb", "path": str(main_path), "schema": "main",
                                  "threads": self.threads or max(2, min(8, os.cpu_count() or 2))}
        if attach:
            output["attach"] = attach
        import json

        # JSON is YAML: no YAML writer needed, and the file is ours alone
        profile = {self.profile_name: {"target": EMBEDDED_TARGET,
                                       "outputs": {EMBEDDED_TARGET: output}}}
        (pdir / "profiles.yml").write_text(json.dumps(profile, indent=2), encoding="utf-8")

    def _used(self, source_uid: str) -> bool:
        return bool(self.project.children(source_uid))

    def no_data_reason(self, node: Node | str) -> str | None:
        """Why a model has no real rows on this engine (embedded: it reads a source)."""
        if self.engine.mode != "embedded":
            return None
        uid = node if isinstance(node, str) else node.unique_id
        for anc in sorted(self.project.ancestors(uid) | {uid}):
            if anc.startswith("source."):
                src = self.project.sources.get(anc)
                label = f"{src.source_name}.{src.name}" if src else anc
                return (f"reads source '{label}', which has no rows on the embedded DuckDB "
                        "(run with --target to use your warehouse)")
        return None

    def cannot_build_reason(self, uid: str) -> str | None:
        """Why a node cannot even be built empty here (an unemulated source upstream)."""
        for anc in sorted(self.project.ancestors(uid) | {uid}):
            why = self.unemulated_sources.get(anc)
            if why:
                src = self.project.sources.get(anc)
                label = f"{src.source_name}.{src.name}" if src else anc
                return (f"source '{label}' {why}, so the embedded DuckDB cannot create it "
                        "(declare its columns with data_type, or use --target)")
        return None

    # -- invocation
    def _base_args(self) -> list[str]:
        args = ["--project-dir", str(self.project_dir),
                "--profiles-dir", str(self.engine.profiles_dir),
                "--target-path", str(self.workdir / "target")]
        if self.engine.target:
            args += ["--target", self.engine.target]
        if self.cli_vars:
            import json

            args += ["--vars", json.dumps(self.cli_vars, default=str)]
        return args

    def _global_args(self) -> list[str]:
        return ["--log-level", "none", "--log-level-file", "info",
                "--log-path", str(self.workdir / "logs"), "--no-use-colors",
                "--no-send-anonymous-usage-stats"]

    def invoke(self, args: list[str], label: str = "") -> Invocation:
        from dbt.cli.main import dbtRunner

        os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
        os.environ.setdefault("DO_NOT_TRACK", "1")
        done = [0]
        label = label or args[0]

        def on_event(event: Any) -> None:
            if self.progress is None or event.info.name != "NodeFinished":
                return
            done[0] += 1
            try:
                name = event.data.node_info.unique_id.split(".", 2)[-1]
            except AttributeError:
                name = ""
            self.progress(f"{label}: {done[0]} done ({name})")

        cmd = [*self._global_args(), *args, *self._base_args()]
        manifest = self.manifest() if args[0] != "parse" else None
        t0 = time.perf_counter()
        runner = dbtRunner(manifest=manifest, callbacks=[on_event])
        old_cwd = os.getcwd()
        try:
            os.chdir(self.project_dir)
            res = runner.invoke(cmd)
        except BaseException as exc:  # dbt raising is a failed invocation
            if isinstance(exc, KeyboardInterrupt):
                raise
            return Invocation(args, False, error=f"{type(exc).__name__}: {exc}",
                              seconds=time.perf_counter() - t0)
        finally:
            os.chdir(old_cwd)
        inv = Invocation(args, bool(res.success), seconds=time.perf_counter() - t0)
        if res.exception is not None:
            inv.error = _one_line(str(res.exception))
        result: Any = res.result
        if args[0] == "parse":
            self._manifest = result if res.success else None
            return inv
        if args[0] == "run-operation":
            return inv
        for r in getattr(result, "results", None) or []:
            inv.results.append(self._node_result(r))
        if args[0] == "show" and getattr(result, "results", None):
            table = getattr(result.results[0], "agate_table", None)
            if table is not None:
                inv.columns = list(table.column_names)
                inv.rows = [dict(zip(inv.columns, row, strict=False)) for row in table.rows]
        return inv

    def _node_result(self, r: Any) -> NodeResult:
        node = r.node
        status = str(getattr(r.status, "value", r.status))
        out = NodeResult(unique_id=node.unique_id, resource_type=str(
            getattr(node.resource_type, "value", node.resource_type)), status=status,
            message=_one_line(str(r.message or "")), failures=r.failures,
            path=str(getattr(node, "original_file_path", "") or ""))
        if out.resource_type == "test":
            conf = getattr(node, "config", None)
            out.severity = str(getattr(conf, "severity", "ERROR") or "ERROR").upper()
            out.attached = getattr(node, "attached_node", None)
            if not out.attached:
                deps = [d for d in getattr(node.depends_on, "nodes", []) or []
                        if not d.startswith("macro.")]
                out.attached = deps[0] if deps else None
            meta = getattr(node, "test_metadata", None)
            out.test_name = getattr(meta, "name", None) if meta else None
            out.column = getattr(node, "column_name", None)
        return out

    def manifest(self) -> Any:
        if self._manifest is None:
            inv = self.invoke(["parse"], "dbt parse")
            if not inv.success or self._manifest is None:
                raise DbtUnavailable(f"dbt parse failed: {inv.error or 'see the dbt log'} "
                                     f"(log: {self.workdir / 'logs' / 'dbt.log'})")
            self._check_scratch()
        return self._manifest

    # -- high-level steps
    def seed(self) -> Invocation | None:
        """Load every seed once per session where bulwark builds everything itself (the
        embedded engine, the scratch schema); a no-op otherwise."""
        if self.seeded or not self.engine.isolated:
            return None
        seeds = [n for n in self.project.nodes.values() if n.resource_type == "seed"]
        if not seeds:
            self.seeded = True
            return None
        inv = self.invoke(["seed"], "dbt seed")
        self.seeded = inv.success
        for r in inv.results:
            if r.status == "success":
                self.built_with_data.add(r.unique_id)
        return inv

    def build(self, nodes: Iterable[Node], *, command: str = "build", empty: bool = False,
              label: str = "") -> Invocation:
        selectors = sorted({selector_for(n) for n in nodes})
        args = [command, "--select", *selectors]
        if empty:
            args.append("--empty")
        inv = self.invoke(args, label or f"dbt {command}")
        if not empty:
            for r in inv.results:
                if r.status == "success" and r.resource_type in ("model", "seed", "snapshot"):
                    self.built_with_data.add(r.unique_id)
        return inv

    def query(self, sql: str, limit: int = 1000) -> Invocation:
        """Run one SELECT through ``dbt show --inline`` (Jinja and ref() allowed)."""
        return self.invoke(["show", "--inline", sql, "--limit", str(limit), "--output", "json"],
                           "dbt show")

    def log_path(self) -> Path:
        return self.workdir / "logs" / "dbt.log"


def run_id() -> str:
    """``<user>_<6 hex>``: who ran it, and unique among concurrent runs."""
    import getpass
    import re
    import secrets

    try:
        user = getpass.getuser()
    except (OSError, KeyError, ImportError):   # no user name in some containers
        user = "user"
    user = re.sub(r"[^a-z0-9_]", "", user.lower())[:16] or "user"
    return f"{user}_{secrets.token_hex(3)}"


def scratch_schema_name(base: str, rid: str) -> str:
    """``<base>_bulwark_<run id>``, lower case, at most 50 characters (PostgreSQL allows
    63; dbt appends ``_<custom schema>`` and ``_dbt_test__audit``)."""
    import re

    base = re.sub(r"[^a-z0-9_]", "_", str(base).lower()).strip("_") or "dbt"
    tail = f"_bulwark_{rid}"
    return base[: max(1, 50 - len(tail))] + tail


def _render_schema(value: Any) -> str:
    """A profile's schema as dbt renders it (``env_var`` only; it is just a name)."""
    text = str(value)
    if "{{" not in text:
        return text
    import jinja2

    def env_var(name: str, default: Any = None) -> str:
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return str(default)
        raise UsageError(f"profile schema needs the environment variable {name}")

    return jinja2.Environment().from_string(text).render(env_var=env_var)


def install_hint(adapter: str | None = None) -> str:
    """The one pip command that makes the execution layers run for ``adapter``."""
    extra = f" dbt-{adapter}" if adapter and adapter != "duckdb" else ""
    return f"pip install 'dbt-bulwark[dbt]'{extra}"


def json_dumps(data: Any) -> str:
    import json

    return json.dumps(data)


def selector_for(node: Node) -> str:
    """A dbt selector picking exactly this node (its fully qualified name)."""
    return ".".join(node.fqn)


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _one_line(text: str, limit: int = 400) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    out = " ".join(lines)
    return out if len(out) <= limit else out[: limit - 3] + "..."
