"""Foundation: loading without dbt, bad input, config merging, selectors, policy, output.

Everything here is pure Python on small projects written into tmp dirs; the
comparison with real dbt lives in test_oracle_*.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dbt_bulwark.cache import ParseCache
from dbt_bulwark.cli import main
from dbt_bulwark.findings import Finding, UsageError, exit_code, report
from dbt_bulwark.policy import load_policy
from dbt_bulwark.project import config as cfg
from dbt_bulwark.project.fs import WorkTree
from dbt_bulwark.project.loader import discover_projects, load_project, project_for_path
from dbt_bulwark.project.selector import select
from dbt_bulwark.project.workspace import open_workspace


def write(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
    return root


PROJECT = {
    "dbt_project.yml": """
        name: shop
        profile: shop
        vars:
          enforce: true
        models:
          shop:
            +tags: [base]
            staging:
              +materialized: view
              +tags: staging
            marts:
              materialized: table
              +meta: {owner: team-a}
              core:
                +contract: {enforced: true}
    """,
    "models/staging/stg_orders.sql": "select 1 as order_id, 2 as customer_id\n",
    "models/staging/stg_customers.sql": "select 2 as customer_id\n",
    "models/marts/core/fct_orders.sql": """
        {{ config(tags=['sql_tag'], contract={'enforced': var('enforce')}) }}
        select o.order_id, c.customer_id
        from {{ ref('stg_orders') }} o join {{ ref('stg_customers') }} c using (customer_id)
    """,
    "models/marts/core/_core.yml": """
        version: 2
        models:
          - name: fct_orders
            config:
              tags: [yaml_tag]
              meta: {tier: 1}
            columns:
              - name: order_id
                data_type: integer
                data_tests: [unique, not_null]
              - name: customer_id
                data_type: integer
    """,
    "models/marts/report.sql": "select * from {{ ref('fct_orders') }}\n",
}


@pytest.fixture()
def shop(tmp_path: Path) -> Path:
    return write(tmp_path / "repo", PROJECT)


def test_config_resolution_layers(shop: Path) -> None:
    project = load_project(WorkTree(shop), "")
    fct = project.nodes["model.shop.fct_orders"]
    # tags are additive across project, YAML and SQL
    assert fct.tags == ["base", "yaml_tag", "sql_tag"]
    assert fct.materialized == "table"           # legacy un-prefixed key in the hierarchy
    assert fct.meta == {"owner": "team-a", "tier": 1}  # meta merged key by key
    assert fct.contract_enforced is True         # Jinja value in config() with project vars
    assert fct.depends_on == ["model.shop.stg_orders", "model.shop.stg_customers"]
    assert [c.name for c in fct.columns] == ["order_id", "customer_id"]
    assert {t.short_name for t in fct.columns[0].tests} == {"unique", "not_null"}
    # where each key was last set: the SQL config() call for tags, the YAML for meta
    assert fct.where("tags") == ("models/marts/core/fct_orders.sql", 1)
    assert fct.where("meta")[0] == "models/marts/core/_core.yml"
    stg = project.nodes["model.shop.stg_orders"]
    assert stg.tags == ["base", "staging"] and stg.materialized == "view"


def test_merge_behaviour_matches_dbt() -> None:
    result = {"tags": ["a"], "meta": {"x": 1}, "materialized": "view",
              "contract": {"enforced": False, "alias_types": True}, "grants": {"select": ["r"]}}
    cfg.merge_into(result, {"tags": "b", "meta": {"y": 2}, "materialized": "table",
                            "contract": {"enforced": True}, "grants": {"+select": ["s"]}})
    assert result["tags"] == ["a", "b"]
    assert result["meta"] == {"x": 1, "y": 2}
    assert result["materialized"] == "table"
    assert result["contract"] == {"enforced": True, "alias_types": True}
    assert result["grants"] == {"select": ["r", "s"]}
    assert cfg.level_configs({"+tags": "t", "materialized": "x", "sub": {"a": 1}}) == \
        {"tags": "t", "materialized": "x"}
    # version configs: dbt's deep_merge concatenates lists, later first
    assert cfg.deep_merge({"tags": ["m"]}, {"tags": ["v"]})["tags"] == ["v", "m"]


@pytest.mark.parametrize("selector,expected", [
    ("tag:staging", {"stg_orders", "stg_customers"}),
    ("+fct_orders", {"fct_orders", "stg_orders", "stg_customers"}),
    ("stg_orders+", {"stg_orders", "fct_orders", "report"}),
    ("stg_orders+1", {"stg_orders", "fct_orders"}),
    ("1+report", {"report", "fct_orders"}),
    ("path:models/marts", {"fct_orders", "report"}),
    ("config.materialized:table", {"fct_orders", "report"}),
    ("config.contract.enforced:true", {"fct_orders"}),
    ("tag:base,tag:staging", {"stg_orders", "stg_customers"}),
    ("tag:sql_tag tag:staging", {"fct_orders", "stg_orders", "stg_customers"}),
    ("marts.core.*", {"fct_orders"}),
    ("stg_*", {"stg_orders", "stg_customers"}),
])
def test_selectors(shop: Path, selector: str, expected: set[str]) -> None:
    project = load_project(WorkTree(shop), "")
    assert {r.name for r in select(project, selector)} == expected


def test_unknown_selector_method_is_usage_error(shop: Path) -> None:
    project = load_project(WorkTree(shop), "")
    with pytest.raises(UsageError, match="unknown selector method"):
        select(project, "colour:red")


@pytest.mark.parametrize("files,code,line", [
    ({"models/bad.yml": "models:\n  - name: x\n    columns: [\n"}, "BLK001", 4),
    ({"models/latin1.sql": b"select '\xe9' as x\n"}, "BLK003", 1),
    ({"models/broken.sql": "{{ config(materialized='table' }}\nselect 1\n"}, "BLK020", 1),
    ({"models/list.yml": "models:\n  name: x\n"}, "BLK030", 1),
    ({"models/dup.yml": "models:\n  - name: stg_orders\n",
      "models/dup2.yml": "models:\n  - name: stg_orders\n"}, "BLK034", 2),
    ({"models/orphan.yml": "models:\n  - name: ghost\n"}, "BLK037", 2),
    ({"models/noname.yml": "models:\n  - description: x\n"}, "BLK033", 2),
])
def test_bad_input_becomes_findings(shop: Path, files: dict, code: str, line: int) -> None:
    write(shop, files)
    project = load_project(WorkTree(shop), "")
    hits = [f for f in project.findings if f.code == code]
    assert hits, [f.text() for f in project.findings]
    assert hits[0].line == line
    assert hits[0].path.startswith("models/")


def test_bad_input_through_cli_never_tracebacks(shop: Path) -> None:
    write(shop, {"models/bad.yml": "models: [\n", "models/x.sql": b"\xff\xfe\x00",
                 "models/big.sql": "select 1 -- " + "x" * (6 * 1024 * 1024) + "\n",
                 "models/jinja.sql": "{% if %}\n"})
    proc = subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", "ls", "--project-dir",
                           str(shop), "--no-cache"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert "Traceback" not in proc.stderr
    assert "models/bad.yml:2:1: BLK001" in proc.stderr or "models/bad.yml:1" in proc.stderr
    assert "BLK003" in proc.stderr and "BLK004" in proc.stderr and "BLK020" in proc.stderr


def test_packages_local_and_installed_and_missing(tmp_path: Path) -> None:
    repo = write(tmp_path, {
        "proj/dbt_project.yml": "name: proj\nmodels:\n  lib:\n    +tags: [from_root]\n",
        "proj/packages.yml": "packages:\n  - local: ../lib\n  - package: hub/absent\n    version: 1.0.0\n",
        "proj/models/a.sql": "{{ config(tags=lib_tags()) }}\nselect * from {{ ref('lib', 'lib_model') }}\n",
        "lib/dbt_project.yml": "name: lib\nmodels:\n  lib:\n    +tags: [own]\n",
        "lib/models/lib_model.sql": "select 1 as id\n",
        "lib/macros/m.sql": "{% macro lib_tags() %}{{ return(['from_macro']) }}{% endmacro %}\n",
    })
    project = load_project(WorkTree(repo), "proj")
    assert "lib" in project.packages and project.packages["lib"].local
    lib_model = project.nodes["model.lib.lib_model"]
    assert lib_model.tags == ["own", "from_root"]   # root project config applies last
    a = project.nodes["model.proj.a"]
    assert a.tags == ["from_macro"] and a.depends_on == ["model.lib.lib_model"]
    assert not [f for f in project.findings if f.severity == "error"]


def test_monorepo_discovery_and_affected(tmp_path: Path) -> None:
    repo = write(tmp_path, {
        "a/dbt_project.yml": "name: a\n", "a/models/m.sql": "select 1\n",
        "a/models/n.sql": "select * from {{ ref('m') }}\n",
        "a/models/s.yml": "models:\n  - name: n\n",
        "b/dbt_project.yml": "name: b\n", "b/models/m.sql": "select 2\n",
        "b/dbt_packages/x/dbt_project.yml": "name: x\n",
        ".hidden/dbt_project.yml": "name: h\n",
    })
    fs = WorkTree(repo)
    assert discover_projects(fs) == ["a", "b"]
    assert project_for_path(["a", "b"], "b/models/m.sql") == "b"
    ws = open_workspace(repo_root=str(repo), use_cache=False)
    affected = ws.affected([str(repo / "a/models/s.yml"), str(repo / "b/models/m.sql"),
                            str(repo / "a/dbt_project.yml"), str(repo / "README.md")])
    assert affected["a"] == {"model.a.n", "*"}
    assert affected["b"] == {"model.b.m"}


def test_policy_unknown_key_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, {"bulwark.yml": "critical:\n  tags: [critical]\n  colour: red\n"})
    with pytest.raises(UsageError) as exc:
        load_policy(WorkTree(tmp_path), "")
    assert "bulwark.yml:3" in str(exc.value) and "critical.colour" in str(exc.value)


def test_policy_project_overrides_repo_and_pyproject(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "[tool.bulwark]\ndialect = 'snowflake'\n"
                                       "[tool.bulwark.locked]\ntag = 'frozen'\n",
                     "p/bulwark.yml": "locked:\n  tag: ice\n"})
    policy = load_policy(WorkTree(tmp_path), "p")
    assert policy.dialect == "snowflake"
    assert policy.locked.tag == "ice"
    assert policy.critical.tags == ["critical"]        # default
    write(tmp_path, {"bulwark.yml": "fail_on: 3\n"})
    with pytest.raises(UsageError, match="must be a string"):
        load_policy(WorkTree(tmp_path), "")


def test_finding_formats_and_exit_codes() -> None:
    f = Finding("models/a.sql", 3, 7, "BLK101", "ref to missing model 'x'", hint="did you mean 'y'?")
    out = io.StringIO()
    report([f], "text", out)
    assert out.getvalue().startswith("models/a.sql:3:7: BLK101 ref to missing model 'x'")
    out = io.StringIO()
    report([f], "json", out)
    assert json.loads(out.getvalue())["findings"][0]["code"] == "BLK101"
    out = io.StringIO()
    report([f], "github", out)
    assert out.getvalue().startswith("::error file=models/a.sql,line=3,col=7,title=BLK101::")
    assert exit_code([f]) == 1
    assert exit_code([Finding("a", 1, 1, "X", "m", "info")]) == 0
    assert exit_code([Finding("a", 1, 1, "X", "m", "warning")], fail_on="warning") == 1


def test_cli_usage_errors_exit_2(shop: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["ls", "--output", "yaml"])
    assert exc.value.code == 2
    assert main(["ls", "--project-dir", str(shop / "models")]) == 2
    assert main(["ls", "--project-dir", str(shop), "--select", "colour:red"]) == 2
    assert main(["ls", "--project-dir", str(shop), "--vars", "[1, 2]"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_cache_second_run_does_not_reparse(shop: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ParseCache(shop / ".bulwark-cache")
    load_project(WorkTree(shop), "", cache=cache)
    cache.save()
    assert (shop / ".bulwark-cache" / ".gitignore").read_text().strip().endswith("*")
    import dbt_bulwark.project.loader as loader_mod
    from dbt_bulwark.project import yamlio

    calls = {"yaml": 0, "extract": 0}
    real_load = yamlio.load

    def counting_load(text: str) -> Any:
        calls["yaml"] += 1
        return real_load(text)

    monkeypatch.setattr(loader_mod.yamlio, "load", counting_load)
    import dbt_extractor

    real_extract = dbt_extractor.py_extract_from_source

    def counting_extract(text: str) -> Any:
        calls["extract"] += 1
        return real_extract(text)

    monkeypatch.setattr(dbt_extractor, "py_extract_from_source", counting_extract)
    warm = ParseCache(shop / ".bulwark-cache")
    project = load_project(WorkTree(shop), "", cache=warm)
    assert calls == {"yaml": 0, "extract": 0}
    assert project.nodes["model.shop.fct_orders"].tags == ["base", "yaml_tag", "sql_tag"]
    # a changed file is parsed again, the others still come from the cache
    (shop / "models/staging/stg_orders.sql").write_text("select 3 as order_id\n")
    load_project(WorkTree(shop), "", cache=warm)
    assert calls == {"yaml": 0, "extract": 1}


def test_cli_does_not_import_dbt_or_sqlglot(shop: Path) -> None:
    from conftest import imported_by

    code = f"from dbt_bulwark.cli import main; main(['ls', '--project-dir', {str(shop)!r}, '--no-cache'])"
    assert imported_by(code, ["dbt", "sqlglot", "duckdb", "dbt_bulwark.yaml_edit"]) == []


def test_versions_and_disabled(tmp_path: Path) -> None:
    repo = write(tmp_path, {
        "dbt_project.yml": "name: v\nmodels:\n  v:\n    old:\n      +enabled: false\n",
        "models/dim.sql": "select 1 as id, 'x' as name\n",
        "models/dim_v1.sql": "select 1 as id\n",
        "models/old.sql": "select 1\n",
        "models/use.sql": "select * from {{ ref('dim') }} join {{ ref('dim', v=1) }} using (id)"
                          " join {{ ref('old') }} using (id)\n",
        "models/s.yml": """
            models:
              - name: dim
                latest_version: 2
                columns:
                  - name: id
                  - name: name
                versions:
                  - v: 1
                    columns:
                      - include: all
                        exclude: [name]
                  - v: 2
                    defined_in: dim
        """,
    })
    project = load_project(WorkTree(repo), "")
    assert {"model.v.dim.v1", "model.v.dim.v2"} <= set(project.nodes)
    assert [c.name for c in project.nodes["model.v.dim.v1"].columns] == ["id"]
    assert [c.name for c in project.nodes["model.v.dim.v2"].columns] == ["id", "name"]
    use = project.nodes["model.v.use"]
    assert use.depends_on == ["model.v.dim.v2", "model.v.dim.v1"]
    assert ("model.v.use", use.refs[2], "disabled") in project.unresolved
    assert "model.v.old" in project.disabled


def test_dbt_project_values_render_once_while_their_env_and_vars_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Jinja value of dbt_project.yml is rendered on a cold load and read from the parse
    cache after, until an env_var() it read or a --vars value changes."""
    from dbt_bulwark.sql import jinja_env

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.sql").write_text("select 1 as a\n")
    (tmp_path / "dbt_project.yml").write_text(
        "name: p\nversion: '1.0'\nprofile: p\nmodels:\n  p:\n"
        "    +enabled: \"{{ env_var('BULWARK_TEST_ON', 'true') }}\"\n"
        "    +tags: \"{{ var('tag', 'plain') }}\"\n")
    cache = ParseCache(tmp_path / ".bulwark-cache")
    monkeypatch.delenv("BULWARK_TEST_ON", raising=False)

    def load(cli_vars: dict[str, Any]) -> tuple[list[str], list[str]]:
        project = load_project(WorkTree(tmp_path), "", cli_vars, cache)
        return (sorted(project.nodes["model.p.a"].tags) if "model.p.a" in project.nodes
                else ["disabled"], [f.code for f in project.findings])

    assert load({}) == (["plain"], [])
    real = jinja_env.render

    def no_render(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("rendered again")

    monkeypatch.setattr(jinja_env, "render", no_render)
    assert load({}) == (["plain"], [])                  # from the cache
    monkeypatch.setattr(jinja_env, "render", real)
    monkeypatch.setenv("BULWARK_TEST_ON", "false")
    assert load({}) == (["disabled"], [])               # the env_var() it read changed
    monkeypatch.setenv("BULWARK_TEST_ON", "true")
    assert load({"tag": "gold"}) == (["gold"], [])      # --vars changed


def test_a_cache_save_pickles_only_what_the_run_put(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm commit puts a few entries in a cache of thousands: the file keeps each entry's
    own pickle, so a save pickles only the new ones (and every entry reads back the same)."""
    import pickle

    first = ParseCache(tmp_path)
    values = {("yaml", str(i)): ("ok", {"models": [{"name": f"m{i}", "n": i}]}) for i in range(50)}
    for key, value in values.items():
        first.put(key, value)
    first.save()
    pickled: list[Any] = []
    real = pickle.dumps

    def counting(obj: Any, *args: Any, **kwargs: Any) -> bytes:
        pickled.append(obj)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(pickle, "dumps", counting)
    second = ParseCache(tmp_path)
    assert all(second.get(k) == v for k, v in values.items())
    second.put(("yaml", "new"), ("ok", {"version": 2}))
    second.save()
    entries = [o for o in pickled if not (isinstance(o, dict) and "format" in o)]
    assert entries == [("ok", {"version": 2})]
    third = ParseCache(tmp_path)
    assert third.get(("yaml", "new")) == ("ok", {"version": 2})
    assert all(third.get(k) == v for k, v in values.items())


def test_a_cache_unpickles_only_the_entries_a_run_asks_for(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A warm commit asks for a small part of the analysis and template caches: an entry is
    unpickled when first asked for, and one never asked for is written back as it was read."""
    import pickle

    from dbt_bulwark import cache as cache_mod

    first = ParseCache(tmp_path)
    values = {("yaml", str(i)): ("ok", {"n": i}) for i in range(40)}
    for key, value in values.items():
        first.put(key, value)
    first.save()
    blobs = pickle.loads(first.path.read_bytes())["entries"]
    loads: list[bytes] = []
    real = cache_mod._SafeUnpickler

    class Counting(real):  # type: ignore[misc,valid-type]
        def __init__(self, fh: Any) -> None:
            if hasattr(fh, "getvalue"):
                loads.append(fh.getvalue())
            super().__init__(fh)

    monkeypatch.setattr(cache_mod, "_SafeUnpickler", Counting)
    second = ParseCache(tmp_path)
    assert second.get(("yaml", "3")) == ("ok", {"n": 3})
    assert second.get(("yaml", "3")) == ("ok", {"n": 3})
    assert loads == [blobs[("yaml", "3")]]          # one entry, once
    second.put(("yaml", "new"), ("ok", {"n": -1}))
    second.save()
    after = pickle.loads(second.path.read_bytes())["entries"]
    assert {k: after[k] for k in blobs} == blobs    # untouched entries: the same bytes
    assert pickle.loads(after[("yaml", "new")]) == ("ok", {"n": -1})


def test_source_columns_are_read_on_first_use_and_a_bad_shape_is_still_reported(
        tmp_path: Path) -> None:
    """A source's YAML columns are parsed when first read (a commit reads few of them); a
    `columns:` that is not a list is reported while loading, for a source as for a model."""
    root = write(tmp_path, {
        "dbt_project.yml": "name: p\nversion: '1'\nprofile: p\n",
        "models/m.sql": "select id from {{ source('raw', 'orders') }}\n",
        "models/props.yml": (
            "version: 2\nsources:\n  - name: raw\n    tables:\n"
            "      - name: orders\n        columns:\n          - name: id\n"
            "            data_type: int\n            data_tests: [unique]\n"
            "          - name: total\n      - name: bad\n        columns: {id: int}\n"
            "models:\n  - name: m\n    columns: {id: int}\n"),
    })
    project = load_project(WorkTree(root), "")
    orders = project.sources["source.p.raw.orders"]
    assert orders._columns is None and orders._columns_thunk is not None
    assert [(c.name, c.data_type, c.line) for c in orders.columns] == \
        [("id", "int", 7), ("total", None, 10)]
    assert [t.test_name for t in orders.columns[0].tests] == ["unique"]
    assert project.sources["source.p.raw.bad"].columns == []
    assert sorted((f.path, f.line) for f in project.findings if f.code == "BLK032") == \
        [("models/props.yml", 12), ("models/props.yml", 15)]


class _DictCache(dict):   # the ParseCache interface: get / put
    def put(self, key: object, value: object) -> None:
        self[key] = value


def test_did_you_mean_is_remembered_across_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """A project's existing findings ask for the same suggestions on every commit: with a
    cache, the next run answers from it (difflib over a few thousand names is not free)."""
    import difflib

    from dbt_bulwark import spelling

    cache = _DictCache()
    names = [f"stg_orders_{i}" for i in range(500)] + ["fct_orders", "dim_customers"]
    assert spelling.did_you_mean("fct_order", names, cache) == "did you mean 'fct_orders'?"
    assert spelling.did_you_mean("zzz", names, cache) == ""
    assert len(cache) == 2
    spelling._CLOSEST.clear()
    spelling._POOLS.clear()

    def refuse(*_a: object, **_k: object) -> list[str]:
        raise AssertionError("asked difflib again")

    monkeypatch.setattr(difflib, "get_close_matches", refuse)
    assert spelling.did_you_mean("fct_order", list(reversed(names)), cache) == \
        "did you mean 'fct_orders'?"
    assert spelling.did_you_mean("zzz", names, cache) == ""
    # another set of candidates is another question
    with pytest.raises(AssertionError, match="asked difflib again"):
        spelling.did_you_mean("fct_order", [*names, "fct_orderz"], cache)


def test_a_typo_match_is_remembered_across_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ref('fct_ordrs')``: the one name within a typo's distance, kept in the cache like
    the suggestions (a project's existing unresolved refs ask on every commit)."""
    from dbt_bulwark import spelling

    cache = _DictCache()
    names = [f"stg_orders_{i}" for i in range(300)] + ["fct_orders", "fct_order_items"]
    assert spelling.close_match("fct_ordrs", names, cache) == "fct_orders"
    assert spelling.close_match("fct_orders_", names, cache) == "fct_orders"
    assert spelling.close_match("stg_orders_1x", names, cache) is None   # several as close
    assert spelling.close_match("fct_orders", names, cache) is None      # the name itself
    assert len(cache) == 4
    monkeypatch.setattr(spelling, "_CLOSEST", {})
    monkeypatch.setattr(spelling, "_POOLS", {})

    def refuse(*_a: object) -> int:
        raise AssertionError("measured again")

    monkeypatch.setattr(spelling, "edit_distance", refuse)
    assert spelling.close_match("fct_ordrs", list(reversed(names)), cache) == "fct_orders"
    assert spelling.close_match("stg_orders_1x", names, cache) is None
    assert spelling.closest("fct_ordrs", names, cache) != "fct_ordrs"   # another question
    with pytest.raises(AssertionError, match="measured again"):
        spelling.close_match("fct_ordrs", [*names, "fct_ordrz"], cache)
