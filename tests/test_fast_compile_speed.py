"""Speed work of issue 12 that must not change a verdict.

The faster versions of hot helpers are compared with the straightforward versions they
replaced (kept here as references) on random inputs; the base revision is read once per
run and with the packages installed on disk; nodes are checked parents first.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dbt_bulwark.checks.fast_compile import _parents_first
from dbt_bulwark.checks.regression import _similar
from dbt_bulwark.project.config import _copy
from dbt_bulwark.project.loader import _CONFIG_CALL_RE, config_call_lines
from dbt_bulwark.project.model import Node
from dbt_bulwark.project.yamlio import LineDict, load
from dbt_bulwark.sql import columns
from dbt_bulwark.sql.sql_verdicts import lexical_problem

# ----------------------------------------------------------------------------- references


def _lexical_reference(sql: str, backslash_escapes: bool, backticks: bool,
                       hash_comments: bool) -> tuple[int, str] | None:
    """The character-by-character scan lexical_problem replaced."""
    i, n = 0, len(sql)
    stack: list[int] = []
    while i < n:
        ch = sql[i]
        if ch == "-" and sql.startswith("--", i) or (hash_comments and ch == "#"):
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            if end < 0:
                return i, "unterminated /* comment"
            i = end + 2
            continue
        if ch == "$":
            m = re.match(r"\$([A-Za-z_]\w*)?\$", sql[i:])
            if m:
                end = sql.find(m.group(0), i + len(m.group(0)))
                if end < 0:
                    return i, "unterminated $$ string"
                i = end + len(m.group(0))
                continue
        if ch in "'\"" or (backticks and ch == "`"):
            j = i + 1
            while j < n:
                if backslash_escapes and sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                kind = "string" if ch == "'" else "quoted identifier"
                return i, f"unterminated {kind} (opening {ch} has no closing {ch})"
            i = j + 1
            continue
        if ch == "(":
            stack.append(i)
        elif ch == ")":
            if not stack:
                return i, "unbalanced ')' (no matching '(')"
            stack.pop()
        i += 1
    if stack:
        return stack[-1], "unclosed '(' (no matching ')')"
    return None


def _config_lines_reference(text: str, keys: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in _CONFIG_CALL_RE.finditer(text):
        start = m.end()
        depth, i = 1, start
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        body = text[start:i]
        base_line = text.count("\n", 0, start) + 1
        for key in keys:
            km = re.search(rf"\b{re.escape(str(key))}\s*=", body)
            if km:
                out[str(key)] = base_line + body.count("\n", 0, km.start())
    return out


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


# ----------------------------------------------------------------------------- equivalence


def test_lexical_scan_matches_the_character_scan() -> None:
    pieces = list("ab -#/*$'\"`()\\\n") + ["$$", "$x$", "--", "/*", "*/", "''", "\\'", "é"]
    rnd = random.Random(12)
    for _ in range(20_000):
        sql = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 16)))
        for flags in itertools.product((False, True), repeat=3):
            assert lexical_problem(sql, *flags) == _lexical_reference(sql, *flags), (sql, flags)


def test_lexical_scan_on_real_shapes() -> None:
    sql = ("select 'it''s' as a, \"q\"\"x\" as b, `c` -- a comment (\n"
           "/* block ( */ from t where x = $tag$ ) $tag$ and y in (1, 2)\n")
    for flags in itertools.product((False, True), repeat=3):
        assert lexical_problem(sql, *flags) == _lexical_reference(sql, *flags)
    assert lexical_problem("select (1", False, False, False) == (7, "unclosed '(' (no matching ')')")


def test_config_call_lines_match_the_reference() -> None:
    pieces = ["config(", "(", ")", "\n", "a=", "b =", "x", " ", "config (", "tags=", "_", "é",
              "1", ".", "{{ ", " }}"]
    rnd = random.Random(7)
    for _ in range(20_000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 14)))
        assert config_call_lines(text, ("a", "b", "tags")) == \
            _config_lines_reference(text, ["a", "b", "tags"]), text
    text = "{{\n  config(\n    materialized='table',\n    tags=['x'])\n}}\nselect 1"
    assert config_call_lines(text, ("materialized", "tags")) == {"materialized": 3, "tags": 4}
    assert config_call_lines("{{ myconfig(tags=1) }}", ("tags",)) == {}


def test_similar_is_the_unbounded_distance_rule() -> None:
    rnd = random.Random(3)
    alphabet = "abcdeAB_"
    for _ in range(5_000):
        a = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 14)))
        b = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 14)))
        want = _levenshtein(a.lower(), b.lower()) <= max(2, min(len(a), len(b)) // 4)
        assert _similar(a, b) is want, (a, b)


def test_config_copy_is_a_deep_copy() -> None:
    inner = LineDict({"d": 2.5, "e": [1, {"f": None}]})
    inner.line, inner.key_lines = 7, {"d": 8}
    shared = ["x", "y"]
    value = {"a": shared, "b": shared, "c": inner, "t": (1, 2)}
    got, want = _copy(value), copy.deepcopy(value)
    assert got == want
    assert got["a"] is got["b"] and got["a"] is not shared       # aliases stay shared
    assert type(got["c"]) is LineDict and got["c"].line == 7 and got["c"].key_lines == {"d": 8}
    assert got["c"] is not inner and got["c"]["e"] is not inner["e"]
    got["c"]["e"][1]["f"] = 1
    assert inner["e"][1]["f"] is None
    doc = load("a: &x [1, 2]\nb: *x\nc: {k: v}\n")
    copied = _copy(doc)
    assert copied == doc and copied["a"] is copied["b"] and copied.line == doc.line


def test_parse_is_shared_and_an_owned_parse_gives_the_same_columns() -> None:
    sql = ("with a as (select id, name as n, count(*) from t group by 1, 2)\n"
           "select a.*, upper(n) as big, id + 1 from a")
    upstream = {"t": {"id": "int", "name": "text"}}
    found = [object()]
    columns.remember_parse("select 42 as x", "duckdb", found)
    assert columns.parse_sql("select 42 as x", "duckdb").expression is found[0]
    columns._ANALYSIS_CACHE.clear()
    columns._PARSED.pop((sql, "duckdb"), None)
    owned = columns.infer_output_columns(sql, "duckdb", upstream)   # takes the fresh parse
    columns._ANALYSIS_CACHE.clear()
    parsed = columns.parse_sql(sql, "duckdb")
    columns._PARSED[(sql, "duckdb")] = parsed
    columns._PARSED.pop((sql, "duckdb"))                            # held elsewhere: copied
    copied = columns._do_analyze(sql, "duckdb", parsed.expression,
                                 {"t": upstream["t"]}, True, owned=False)
    assert copied.tree is not parsed.expression
    again = columns.infer_output_columns(sql, "duckdb", upstream)
    assert owned == again and owned.columns
    assert [c.name for c in owned.columns][:2] == ["id", "n"]
    assert [c.name for c in owned.columns][-2:-1] == ["big"]


def test_parents_first_order() -> None:
    def node(name: str, deps: list[str]) -> Node:
        return Node(unique_id=f"model.p.{name}", name=name, resource_type="model",
                    package_name="p", path=f"{name}.sql", original_file_path=f"{name}.sql",
                    repo_path=f"models/{name}.sql", raw_code="", fqn=["p", name],
                    depends_on=[f"model.p.{d}" for d in deps])

    nodes = [node("a_mart", ["m_int", "z_stg"]), node("b_other", []),
             node("m_int", ["z_stg", "y_stg"]), node("y_stg", []), node("z_stg", ["x_out"])]
    order = [n.name for n in _parents_first(nodes)]
    assert sorted(order) == sorted(n.name for n in nodes)
    pos = {name: i for i, name in enumerate(order)}
    for n in nodes:
        for d in n.depends_on:
            name = d.rsplit(".", 1)[-1]
            if name in pos:
                assert pos[name] < pos[n.name]
    assert order == ["y_stg", "z_stg", "m_int", "a_mart", "b_other"]


# ----------------------------------------------------------------------------- base revision

pytestmark_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

PROJECT = {
    "dbt_project.yml": "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n",
    "packages.yml": "packages:\n  - package: acme/helpers\n    version: 1.0.0\n",
    ".gitignore": "dbt_packages/\n",
    "models/stg_items.sql": "select 1 as id, 'a' as name, 2 as price\n",
    "models/items.sql": "select id, {{ helpers.cents('price') }} as amount, name\n"
                        "from {{ ref('stg_items') }}\n",
}
PACKAGE = {
    "dbt_packages/helpers/dbt_project.yml": "name: helpers\nversion: '1.0'\nconfig-version: 2\n",
    "dbt_packages/helpers/macros/cents.sql":
        "{% macro cents(c) %}{{ c }} / 100{% endmacro %}\n",
}


def _git(cwd: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
    proc = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main",
                           *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for rel, text in {**PROJECT, **PACKAGE}.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--no-verify", "-m", "init")
    return repo


@pytestmark_git
def test_base_project_is_read_once_with_the_installed_packages(tmp_path: Path,
                                                              monkeypatch: Any) -> None:
    from dbt_bulwark.project import gitfs
    from dbt_bulwark.project.gitfs import BaseOverlay, InstalledOverlay
    from dbt_bulwark.project.workspace import open_workspace

    repo = _repo(tmp_path)
    assert "dbt_packages/helpers/macros/cents.sql" not in _git(repo, "ls-files")
    monkeypatch.chdir(repo)
    ws = open_workspace(None, str(repo), None, False)
    root = ws.project_roots[0]
    tree = ws.tree_at("HEAD")
    base = ws.base_project(tree, root)
    assert base.macros is not None
    assert "helpers" in base.macros.by_package      # from the work tree: git does not hold it
    assert "cents" in base.macros.by_package["helpers"]
    # the same revision through another tree object (an overlay of unchanged files) is the
    # same project, loaded once
    raw = gitfs.GitTree(repo, "HEAD", "")
    overlay = BaseOverlay(raw, ws.fs, [])
    assert ws.base_project(overlay, root) is base
    assert ws.base_project(ws.tree_at("HEAD"), root) is base
    # a revision's tree is read with the installed packages through one overlay, whose tree
    # id carries their stamp; wrapping it again adds nothing
    wrapped = ws.with_installed(raw, root)
    assert isinstance(wrapped, InstalledOverlay)
    assert ws.with_installed(wrapped, root) is wrapped
    assert ws.with_installed(overlay, root).tree_id == wrapped.tree_id != raw.tree_id
    assert wrapped.tree_id.startswith(raw.tree_id + "+pkgs:")
    assert not raw.is_dir("dbt_packages")         # the git tree itself stays as git has it
    assert "dbt_packages" in wrapped.listdir("")
    assert wrapped.is_dir("dbt_packages/helpers")
    assert wrapped.is_file("dbt_packages/helpers/macros/cents.sql")
    assert not wrapped.is_file("dbt_packages/helpers/macros/nope.sql")
    assert "dbt_packages/helpers/macros/cents.sql" in wrapped.walk("", True, frozenset())
    assert not any(p.startswith("dbt_packages/") for p in wrapped.walk(""))   # skipped dir
    raw.close()
    ws.close()


@pytestmark_git
def test_base_cache_follows_dbt_deps(tmp_path: Path, monkeypatch: Any) -> None:
    """What is cached of the base revision (on disk, across runs) is keyed by a tree id that
    carries a stamp of the installed packages: after `dbt deps` installs a package, or changes
    one of its macros, the base is read again with it, never served from before (a stale
    base would disagree with the head on the macros: "macros changed" with no change)."""
    from dbt_bulwark.checks import regression
    from dbt_bulwark.project.workspace import open_workspace

    repo = _repo(tmp_path)
    shutil.rmtree(repo / "dbt_packages")          # committed, `dbt deps` not run yet
    # a change in the work tree: the base is read from git, not taken for the work tree's
    (repo / "models/stg_items.sql").write_text("select 1 as id, 'a' as name, 3 as price\n")
    monkeypatch.chdir(repo)

    def run() -> tuple[str, Any, Any, str]:
        ws = open_workspace(None, str(repo), None, True)       # the cache on disk
        root = ws.project_roots[0]
        base = regression.Base(repo, "HEAD", "", "HEAD", "manual")
        try:
            tree = regression.base_tree(ws, base, root)
            base_run = regression.BaseRun(base, root, tree, ws)
            facts = base_run.facts()
            assert not ws.shows_work_tree(tree)
            macros = ws.base_project(ws.tree_at("HEAD"), root).macros
            assert facts.macros_hash == ws.project(root).macros_hash   # nothing changed
            return base_run.tree_id, facts, macros, ws.project(root).macros_hash
        finally:
            ws.save()
            base.close()
            ws.close()

    id_before, facts_before, macros_before, _ = run()
    assert "+pkgs:" not in id_before
    assert macros_before is not None and "helpers" not in macros_before.by_package
    assert run()[0] == id_before                  # nothing installed: the same key

    for rel, text in PACKAGE.items():             # `dbt deps`
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text, encoding="utf-8")
    id_installed, facts_installed, macros_installed, _ = run()
    assert id_installed.startswith(id_before + "+pkgs:")
    assert facts_installed.macros_hash != facts_before.macros_hash
    assert macros_installed is not None
    assert "cents" in macros_installed.by_package["helpers"]   # resolves at the base

    cents = repo / "dbt_packages/helpers/macros/cents.sql"    # the package upgraded
    cents.write_text("{% macro cents(c) %}({{ c }}) / 100.0{% endmacro %}\n", encoding="utf-8")
    id_upgraded, facts_upgraded, _, _ = run()
    assert id_upgraded not in (id_before, id_installed)
    assert facts_upgraded.macros_hash != facts_installed.macros_hash


@pytestmark_git
def test_schema_diff_compares_models_that_use_package_macros(tmp_path: Path) -> None:
    """The base is read with the installed packages: a column removed from a model that
    calls a package macro is reported as removed, not as "unknown at the base"."""
    repo = _repo(tmp_path)
    (repo / "models/items.sql").write_text(
        "select id, {{ helpers.cents('price') }} as amount\nfrom {{ ref('stg_items') }}\n")
    proc = subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "check", "--format", "json",
                           "--checks", "check-schema-diff", "models/items.sql"],
                          cwd=repo, capture_output=True, text=True, timeout=600,
                          env={**{k: v for k, v in os.environ.items()
                                  if not k.startswith(("GIT_", "PRE_COMMIT"))},
                               "PRE_COMMIT": "1"})
    assert proc.returncode in (0, 1), proc.stderr
    found = [f for layer in json.loads(proc.stdout)["layers"] for f in layer["findings"]]
    codes = {f["code"] for f in found}
    assert "BLK401" in codes, found
    assert "BLK431" not in codes, found


@pytestmark_git
def test_two_revisions_are_both_read_with_the_installed_packages(tmp_path: Path) -> None:
    """`check-schema-diff --base A --head B`: both revisions see the installed packages."""
    repo = _repo(tmp_path)
    (repo / "models/items.sql").write_text(
        "select id, {{ helpers.cents('price') }} as amount\nfrom {{ ref('stg_items') }}\n")
    _git(repo, "commit", "-q", "--no-verify", "-am", "drop name")
    proc = subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "check-schema-diff",
                           "--format", "json", "--base", "HEAD~1", "--head", "HEAD",
                           "--all-files"],
                          cwd=repo, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items()
                               if not k.startswith(("GIT_", "PRE_COMMIT"))})
    assert proc.returncode in (0, 1), proc.stderr
    codes = {f["code"] for f in json.loads(proc.stdout)["findings"]}
    assert "BLK401" in codes and "BLK431" not in codes, proc.stdout


def test_a_disabled_singular_test_does_not_build_every_data_test(tmp_path: Path) -> None:
    """A one-model check looks up the nodes whose ref() does not resolve: a disabled
    singular test is known disabled without building the project's generic data tests
    (a tenth of a warm commit on a large project)."""
    from dbt_bulwark.checks import fast_compile
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.project.fs import WorkTree
    from dbt_bulwark.project.loader import load_project

    for rel, text in {
        "dbt_project.yml": "name: p\nversion: '1.0'\nprofile: p\n",
        "models/a.sql": "select 1 as id\n",
        "models/a.yml": "version: 2\nmodels:\n  - name: a\n    columns:\n      - name: id\n"
                        "        data_tests: [not_null]\n",
        "tests/off.sql": "{{ config(enabled=false) }}\nselect * from {{ ref('nope') }}\n",
        "tests/on.sql": "select * from {{ ref('gone') }}\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    fs = WorkTree(tmp_path)
    project = load_project(fs, "", {}, None)
    assert {uid for uid, _what, _why in project.unresolved} == {"test.p.off", "test.p.on"}
    findings = fast_compile.check(None, project, load_policy(fs, ""), {"model.p.a"})
    assert project._tests_loader is not None, "the generic data tests were built"
    assert [(f.path, f.code) for f in findings if f.code == "BLK110"] == \
        [("tests/on.sql", "BLK110")]
