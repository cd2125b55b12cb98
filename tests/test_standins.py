"""Stand-in renders (standins.py): a change to a model bulwark cannot fully render (a macro
of a package that is not installed, a warehouse call) is still judged against its git base.

Scripted git repositories, the fault staged as a commit would stage it, `bulwark
fast-compile` run as the hook runs (base = the index's HEAD).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dbt_bulwark.checks.standins import FILLERS, Marked, Parser, choose
from dbt_bulwark.sql.jinja_env import STANDIN

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

# an invented project: `helpers` is declared in packages.yml and never installed
PROJECT = {
    "dbt_project.yml": "name: depot\nversion: '1.0'\nconfig-version: 2\nprofile: depot\n",
    "packages.yml": "packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.1.1\n",
    "models/base_items.sql": (
        "select\n"
        "    1 as item_id,\n"
        "    'bolt' as item_name,\n"
        "    3 as weight_kg,\n"
        "    current_date as stocked_on\n"
    ),
    # calls a macro of the package that is not installed, twice, in the select list
    "models/items_keyed.sql": (
        "with src as (\n"
        "    select * from {{ ref('base_items') }}\n"
        "), keyed as (\n"
        "    select\n"
        "        {{ dbt_utils.generate_surrogate_key(['item_id']) }} as item_key,\n"
        "        item_id,\n"
        "        item_name,\n"
        "        weight_kg\n"
        "    from src\n"
        ")\n"
        "select * from keyed\n"
    ),
    # a whole CTE body from the package: only a query stands in there
    "models/calendar.sql": (
        "with days as (\n"
        "    {{ dbt_utils.date_spine(datepart='day', start_date='2020-01-01') }}\n"
        "), typed as (\n"
        "    select cast(date_day as date) as day_on from days\n"
        ")\n"
        "select * from typed\n"
    ),
    # asks the warehouse (run_query): its result is unknowable without one
    "macros/lookup.sql": (
        "{% macro shelf_filter() %}\n"
        "  {% set rows = run_query('select 1') %}\n"
        "  where 1 = 1\n"
        "  {% for r in rows %} and shelf <> '{{ r[0] }}'{% endfor %}\n"
        "{% endmacro %}\n"
    ),
    "models/shelved.sql": (
        "select\n"
        "    item_id,\n"
        "    weight_kg * 2 as double_weight\n"
        "from {{ ref('base_items') }}\n"
        "{{ shelf_filter() }}\n"
    ),
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
    return env


def _git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main",
                           *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def committed_repo(root: Path, files: dict[str, str]) -> Path:
    """``files`` written under ``root``, a new git repository with them committed."""
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "--no-verify", "-m", "init")
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return committed_repo(tmp_path_factory.mktemp("standins") / "repo", PROJECT)


def _staged(repo: Path, edits: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Stage ``edits`` (path -> new text), run fast-compile on them, restore the base."""
    try:
        for rel, text in edits.items():
            (repo / rel).write_text(text, encoding="utf-8")
        _git(repo, "add", "-A")
        return subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "fast-compile",
                               *edits], cwd=repo, env=_env(), capture_output=True, text=True,
                              timeout=600)
    finally:
        _git(repo, "reset", "-q", "--hard")


def _errors(out: str) -> list[str]:
    return [line for line in out.splitlines()
            if " BLK" in line and "[info]" not in line and "[warning]" not in line]


FAULTS = [
    ("items_keyed.sql", "select * from keyed", "selct * from keyed", "'selct'"),
    ("items_keyed.sql", "as item_key,\n", "as item_key\n", "missing comma"),
    ("calendar.sql", "cast(date_day as date)", "cast(date_day as date", "unclosed '('"),
    ("shelved.sql", "    item_id,\n", "    item_id\n", "missing comma"),
    ("shelved.sql", "from {{ ref", "frm {{ ref", "'frm'"),
]


@pytest.mark.parametrize("model,old,new,says", FAULTS,
                         ids=[f"{m}:{s}" for m, _o, _n, s in FAULTS])
def test_syntax_fault_in_unrendered_model_is_an_error(repo: Path, model: str, old: str,
                                                      new: str, says: str) -> None:
    rel = f"models/{model}"
    text = PROJECT[rel]
    assert old in text
    proc = _staged(repo, {rel: text.replace(old, new, 1)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = _errors(proc.stdout)
    assert len(errors) == 1 and "BLK130" in errors[0] and says in errors[0], proc.stdout
    assert errors[0].startswith(rel + ":")
    assert "stand-ins" in errors[0] and "parsed at the base revision" in errors[0]


def test_column_removed_upstream_of_unrendered_model(repo: Path) -> None:
    rel = "models/base_items.sql"
    proc = _staged(repo, {rel: PROJECT[rel].replace("    'bolt' as item_name,\n", "")})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = _errors(proc.stdout)
    assert len(errors) == 1, proc.stdout
    assert errors[0].startswith("models/items_keyed.sql:7:")
    assert "BLK140" in errors[0] and "'item_name'" in errors[0]
    assert "it was at the base revision" in errors[0]


@pytest.mark.parametrize("rel,new", [
    ("models/items_keyed.sql", "-- reviewed\n" + PROJECT["models/items_keyed.sql"]),
    ("models/items_keyed.sql", PROJECT["models/items_keyed.sql"].replace(
        "        item_id,\n", "        item_id,\n        1 as in_stock,\n")),
    ("models/items_keyed.sql", PROJECT["models/items_keyed.sql"].replace("\n    ", "\n  ")
     + "\n\n"),
    ("models/calendar.sql", PROJECT["models/calendar.sql"].replace(
        "select * from typed", "select day_on, 1 as is_open from typed")),
    ("models/shelved.sql", PROJECT["models/shelved.sql"].replace(
        "weight_kg * 2", "weight_kg * 3")),
    # a new column upstream: nothing downstream breaks
    ("models/base_items.sql", PROJECT["models/base_items.sql"].replace(
        "    3 as weight_kg,\n", "    3 as weight_kg,\n    'red' as colour,\n")),
], ids=["comment", "new-column", "whitespace", "cte-select", "expression", "upstream-column"])
def test_benign_edits_pass(repo: Path, rel: str, new: str) -> None:
    proc = _staged(repo, {rel: new})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not _errors(proc.stdout)


def test_clean_tree_has_no_stand_in_findings(repo: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "fast-compile",
                           "--all-files"], cwd=repo, env=_env(), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BLK130" not in proc.stdout and "BLK140" not in proc.stdout


# ----------------------------------------------------------------------------- the search


def _marked(sql: str) -> Marked:
    import re

    marks = [(m.start(), m.end()) for m in re.finditer(STANDIN, sql)]
    return Marked(sql, sql, marks, {})


def test_choose_picks_a_query_for_a_cte_body() -> None:
    m = _marked(f"with d as ({STANDIN}) select {STANDIN} {STANDIN} from d")
    parser = Parser("duckdb", "profile")     # DuckDB's own parser: a CTE body is a query
    assert parser.error(m.fill([0, 0, 0])[0]) is not None
    choice = choose(m, parser)
    assert choice is not None
    assert FILLERS[choice[0]].startswith("select")
    assert parser.error(m.fill(choice)[0]) is None


def test_choose_gives_up_when_the_sql_itself_is_broken() -> None:
    assert choose(_marked(f"selct {STANDIN} from t"), Parser("postgres", "profile")) is None
    assert choose(_marked(f"select ({STANDIN} from t"), Parser("duckdb", "guess")) is None


def test_stand_in_render_marks_unknown_calls_only(tmp_path: Path) -> None:
    from dbt_bulwark.checks.standins import marked_render
    from dbt_bulwark.project.fs import WorkTree
    from dbt_bulwark.project.loader import load_project

    files = {
        "dbt_project.yml": "name: marks\nversion: '1.0'\nconfig-version: 2\nprofile: marks\n",
        "packages.yml": "packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.1.1\n",
        "macros/echo.sql": "{% macro echo(a) %}{{ a }}{% endmacro %}\n",
        "models/m.sql": ("select {{ echo() }} 1 as a, {{ dbt_utils.star('t') }} as b,\n"
                         "  '{{ dbt_utils.pretty() | upper }}' as c\nfrom t\n"),
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    project = load_project(WorkTree(tmp_path), "", {}, None)
    node = next(n for n in project.nodes.values() if n.name == "m")
    marked = marked_render(project, node)
    assert marked is not None
    # a missing macro argument renders as nothing (as in dbt); the package's calls stand in
    assert marked.sql.startswith(f"select  1 as a, {STANDIN} as b,")
    assert f"'{STANDIN.upper()}' as c" in marked.sql
    assert len(marked.marks) == 2
    assert marked.fill([1, 1])[0].startswith("select  1 as a,  as b,")


def test_compile_mode_model_carries_the_node_config(tmp_path: Path) -> None:
    """A macro that checks `model.config.materialized` (and raises otherwise) renders as in
    dbt, so the model's SQL is checked instead of "cannot render" (BLK105)."""
    from dbt_bulwark.project.fs import WorkTree
    from dbt_bulwark.project.loader import load_project
    from dbt_bulwark.sql.compiler import compile_node

    files = {
        "dbt_project.yml": "name: guard\nversion: '1.0'\nconfig-version: 2\nprofile: guard\n",
        "macros/must_be_table.sql": (
            "{% macro must_be_table(m) %}{% if m.config.materialized != 'table' %}"
            "{% do exceptions.raise_compiler_error('tables only') %}{% endif %}{% endmacro %}\n"),
        "models/t.sql": ("{{ config(materialized='table') }}\n{{ must_be_table(model) }}\n"
                         "select '{{ model.name }}' as who\n"),
        "models/v.sql": "{{ must_be_table(model) }}\nselect 1 as x\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    project = load_project(WorkTree(tmp_path), "", {}, None)
    nodes = {n.name: n for n in project.nodes.values()}
    table = compile_node(project, nodes["t"])
    assert table.error is None and table.sql is not None and "'t' as who" in table.sql
    view = compile_node(project, nodes["v"])
    assert view.error is not None and "tables only" in view.error[1]


class _Store:
    """A content-hash cache's get/put, counting what is stored."""

    def __init__(self) -> None:
        self.data: dict[object, object] = {}
        self.puts = 0

    def get(self, key: object) -> object:
        return self.data.get(key)

    def put(self, key: object, value: object) -> None:
        self.puts += 1
        self.data[key] = value


@pytest.mark.parametrize("dialect,how", [("duckdb", "profile"), ("postgres", "profile"),
                                         ("duckdb", "guess")])
def test_cached_parse_verdicts_are_the_parser_s_own(dialect: str, how: str) -> None:
    """The base's stand-in render is judged again on every commit until the base moves: the
    verdicts come from the cache then, and they are the ones the parser gives."""
    sqls = ["select a from t", "selct a from t", "select (a from t", "select 'a from t",
            f"with x as ({STANDIN}) select * from x", f"select {STANDIN} from t"]
    plain, store = Parser(dialect, how), _Store()
    cached = Parser(dialect, how, store)
    first = [cached.error(s) for s in sqls]
    assert first == [plain.error(s) for s in sqls]
    assert store.puts == len(sqls)
    assert [cached.error(s) for s in sqls] == first      # now from the cache
    assert store.puts == len(sqls) and cached.trials == 2 * len(sqls)
    marked = _marked(f"with x as ({STANDIN}) select * from x")
    assert choose(marked, Parser(dialect, how, store)) == choose(marked, Parser(dialect, how))


def test_a_warm_commit_judges_against_the_base_without_jinja_or_sqlglot(tmp_path: Path) -> None:
    """The stand-in renders are cached with the compiles: a commit of a model bulwark
    cannot render (its package is not installed) is judged against the base again on the
    next run from the cache alone, importing neither Jinja nor sqlglot (~0.2 s a commit)."""
    from conftest import imported_by

    repo = committed_repo(tmp_path / "repo", PROJECT)
    rel = "models/items_keyed.sql"
    (repo / rel).write_text(PROJECT[rel].replace(
        "        item_id,\n", "        item_id,\n        1 as in_stock,\n"), encoding="utf-8")
    _git(repo, "add", "-A")
    code = f"from dbt_bulwark.cli import main; main(['fast-compile', {rel!r}])"
    assert imported_by(code, ["jinja2", "sqlglot"], cwd=repo) == ["jinja2", "sqlglot"]
    assert imported_by(code, ["jinja2", "sqlglot"], cwd=repo) == []
    # and the verdict from the cache is the cold one: the benign edit passes, the broken one
    # (a stand-in render compared with the base) is still an error
    proc = subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "fast-compile", rel],
                          cwd=repo, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (repo / rel).write_text(PROJECT[rel].replace("select * from keyed", "selct * from keyed"),
                            encoding="utf-8")
    _git(repo, "add", "-A")
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "fast-compile", rel],
                              cwd=repo, env=_env(), capture_output=True, text=True, timeout=600)
        errors = _errors(proc.stdout)
        assert proc.returncode == 1 and len(errors) == 1 and "BLK130" in errors[0], proc.stdout
