"""Run real dbt (dbt-core + dbt-duckdb) on a fixture project and hand back what it resolved.

This is the *oracle* side of the oracle tests: bulwark resolves dbt config without
importing dbt, and these helpers produce what dbt itself says so the two can be
compared.  Nothing here imports dbt in the test process: dbt runs in subprocesses
with the current interpreter, so one project's global dbt state never leaks into
another's.

Fixture layout (see tests/fixtures/projects/README.md):

* ``tests/fixtures/projects/<name>/`` holds a dbt project (or, for ``monorepo``,
  a folder of projects);
* ``tests/fixtures/packages/<pkg>/`` holds the *source* of a package that
  ``dbt deps`` would have put under ``dbt_packages/<pkg>/``.

``prepare_project`` copies a fixture into a temporary directory and installs its
packages the way ``dbt deps`` would (package sources copied, ``local:`` packages
symlinked) without any network access.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TESTS_DIR = Path(__file__).resolve().parent
FIXTURES = TESTS_DIR / "fixtures"
PROJECTS = FIXTURES / "projects"
PACKAGE_SOURCES = FIXTURES / "packages"

# Projects the oracle suite runs on: key -> (fixture folder to copy, project dir inside it).
ORACLE_PROJECTS: dict[str, tuple[str, str]] = {
    "basic": ("basic", "."),
    "versions": ("versions", "."),
    "with_packages": ("with_packages", "."),
    "monorepo/analytics": ("monorepo", "analytics"),
    "monorepo/finance": ("monorepo", "finance"),
}

DBT_TIMEOUT = 300


def dbt_available() -> bool:
    """True when dbt-core and dbt-duckdb can be imported by this interpreter."""
    try:
        return (
            importlib.util.find_spec("dbt.cli.main") is not None
            and importlib.util.find_spec("dbt.adapters.duckdb") is not None
        )
    except ModuleNotFoundError:
        return False


def require_dbt() -> None:
    """Skip the calling test when dbt is not installed; fail it under CI (conftest)."""
    if not dbt_available():
        from conftest import skip_or_fail

        skip_or_fail("dbt-core / dbt-duckdb not importable: oracle tests need the [dev] extra")


def dbt_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        DO_NOT_TRACK="1",
        DBT_USE_COLORS="false",
        DBT_PARTIAL_PARSE="false",
        DBT_VERSION_CHECK="false",
        PYTHONWARNINGS="ignore",
    )
    # Never let the caller's own dbt settings steer the oracle.
    for name in ("DBT_PROFILES_DIR", "DBT_PROJECT_DIR", "DBT_TARGET_PATH", "DBT_TARGET"):
        env.pop(name, None)
    return env


# --------------------------------------------------------------------------- setup


def read_project_yml(project_dir: Path) -> dict[str, Any]:
    with open(project_dir / "dbt_project.yml", encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def install_packages(project_dir: Path) -> list[str]:
    """Install the packages in ``packages.yml`` (or ``dependencies.yml``) like ``dbt deps``.

    * ``local: <path>`` -> symlink ``dbt_packages/<name>`` to the local folder (what
      ``dbt deps`` does for local packages; it copies only where symlinks fail);
    * any other entry (hub ``package:``, ``git:``, ``tarball:``) -> its source must
      live at ``tests/fixtures/packages/<name>/`` and is copied, where ``<name>`` is
      the last path part of ``package:`` / the git repo name / ``name:`` if given.

    Returns the installed package names.
    """
    spec = None
    for fname in ("packages.yml", "dependencies.yml"):
        path = project_dir / fname
        if path.exists():
            with open(path, encoding="utf-8") as fh:
                spec = yaml.safe_load(fh) or {}
            break
    if not spec or not spec.get("packages"):
        return []
    install_root = project_dir / read_project_yml(project_dir).get(
        "packages-install-path", "dbt_packages"
    )
    install_root.mkdir(parents=True, exist_ok=True)
    installed = []
    for entry in spec["packages"]:
        if "local" in entry:
            src = (project_dir / entry["local"]).resolve()
            name = read_project_yml(src)["name"]
            dest = install_root / name
            if dest.exists() or dest.is_symlink():
                continue
            try:
                dest.symlink_to(src, target_is_directory=True)
            except OSError:
                shutil.copytree(src, dest)
        else:
            ref = entry.get("name") or entry.get("package") or entry.get("git") or entry.get(
                "tarball"
            )
            name = str(ref).rstrip("/").split("/")[-1]
            if name.endswith(".git"):
                name = name[:-4]
            src = PACKAGE_SOURCES / name
            if not src.is_dir():
                raise FileNotFoundError(
                    f"package {ref!r} of {project_dir}: no source at {src}"
                )
            dest = install_root / read_project_yml(src)["name"]
            if not dest.exists():
                shutil.copytree(src, dest)
        installed.append(name)
    return installed


def write_profiles(project_dir: Path, profiles_dir: Path) -> Path:
    """Write a dbt-duckdb ``profiles.yml`` for the project's profile into ``profiles_dir``."""
    profile = read_project_yml(project_dir).get("profile") or read_project_yml(project_dir)["name"]
    profiles_dir.mkdir(parents=True, exist_ok=True)
    db_path = profiles_dir / f"{profile}.duckdb"
    content = {
        profile: {
            "target": "dev",
            "outputs": {
                "dev": {"type": "duckdb", "path": str(db_path), "threads": 1, "schema": "main"}
            },
        }
    }
    path = profiles_dir / "profiles.yml"
    existing: dict[str, Any] = {}
    if path.exists():
        existing = yaml.safe_load(path.read_text()) or {}
    existing.update(content)
    path.write_text(yaml.safe_dump(existing, sort_keys=False))
    return path


@dataclass
class PreparedProject:
    """A fixture copied to a temporary directory, ready for dbt and bulwark."""

    key: str
    root: Path  # the copied fixture folder (for monorepo: the folder holding the projects)
    project_dir: Path  # the dbt project inside it
    profiles_dir: Path
    target_path: Path
    _manifest: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return read_project_yml(self.project_dir)["name"]


def prepare_project(key: str, workdir: Path, copies: dict[str, Path] | None = None) -> PreparedProject:
    """Copy the fixture behind ``key`` (see ORACLE_PROJECTS) into ``workdir`` and set it up.

    ``copies`` (fixture folder -> copied folder) lets projects of one fixture (the
    monorepo) share one copy.
    """
    fixture, sub = ORACLE_PROJECTS.get(key, (key, "."))
    copies = {} if copies is None else copies
    if fixture not in copies:
        dest = workdir / fixture.replace("/", "__")
        shutil.copytree(
            PROJECTS / fixture,
            dest,
            ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", "*.duckdb"),
            symlinks=True,
        )
        copies[fixture] = dest
    root = copies[fixture]
    project_dir = (root / sub).resolve()
    install_packages(project_dir)
    slug = key.replace("/", "__")
    profiles_dir = workdir / f"_profiles_{slug}"
    write_profiles(project_dir, profiles_dir)
    return PreparedProject(
        key=key,
        root=root,
        project_dir=project_dir,
        profiles_dir=profiles_dir,
        target_path=workdir / f"_target_{slug}",
    )


# --------------------------------------------------------------------------- running dbt


def _dbt_base_args(p: PreparedProject) -> list[str]:
    return [
        "--profiles-dir", str(p.profiles_dir),
        "--project-dir", str(p.project_dir),
        "--target-path", str(p.target_path),
    ]


def dbt_command() -> list[str]:
    """How to start the dbt CLI of this interpreter's environment."""
    exe = Path(sys.executable).parent / "dbt"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("dbt")
    if found:
        return [found]
    return [sys.executable, "-c", "from dbt.cli.main import cli; cli()"]


class DbtFailed(RuntimeError):
    pass


def run_dbt(args: list[str], p: PreparedProject, *, global_args: list[str] | None = None) -> str:
    """Run ``dbt <global_args> <args> <project args>`` and return stdout; raise on failure."""
    cmd = [*dbt_command(), "--no-use-colors", "--log-level", "warn", *(global_args or []),
           *args, *_dbt_base_args(p)]
    proc = subprocess.run(
        cmd, cwd=p.project_dir, env=dbt_env(), capture_output=True, text=True,
        timeout=DBT_TIMEOUT,
    )
    if proc.returncode != 0:
        raise DbtFailed(
            f"{' '.join(cmd)} failed ({proc.returncode})\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc.stdout


def dbt_parse(p: PreparedProject) -> dict[str, Any]:
    """``dbt parse --no-partial-parse`` the project; return the loaded manifest.json (cached)."""
    if p._manifest is None:
        run_dbt(["parse", "--no-partial-parse"], p)
        with open(p.target_path / "manifest.json", encoding="utf-8") as fh:
            p._manifest = json.load(fh)
    return p._manifest


def _json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "unique_id" in obj:
            out.append(obj)
    return out


def run_dbt_ls(
    p: PreparedProject,
    select: str | None = None,
    *,
    exclude: str | None = None,
    resource_types: list[str] | None = None,
) -> set[str]:
    """unique_ids that ``dbt ls --select X --output json --output-keys unique_id`` prints."""
    args = ["ls", "--output", "json", "--output-keys", "unique_id"]
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", exclude]
    for rt in resource_types or []:
        args += ["--resource-type", rt]
    out = run_dbt(args, p, global_args=["--quiet"])
    return {obj["unique_id"] for obj in _json_lines(out)}


_LS_MANY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from dbt.cli.main import dbtRunner

    base, queries = json.loads(sys.stdin.read())
    parsed = dbtRunner().invoke(["parse", "--no-partial-parse", "--quiet", *base])
    if not parsed.success:
        print("PARSE FAILED", parsed.exception, file=sys.stderr)
        sys.exit(2)
    runner = dbtRunner(manifest=parsed.result)
    results = []
    for q in queries:
        res = runner.invoke(["ls", "--quiet", "--output", "json",
                             "--output-keys", "unique_id", *q, *base])
        if not res.success:
            print("LS FAILED", q, res.exception, file=sys.stderr)
            sys.exit(3)
        ids = sorted(json.loads(line)["unique_id"] for line in (res.result or []))
        results.append(ids)
    print("@@ORACLE@@" + json.dumps(results))
    """
)


def _selection_args(sel: Any) -> list[str]:
    """A selector string, ``None`` (no --select), or ``(select, exclude)``."""
    select, exclude = (sel if isinstance(sel, tuple) else (sel, None))
    args: list[str] = []
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", exclude]
    return args


def run_dbt_ls_many(
    p: PreparedProject, selections: list[Any], *, resource_types: list[str] | None = None
) -> dict[Any, set[str]]:
    """Like ``run_dbt_ls`` for many selections at once: one dbt process, parsed once.

    Each selection is a selector string, ``None`` (plain ``dbt ls``) or a
    ``(select, exclude)`` tuple.  Uses ``dbtRunner(manifest=...)`` so every ``ls``
    reuses the one parsed manifest; the selection logic is exactly ``dbt ls``'s.
    Returns selection -> unique_ids.
    """
    base = [*_dbt_base_args(p)]
    rt_args = [a for rt in (resource_types or []) for a in ("--resource-type", rt)]
    queries = [[*_selection_args(s), *rt_args] for s in selections]
    proc = subprocess.run(
        [sys.executable, "-c", _LS_MANY_SCRIPT],
        input=json.dumps([base, queries]), cwd=p.project_dir, env=dbt_env(),
        capture_output=True, text=True, timeout=DBT_TIMEOUT,
    )
    marker = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@ORACLE@@")]
    if proc.returncode != 0 or not marker:
        raise DbtFailed(
            f"dbt ls batch failed ({proc.returncode})\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    results = json.loads(marker[-1][len("@@ORACLE@@"):])
    return {s: set(ids) for s, ids in zip(selections, results, strict=False)}


_BATCH_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from dbt.cli.main import dbtRunner

    jobs = json.loads(sys.stdin.read())
    out = {}
    for job in jobs:
        log = []

        def keep(msg, log=log):
            if msg.info.level in ("warn", "error"):
                log.append(msg.info.msg)

        base = job["base"]
        res = {"parse_error": None, "ls_error": None, "log": log, "ls": []}
        out[job["key"]] = res
        parsed = dbtRunner(callbacks=[keep]).invoke(
            ["parse", "--no-partial-parse", "--quiet", *base])
        if not parsed.success:
            res["parse_error"] = "dbt parse failed: %s" % (parsed.exception,)
            continue
        runner = dbtRunner(manifest=parsed.result, callbacks=[keep])
        for q in job["queries"]:
            r = runner.invoke(["ls", "--quiet", "--output", "json",
                               "--output-keys", "unique_id", *q, *base])
            if not r.success:
                res["ls_error"] = "dbt ls %s failed: %s" % (q, r.exception)
                break
            res["ls"].append(sorted(json.loads(l)["unique_id"] for l in (r.result or [])))
    print("@@ORACLE@@" + json.dumps(out))
    """
)


@dataclass
class BatchResult:
    manifest: dict[str, Any] | None
    ls: dict[Any, set[str]]
    parse_error: str | None
    ls_error: str | None
    log: list[str]


def run_dbt_batch(
    jobs: dict[str, tuple[PreparedProject, list[Any]]],
) -> dict[str, BatchResult]:
    """Parse several projects (and run ``dbt ls`` selections on each) in ONE dbt process.

    ``jobs``: key -> (prepared project, selections as for ``run_dbt_ls_many``).  Each
    project gets ``dbt parse --no-partial-parse`` with its own --profiles-dir,
    --project-dir and --target-path (so ``manifest.json`` lands in its target path)
    through ``dbtRunner``, then one ``dbt ls`` per selection on that parsed manifest.
    Saves dbt's ~2 s start-up per project (about 4x faster than one CLI per project
    on a 2-core machine).  A project that fails does not stop the others.
    """
    payload = [
        {"key": key, "base": _dbt_base_args(p), "queries": [_selection_args(s) for s in sels]}
        for key, (p, sels) in jobs.items()
    ]
    proc = subprocess.run(
        [sys.executable, "-c", _BATCH_SCRIPT],
        input=json.dumps(payload), cwd=TESTS_DIR, env=dbt_env(),
        capture_output=True, text=True, timeout=DBT_TIMEOUT,
    )
    marker = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@ORACLE@@")]
    if proc.returncode != 0 or not marker:
        raise DbtFailed(
            f"dbt batch failed ({proc.returncode})\n--- stdout\n{proc.stdout[-5000:]}"
            f"\n--- stderr\n{proc.stderr[-5000:]}"
        )
    raw = json.loads(marker[-1][len("@@ORACLE@@"):])
    results = {}
    for key, (p, sels) in jobs.items():
        r = raw[key]
        manifest = None
        if r["parse_error"] is None:
            with open(p.target_path / "manifest.json", encoding="utf-8") as fh:
                manifest = json.load(fh)
        log = "\n".join(r["log"])
        results[key] = BatchResult(
            manifest=manifest,
            ls={s: set(ids) for s, ids in zip(sels, r["ls"], strict=False)},
            parse_error=r["parse_error"] and f"{r['parse_error']}\n{log}",
            ls_error=r["ls_error"] and f"{r['ls_error']}\n{log}",
            log=r["log"],
        )
    return results


# --------------------------------------------------------------------------- manifest views


def manifest_nodes(
    manifest: dict[str, Any], resource_types: tuple[str, ...] = ("model", "seed", "snapshot")
) -> dict[str, dict[str, Any]]:
    """unique_id -> node for enabled (``nodes``) and disabled (``disabled``) nodes of the types."""
    out: dict[str, dict[str, Any]] = {}
    for uid, node in manifest.get("nodes", {}).items():
        if node.get("resource_type") in resource_types:
            out[uid] = node
    for uid, versions in manifest.get("disabled", {}).items():
        for node in versions:
            if node.get("resource_type") in resource_types and uid not in out:
                out[uid] = node
    for section, rtype in (("sources", "source"), ("exposures", "exposure"),
                           ("unit_tests", "unit_test")):
        if rtype in resource_types:
            out.update(manifest.get(section, {}))
    return out


# --------------------------------------------------------------------------- bulwark side


def bulwark_command() -> list[str]:
    return [sys.executable, "-m", "dbt_bulwark.cli"]


def run_bulwark(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    src = TESTS_DIR.parent / "src"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    return subprocess.run(
        [*bulwark_command(), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=120,
    )


def bulwark_ls_json(
    p: PreparedProject,
    *,
    select: str | None = None,
    exclude: str | None = None,
    include_disabled: bool = False,
    resource_types: list[str] | None = None,
) -> list[dict[str, Any]]:
    """``bulwark ls --output json`` on the prepared project; one dict per printed node."""
    args = ["ls", "--output", "json", "--project-dir", str(p.project_dir)]
    if include_disabled:
        args.append("--include-disabled")
    if select:
        args += ["--select", select]
    if exclude:
        args += ["--exclude", exclude]
    for rt in resource_types or []:
        args += ["--resource-type", rt]
    proc = run_bulwark(args, cwd=p.project_dir)
    if proc.returncode != 0:
        raise AssertionError(
            f"bulwark {' '.join(args)} failed ({proc.returncode})\n--- stdout\n{proc.stdout}"
            f"\n--- stderr\n{proc.stderr}"
        )
    return _json_lines(proc.stdout)


# --------------------------------------------------------------------------- session cache


# Selections the session runs through `dbt ls` for each project, in the same dbt process
# that parses it.  Test modules add theirs at import (collection) time, before any test
# asks for a manifest: see test_oracle_select.py.
LS_SELECTIONS: dict[str, list[Any]] = {}


def register_ls_selections(key: str, selections: list[Any]) -> None:
    known = LS_SELECTIONS.setdefault(key, [])
    known.extend(s for s in selections if s not in known)


class OracleSession:
    """Per-test-session cache: each fixture project is copied, parsed by dbt and listed by
    bulwark once.  The first ``manifest()`` call parses every project (and runs every
    registered ``dbt ls`` selection) in a single dbt process."""

    def __init__(self, workdir: Path, keys: list[str] | None = None) -> None:
        self.workdir = workdir
        self.keys = list(keys or ORACLE_PROJECTS)
        self._copies: dict[str, Path] = {}
        self._projects: dict[str, PreparedProject] = {}
        self._results: dict[str, BatchResult] = {}
        self._bulwark: dict[tuple, Any] = {}

    def project(self, key: str) -> PreparedProject:
        if key not in self._projects:
            self._projects[key] = prepare_project(key, self.workdir, self._copies)
        return self._projects[key]

    def _run(self, keys: list[str]) -> None:
        todo = [k for k in keys if k not in self._results]
        if not todo:
            return
        jobs = {k: (self.project(k), list(LS_SELECTIONS.get(k, []))) for k in todo}
        self._results.update(run_dbt_batch(jobs))

    def _result(self, key: str) -> BatchResult:
        self._run(self.keys if key in self.keys else [key])
        return self._results[key]

    def manifest(self, key: str) -> dict[str, Any]:
        res = self._result(key)
        if res.manifest is None:
            raise DbtFailed(f"[{key}] {res.parse_error}")
        self.project(key)._manifest = res.manifest
        return res.manifest

    def dbt_ls(self, key: str, selection: Any) -> set[str]:
        """dbt ls's unique_ids for a selection registered with ``register_ls_selections``
        (unregistered ones cost one extra dbt process)."""
        res = self._result(key)
        if res.manifest is None:
            raise DbtFailed(f"[{key}] {res.parse_error}")
        if selection not in res.ls:
            if res.ls_error:
                raise DbtFailed(f"[{key}] {res.ls_error}")
            res.ls.update(run_dbt_ls_many(self.project(key), [selection]))
        return res.ls[selection]

    def bulwark_ls(self, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        """``bulwark_ls_json`` cached per (project, options); a failure is re-raised per test."""
        cache_key = (key, tuple(sorted(
            (k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items())))
        if cache_key not in self._bulwark:
            try:
                self._bulwark[cache_key] = bulwark_ls_json(self.project(key), **kwargs)
            except BaseException as exc:  # noqa: BLE001 - remembered and re-raised by every test that asks
                self._bulwark[cache_key] = exc
        value = self._bulwark[cache_key]
        if isinstance(value, BaseException):
            raise value
        return value
