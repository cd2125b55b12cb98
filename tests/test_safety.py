"""Safe to run on any repository (issue 11 "Security", "No silent skips", "Messages that
point at the truth"; issue 15 error path and cache stamp).

Every hostile input is run through the real command line in a subprocess (with a
timeout, so a hang fails the test instead of blocking it) and must end in a finding
at the right file and line: never a side effect, a hang, or a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PROJECT_YML = "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text) if not text.startswith("\n") else text[1:])
    return root


def project(tmp_path: Path, files: dict[str, str], yml: str = PROJECT_YML) -> Path:
    root = tmp_path / "proj"
    return write(root, {"dbt_project.yml": yml, **files})


def bulwark(root: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
            cache: bool = False) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    extra = [] if cache else ["--no-cache"]
    cmd = [sys.executable, "-m", "dbt_bulwark.cli", args[0], "--project-dir", str(root),
           "--repo-root", str(root), *extra, *args[1:]]
    return subprocess.run(cmd, cwd=root, env=full_env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def findings_json(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return list(json.loads(proc.stdout)["findings"])


def codes_at(findings: list[dict[str, Any]]) -> set[tuple[str, str, int]]:
    return {(f["code"], f["path"], f["line"]) for f in findings}


# ----------------------------------------------------------------------------- 1. sandbox

ESCAPE = "select 1 as id,\n  {{ cycler.__init__.__globals__.os.system('touch pwned') }} as x\n"
ESCAPE_MACRO = """
{% macro boom() %}
  {{ return(joiner.__init__.__globals__.os.system('touch pwned_macro')) }}
{% endmacro %}
"""


@pytest.mark.parametrize("command", ["ls", "fast-compile", "check-contracts"])
def test_attribute_escape_is_blocked_and_reported(tmp_path: Path, command: str) -> None:
    root = project(tmp_path, {
        "models/evil.sql": ESCAPE,
        "models/evil_macro.sql": "select {{ boom() }} as x\n",
        "macros/boom.sql": ESCAPE_MACRO,
        "models/ok.sql": "select 1 as id\n",
    })
    args = [command] if command == "ls" else [command, "--all-files", "--format", "json"]
    proc = bulwark(root, *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not (root / "pwned").exists() and not (root / "pwned_macro").exists()
    if command == "ls":   # ls lists what loads and reports loader findings on stderr
        assert "models/evil.sql:2" in proc.stderr and "BLK021" in proc.stderr
        assert "shop.ok" in proc.stdout
        return
    got = codes_at(findings_json(proc))
    assert ("BLK021", "models/evil.sql", 2) in got
    assert ("BLK021", "models/evil_macro.sql", 1) in got
    assert proc.returncode == 1


def test_oversized_range_is_blocked(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "models/big.sql": "select 1 as id\n{% for i in range(100000000) %}{% endfor %}\n",
        "models/fine.sql": "select {% for i in range(100000) %}{% endfor %}1 as id\n",
    })
    proc = bulwark(root, "fast-compile", "--all-files", "--format", "json")
    found = findings_json(proc)
    assert ("BLK021", "models/big.sql", 2) in codes_at(found)
    assert not [f for f in found if f["path"] == "models/fine.sql"]
    assert "100,000" in next(f["message"] for f in found if f["code"] == "BLK021")


def test_project_yml_jinja_is_sandboxed(tmp_path: Path) -> None:
    yml = PROJECT_YML + ("models:\n  shop:\n    +schema: \"{{ cycler.__init__.__globals__"
                         ".os.system('touch pwned') }}\"\n")
    root = project(tmp_path, {"models/a.sql": "select 1 as id\n"}, yml)
    proc = bulwark(root, "fast-compile", "--all-files", "--format", "json")
    assert not (root / "pwned").exists()
    assert ("BLK021", "dbt_project.yml", 7) in codes_at(findings_json(proc))


# ----------------------------------------------------------------------------- 2. time limit

SLOW = ("select 1 as id\n{% set l = range(100000) | list %}"
        "{% for i in l %}{% for j in l %}{% endfor %}{% endfor %}\n")


@pytest.mark.parametrize("command", ["ls", "fast-compile"])
def test_runaway_template_is_stopped(tmp_path: Path, command: str) -> None:
    files = {"models/slow.sql": SLOW, "models/ok.sql": "select 1 as id\n",
             # fast to parse, runaway only in compile mode: rendered in a forked worker
             "models/zz_slow_compile.sql": "select 1 as id\n{% if execute %}" + SLOW.split(
                 "\n", 1)[1].strip() + "{% endif %}\n"}
    # many models: fast-compile --all-files forks workers, whose renders must be stopped too
    files.update({f"models/m{i}.sql": "select {{ ref('ok') }}.id from {{ ref('ok') }}\n"
                  for i in range(30)})
    root = project(tmp_path, files)
    args = [command] if command == "ls" else [command, "--all-files", "--format", "json"]
    proc = bulwark(root, *args, env={"BULWARK_RENDER_TIMEOUT": "1"})
    assert "Traceback" not in proc.stderr, proc.stderr
    if command == "ls":
        assert "BLK022" in proc.stderr and "models/slow.sql" in proc.stderr
        return
    found = findings_json(proc)
    assert any(f["code"] == "BLK022" and f["path"] == "models/slow.sql" for f in found), found
    assert ("BLK022", "models/zz_slow_compile.sql", 2) in codes_at(found), found
    assert proc.returncode == 1


def test_runaway_macro_in_compile_mode_is_stopped() -> None:
    """A render in compile mode (execute=True) on a worker thread is stopped too."""
    import threading

    from dbt_bulwark.project.macros import MacroIndex
    from dbt_bulwark.sql.jinja_env import RenderContext, RenderTimeout, render

    macros = MacroIndex("p")
    macros.add_file("p", "macros/spin.sql", "{% macro spin() %}{% if execute %}"
                    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}"
                    "{% endfor %}{% endif %}{% endmacro %}")
    result: list[Any] = []

    def work() -> None:
        ctx = RenderContext(package="p", macros=macros, vars={}, execute=True)
        try:
            render("select {{ spin() }} 1", ctx)
        except RenderTimeout as exc:
            result.append(exc)

    old = os.environ.get("BULWARK_RENDER_TIMEOUT")
    os.environ["BULWARK_RENDER_TIMEOUT"] = "1"
    try:
        thread = threading.Thread(target=work)
        thread.start()
        thread.join(60)
    finally:
        if old is None:
            os.environ.pop("BULWARK_RENDER_TIMEOUT", None)
        else:
            os.environ["BULWARK_RENDER_TIMEOUT"] = old
    assert not thread.is_alive() and result and isinstance(result[0], RenderTimeout)


# ----------------------------------------------------------------------------- 3. YAML limits


def alias_bomb(levels: int = 12) -> str:
    lines = ["version: 2", "models:", "  - name: a", "    config:", "      contract: {enforced: true}",
             "    columns: [{name: id, data_type: integer}]", "    meta:",
             "      a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"      a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


@pytest.mark.parametrize("command", ["ls", "fast-compile", "check-contracts", "check-schema-diff"])
def test_yaml_alias_bomb_is_a_finding_not_a_hang(tmp_path: Path, command: str) -> None:
    root = project(tmp_path, {"models/a.sql": "select 1 as id\n", "models/b.sql":
                              "select id from {{ ref('a') }}\n",
                              "models/schema.yml": alias_bomb()})
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    (root / "models/b.sql").write_text("select id, 2 as two from {{ ref('a') }}\n")
    if command == "ls":
        proc = bulwark(root, "ls")
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "BLK005" in proc.stderr and "models/schema.yml:11" in proc.stderr
        return
    # check-schema-diff reports load errors of the files it is given
    extra = ["--base", "HEAD", str(root / "models/schema.yml"), str(root / "models/b.sql")] \
        if command == "check-schema-diff" else ["--all-files", "--all-findings"]
    proc = bulwark(root, command, "--format", "json", *extra)
    found = findings_json(proc)
    assert ("BLK005", "models/schema.yml", 11) in codes_at(found), found
    assert proc.returncode == 1


def test_recursive_alias_and_legit_aliases() -> None:
    from dbt_bulwark.project import yamlio

    with pytest.raises(yamlio.YamlError) as info:
        yamlio.load("a: &x [1, *x]\n")
    assert info.value.code == "BLK005" and info.value.line == 1
    data = yamlio.load("base: &b {materialized: table}\nm:\n  <<: *b\n  tags: [x]\nn: *b\n")
    assert data == {"base": {"materialized": "table"}, "n": {"materialized": "table"},
                    "m": {"materialized": "table", "tags": ["x"]}}


# ----------------------------------------------------------------------------- 4. cache


def ls_json(root: Path, env: dict[str, str] | None = None, cache: bool = True
            ) -> dict[str, dict[str, Any]]:
    proc = bulwark(root, "ls", "--output", "json", env=env, cache=cache)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return {d["unique_id"]: d for d in map(json.loads, proc.stdout.splitlines())}


@pytest.mark.parametrize("content", ["garbage", "wrong-shape", "old-format", "hostile",
                                     "hostile-entry", "broken-entry"])
def test_broken_cache_file_is_ignored(tmp_path: Path, content: str) -> None:
    import pickle

    from dbt_bulwark.cache import FORMAT

    root = project(tmp_path, {
        "models/a.sql": "{% if var('x', 1) == 1 %}{{ config(materialized='table') }}{% endif %}"
                        "select 1 as id\n",
        "models/schema.yml": "version: 2\nmodels:\n  - name: a\n    description: hi\n"})
    first = ls_json(root)
    caches = list((root / ".bulwark-cache").glob("parse-*.pickle"))
    assert caches
    with open(caches[0], "rb") as fh:
        entries = pickle.load(fh)["entries"]   # the file this test just wrote
    assert entries and all(isinstance(v, bytes) for v in entries.values())   # one by one
    payload = {
        "garbage": b"\x80\x05not a pickle at all",
        "wrong-shape": pickle.dumps({"format": FORMAT,
                                     "entries": {k: pickle.dumps(5) for k in entries}}),
        "old-format": pickle.dumps({k: ("ok",) for k in entries}),
        "hostile": pickle.dumps({"format": FORMAT, "entries": {("yaml", "x"): _Hostile()}}),
        "hostile-entry": pickle.dumps({"format": FORMAT, "entries": {
            **entries, ("yaml", "x"): pickle.dumps(_Hostile())}}),
        "broken-entry": pickle.dumps({"format": FORMAT, "entries": {
            k: (b"\x80\x05broken" if i == 0 else v) for i, (k, v) in enumerate(entries.items())}}),
    }[content]
    for path in caches:
        path.write_bytes(payload)
    assert ls_json(root) == first
    assert not (root / "pwned").exists()
    assert first["model.shop.a"]["config"]["materialized"] == "table"


class _Hostile:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch pwned",))


def test_cache_stamp_covers_dependency_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    from dbt_bulwark import cache

    versions = cache.dependency_versions()
    assert {"sqlglot", "jinja2", "dbt_extractor"} <= set(versions)
    before = cache._code_stamp()
    for name in ("sqlglot", "jinja2", "dbt_extractor", "duckdb"):
        bumped = {**versions, name: "999.0"}
        monkeypatch.setattr(cache, "dependency_versions", lambda b=bumped: b)
        assert cache._code_stamp() != before, name


def test_parse_cache_follows_env_var(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "models/a.sql": "{% if env_var('BULWARK_T_MAT', 'view') == 'table' %}"
                        "{{ config(materialized='table') }}{% endif %}select 1 as id\n"})
    env = {"BULWARK_T_MAT": "table"}
    assert ls_json(root, env)["model.shop.a"]["config"]["materialized"] == "table"
    assert ls_json(root, {"BULWARK_T_MAT": "view"})["model.shop.a"]["config"][
        "materialized"] == "view"
    assert ls_json(root, env)["model.shop.a"]["config"]["materialized"] == "table"


def test_project_yml_env_var_is_not_frozen_by_the_cache(tmp_path: Path) -> None:
    yml = PROJECT_YML + "models:\n  shop:\n    +materialized: \"{{ env_var('BULWARK_T_M2', " \
                        "'view') }}\"\n"
    root = project(tmp_path, {"models/a.sql": "select 1 as id\n"}, yml)
    assert ls_json(root, {"BULWARK_T_M2": "table"})["model.shop.a"]["config"][
        "materialized"] == "table"
    assert ls_json(root, {"BULWARK_T_M2": "view"})["model.shop.a"]["config"][
        "materialized"] == "view"


# ----------------------------------------------------------------------------- 5. target.type

TARGET_MODEL = ("{% if target.type == 'snowflake' %}{{ config(materialized='table') }}{% endif %}"
                "select 1 as id\n")


def test_target_type_at_parse_time_follows_the_project(tmp_path: Path) -> None:
    root = project(tmp_path, {"models/a.sql": TARGET_MODEL})
    env = {"DBT_PROFILES_DIR": str(tmp_path / "no-profiles")}
    assert ls_json(root, env)["model.shop.a"]["config"]["materialized"] == "view"   # duckdb
    # the profile's adapter type (profiles.yml beside dbt_project.yml, as dbt looks)
    write(root, {"profiles.yml": "shop:\n  target: prod\n  outputs:\n    prod:\n"
                                 "      type: snowflake\n      account: x\n"})
    assert ls_json(root)["model.shop.a"]["config"]["materialized"] == "table"
    # the policy's dialect wins, and the cached render of the first run is not reused
    write(root, {"bulwark.yml": "dialect: postgres\n"})
    assert ls_json(root)["model.shop.a"]["config"]["materialized"] == "view"
    write(root, {"bulwark.yml": "dialect: snowflake\n"})
    assert ls_json(root, env)["model.shop.a"]["config"]["materialized"] == "table"


# ----------------------------------------------------------------------------- 6. broken pipe


@pytest.mark.parametrize("command", [["ls", "--output", "json"], ["check", "--all-files"]])
def test_closed_pipe_ends_quietly(tmp_path: Path, command: list[str]) -> None:
    """`bulwark ls | head -1`: the reader closes the pipe after one line (the output is
    far larger than a pipe buffer, so the writer meets the closed pipe)."""
    files = {f"models/m{i:03}.sql": f"select id from {{{{ ref('missing_{i}') }}}}\n"
             for i in range(400)}
    root = project(tmp_path, files)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbt_bulwark.cli", command[0], "--project-dir", str(root),
         "--repo-root", str(root), "--no-cache", *command[1:]],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=120)
    assert first
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err
    assert rc == 1   # a closed pipe ends the run as "not all output seen" (cli._broken_pipe)


# ----------------------------------------------------------------------------- 7. one error path


def test_unexpected_exception_is_one_line_and_exit_3(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from dbt_bulwark import cli
    from dbt_bulwark.project import loader

    root = project(tmp_path, {"models/a.sql": "select 1 as id\n", "seeds/s.csv": "id\n1\n"})

    def explode(*args: Any) -> None:   # the loader's frame has the seed's path in scope
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(loader._ProjectBuilder, "add_seed", explode)
    rc = cli.main(["check-contracts", "--project-dir", str(root), "--repo-root", str(root),
                   "--no-cache", "--all-files"])
    err = capsys.readouterr().err
    assert rc == 3
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bulwark check-contracts: internal error while processing "
                               "seeds/s.csv: RuntimeError: boom")
    log = root / ".bulwark-cache" / "bulwark.log"
    assert log.is_file() and "Traceback" in log.read_text() and "RuntimeError" in log.read_text()
    # usage errors keep exit 2
    assert cli.main(["check-contracts", "--project-dir", str(tmp_path / "nope")]) == 2


# ----------------------------------------------------------------------------- 9. messages


def test_messages_name_the_real_cause_at_the_real_line(tmp_path: Path) -> None:
    root = project(tmp_path, {
        "models/up.sql": "select 1 as id\n",
        "models/no_args.sql": "select *\nfrom {{ ref() }}\n",
        "models/one_source_arg.sql": "select *\n\nfrom {{ source('a') }}\n",
        "models/four_args.sql": "select *\nfrom {{ ref('a', 'b', 'c', 'd') }}\n",
        "models/recursive.sql": "select {{ r() }} as x",
        "macros/r.sql": "\n\n-- a macro that calls itself\n{% macro r() %}\n  {{ r() }}\n"
                        "{% endmacro %}\n\n\n\n\n\n\n\n\n\n\n\n",
        "models/cr_only.sql": "select 1 as id,\r\r  {{ ref('nope') }} as x\r",
        "models/schema.yml": "version: 2\nmodels:\n  - name: up\n  - name: [a, b]\n"
                             "    description: x\n",
    })
    found = findings_json(bulwark(root, "fast-compile", "--all-files", "--format", "json"))
    by_path: dict[str, list[dict[str, Any]]] = {}
    for f in found:
        by_path.setdefault(f["path"], []).append(f)

    def only(path: str) -> dict[str, Any]:
        assert len(by_path.get(path, [])) == 1, by_path.get(path)
        return by_path[path][0]

    f = only("models/no_args.sql")
    assert (f["code"], f["line"]) == ("BLK020", 2)
    assert "wrong number of arguments to ref(): 0 given" in f["message"]
    f = only("models/one_source_arg.sql")
    assert (f["code"], f["line"]) == ("BLK020", 3)
    assert "wrong number of arguments to source(): 1 given" in f["message"]
    f = only("models/four_args.sql")
    assert (f["code"], f["line"]) == ("BLK020", 2)
    assert "wrong number of arguments to ref(): 4 given" in f["message"]
    assert "package" not in f["message"].split(";")[0]
    f = only("models/recursive.sql")
    assert (f["code"], f["line"]) == ("BLK020", 1) and "Recursion" in f["message"]
    f = only("models/cr_only.sql")
    assert (f["code"], f["line"]) == ("BLK110", 3) and "'nope'" in f["message"]
    f = only("models/schema.yml")
    assert (f["code"], f["line"]) == ("BLK033", 4)
    assert "must be a string, not a list" in f["message"] and "no `name`" not in f["message"]


def test_underscore_macro_through_a_package_namespace_is_not_blocked(tmp_path: Path) -> None:
    """dbt's package namespace is a mapping: `pkg._private_macro(...)` passes its sandbox
    (attribute refused, item found), as dbt_utils' own `dbt_utils._is_ephemeral(...)` does.
    Seen on a real project's fresh clone as a false BLK021."""
    root = project(tmp_path, {
        "packages.yml": "packages:\n  - local: helpers\n",
        "helpers/dbt_project.yml": "name: helpers\nversion: '1.0'\nconfig-version: 2\n",
        "helpers/macros/m.sql": "{% macro _private(x) %}{{ x }}{% endmacro %}\n"
                                "{% macro public(x) %}{{ helpers._private(x) }}{% endmacro %}\n",
        "models/a.sql": "select {{ helpers._private('1') }} as id, {{ helpers.public('2') }} as v\n",
    })
    for command in ("ls", "fast-compile"):
        proc = bulwark(root, command, "--no-base") if command != "ls" else bulwark(root, "ls")
        out = proc.stdout + proc.stderr
        assert "BLK021" not in out and "Traceback" not in out, out
    proc = bulwark(root, "fast-compile", "--no-base", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
