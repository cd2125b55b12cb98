"""False positives met on real projects (issue 10, "It blocks valid code"): each one is
reproduced on the fast-compile shop fixture (or a small project of its own) and must give
nothing above info. Every construct here is accepted by real `dbt parse`/`dbt compile`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from fast_compile_cases import Case, apply

from dbt_bulwark.cli import main

M = "models/marts/"
S = "models/staging/"


def run_hook(capsys: pytest.CaptureFixture[str], hook: str, root: Path,
             extra: list[str] | None = None) -> tuple[int, list[dict]]:
    capsys.readouterr()
    args = [hook, "--project-dir", str(root), "--repo-root", str(root),
            "--format", "json", "--no-cache", *(extra or []), "--all-files"]
    rc = main(args)
    out = capsys.readouterr().out
    return rc, json.loads(out)["findings"]


def serious(findings: list[dict]) -> list[tuple[str, str, int, str]]:
    return [(f["code"], f["path"], f["line"], f["message"]) for f in findings
            if f["severity"] != "info"]


def shop(tmp_path: Path, edits: dict[str, tuple[str | None, str | None]]) -> Path:
    return apply(Case("fp", edits), tmp_path / "shop")


def test_comment_block_outside_macro_is_ignored(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    # dbt reads only the top-level blocks of a macro file: {% comment %} (no Jinja tag at
    # all) and stray text or tags outside them are dropped, never rendered
    text = textwrap.dedent("""\
        {% comment %}
        helpers for dates; {{ not rendered }}
        {% endcomment %}
        Stray prose, {% endif %} and a {% bogus tag %}.

        {% macro day_of(col) -%}
            cast({{ col }} as date)
        {%- endmacro %}
        trailing {{ text
        """)
    root = shop(tmp_path, {"macros/dates.sql": (None, text),
                           M + "daily.sql": (None, "select {{ day_of('ordered_at') }} as d\n"
                                                   "from {{ ref('stg_orders') }}\n")})
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0


def test_broken_macro_block_still_caught(capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    text = "{% comment %}x{% endcomment %}\n{% macro bad() %}{% if %}{% endmacro %}\n"
    root = shop(tmp_path, {"macros/bad.sql": (None, text)})
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert [(f["code"], f["line"]) for f in findings if f["path"] == "macros/bad.sql"] == [
        ("BLK101", 2)] and rc == 1


def test_namespace_attribute_set(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sql = ("{% set ns = namespace(n=0) %}\n{% for s in ['a', 'b'] %}{% set ns.n = ns.n + 1 %}"
           "{% endfor %}\nselect {{ ns.n }} as n\n")
    root = shop(tmp_path, {M + "counted.sql": (None, sql)})
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0


def test_jinja_in_project_vars_is_rendered(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    monkeypatch.delenv("SHOP_DATA_PATH", raising=False)
    root = shop(tmp_path, {
        "dbt_project.yml": ("  vip_threshold: 100\n",
                            "  vip_threshold: 100\n"
                            "  data_file: \"{{ env_var('SHOP_DATA_PATH', 'data') }}/x.parquet\"\n"
                            "  on_target: \"{{ target.name }}_x\"\n"),
        M + "from_file.sql": (None, "select '{{ var(\"data_file\") }}' as f, "
                                    "'{{ var(\"on_target\") }}' as t\n"),
    })
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0
    from dbt_bulwark.project.fs import WorkTree
    from dbt_bulwark.project.loader import load_project
    from dbt_bulwark.sql.compiler import compile_node

    project = load_project(WorkTree(root))
    node = next(n for n in project.nodes.values() if n.name == "from_file")
    sql = compile_node(project, node).sql or ""
    assert "'data/x.parquet' as f" in sql and "'dev_x' as t" in sql, sql


def test_var_holding_a_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # corpus FP-7 (every Fivetran package): a var whose value is {{ source(...) }} is
    # rendered in the model's context; the source is a dependency of the model
    root = shop(tmp_path, {
        "dbt_project.yml": ("  vip_threshold: 100\n",
                            "  vip_threshold: 100\n"
                            "  events_table: \"{{ source('app', 'raw_events') }}\"\n"),
        S + "events_via_var.sql": (None, "select * from {{ var('events_table') }}\n"),
    })
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0
    from dbt_bulwark.project.fs import WorkTree
    from dbt_bulwark.project.loader import load_project

    project = load_project(WorkTree(root))
    node = next(n for n in project.nodes.values() if n.name == "events_via_var")
    assert any("raw_events" in str(d) for d in node.depends_on), node.depends_on


def test_macro_file_with_stray_hash_tag(capsys: pytest.CaptureFixture[str],
                                        tmp_path: Path) -> None:
    # corpus FP-5 (spellbook): `{% ### %}` between macros; dbt reads the blocks only
    text = ("{% macro a() %}select 1{% endmacro %}\n\n{% ############################## %}\n\n"
            "{% macro b() %}2{% endmacro %}\n")
    root = shop(tmp_path, {"macros/m.sql": (None, text),
                           M + "x.sql": (None, "select {{ b() }} as two\n")})
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0


def test_api_column_translate_type(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # corpus FP-6 (dbt_artifacts): a type from api.Column.translate_type through dispatch
    text = ("{% macro my_type() %}{{ return(adapter.dispatch('my_type')()) }}{% endmacro %}\n"
            "{% macro default__my_type() %}{{ return(api.Column.translate_type('string')) }}"
            "{% endmacro %}\n")
    root = shop(tmp_path, {"macros/t.sql": (None, text),
                           M + "typed.sql": (None, "select cast(null as {{ my_type() }}) as c\n")})
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0


def test_macro_returning_a_var(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = shop(tmp_path, {
        "macros/limits.sql": (None, "{% macro vip() %}{{ return(var('vip_threshold')) }}"
                                    "{% endmacro %}\n"),
        M + "vips.sql": (None, "select customer_id from {{ ref('dim_customers') }}\n"
                               "where lifetime_value > {{ vip() }}\n"),
    })
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0


@pytest.mark.parametrize("name", ["get_catalog_for_single_relation", "get_relation_last_modified",
                                  "get_incremental_microbatch_sql"])
def test_global_dbt_macro_is_known(name: str, capsys: pytest.CaptureFixture[str],
                                   tmp_path: Path) -> None:
    sql = f"{{% if execute %}}{{% do {name}(this) %}}{{% endif %}}\nselect 1 as x\n"
    root = shop(tmp_path, {M + "uses_global.sql": (None, sql)})
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert not [f for f in findings if f["code"] == "BLK102"] and rc == 0


def test_set_sql_header_call_block(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sql = ("{{ config(materialized='table') }}\n"
           "{% call set_sql_header(config) %}\n  set my_var = 1;\n{%- endcall %}\n"
           "select 1 as x\n")
    root = shop(tmp_path, {M + "with_header.sql": (None, sql)})
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0


def test_transitive_package_macro_is_not_installed_info(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    # an integration-test project: its `local: ../` package declares dbt_utils, which a
    # fresh clone has not installed; the integration project calls dbt_utils itself
    root = tmp_path / "pkg"
    (root / "macros").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: my_pkg\nversion: '1.0'\nconfig-version: 2\n")
    (root / "packages.yml").write_text("packages:\n  - package: dbt-labs/dbt_utils\n"
                                       "    version: [\">=1.0.0\", \"<2.0.0\"]\n")
    (root / "macros" / "m.sql").write_text("{% macro plus_one(x) %}{{ x }} + 1{% endmacro %}\n")
    it = root / "integration_tests"
    (it / "models").mkdir(parents=True)
    (it / "dbt_project.yml").write_text("name: my_pkg_it\nversion: '1.0'\nconfig-version: 2\n"
                                        "profile: it\n")
    (it / "bulwark.yml").write_text("dialect: duckdb\n")
    (it / "packages.yml").write_text("packages:\n  - local: ../\n")
    (it / "models" / "m.sql").write_text(
        "select {{ dbt_utils.generate_surrogate_key(['a']) }} as k, "
        "{{ plus_one(1) }} as p\nfrom (select 1 as a) t\n")
    rc, findings = run_hook(capsys, "fast-compile", it, ["--repo-root", str(root)])
    assert serious(findings) == [] and rc == 0
    assert any("dbt_utils" in f["message"] and "not installed" in f["message"]
               for f in findings), findings


def test_bigquery_macro_between(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # corpus FP-2 (a BigQuery project): a var whose value is Jinja, passed to a macro that
    # quotes it inside BETWEEN ... AND ...; dbt renders the var first
    root = tmp_path / "bq"
    (root / "models").mkdir(parents=True)
    (root / "macros").mkdir()
    (root / "dbt_project.yml").write_text(
        "name: bq\nversion: '1.0'\nconfig-version: 2\nprofile: bq\nvars:\n"
        "  START: \"{{ '2022-09-15' if target.name == 'prod' else '2022-01-01' }}\"\n")
    (root / "bulwark.yml").write_text("dialect: bigquery\n")
    (root / "macros" / "d.sql").write_text(
        "{%- macro min_date(data_earliest_start) -%} '{{ data_earliest_start }}' "
        "{%- endmacro %}\n{% macro today() %}CURRENT_DATE(){% endmacro %}\n")
    (root / "models" / "a.sql").write_text("select date '2022-01-02' as service_date\n")
    (root / "models" / "recent.sql").write_text(
        "select * from {{ ref('a') }}\n"
        "where service_date BETWEEN {{ min_date(data_earliest_start=var('START')) }} "
        "AND {{ today() }}\n")
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0


def test_jinja_in_contract_data_type(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "pg"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: pg\nversion: '1.0'\nconfig-version: 2\n"
                                          "profile: pg\n")
    (root / "bulwark.yml").write_text("dialect: postgres\n")
    (root / "models" / "m.sql").write_text("select cast(1 as int) as x\n")
    (root / "models" / "m.yml").write_text(textwrap.dedent("""\
        models:
          - name: m
            config:
              contract: {enforced: true}
            columns:
              - name: x
                data_type: "{{ 'UInt8' if target.type == 'clickhouse' else 'int' }}"
        """))
    rc, findings = run_hook(capsys, "check-contracts", root)
    assert serious(findings) == [] and rc == 0
    # and a real mismatch behind Jinja is still one
    (root / "models" / "m.sql").write_text("select 'a' as x\n")
    rc, findings = run_hook(capsys, "check-contracts", root)
    assert rc == 1, findings


def test_render_error_line_is_in_the_file(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    # a real parse-time error is reported on the template line, not past the end of the file
    sql = "select 1 as x\n{{ (1).nope.deeper() }}\n"
    root = shop(tmp_path, {M + "broken.sql": (None, "select 1 as x\n{% set n = 1 %}\n"
                                              "{{ exceptions.raise_compiler_error('boom') }}\n")})
    del sql
    _rc, findings = run_hook(capsys, "fast-compile", root)
    lines = [f["line"] for f in findings if f["path"] == M + "broken.sql"]
    assert lines and all(1 <= n <= 3 for n in lines), findings


# -- one SQL verdict everywhere (issue 10 item 5): DuckDB's parser for DuckDB projects only;
# other or guessed dialects: certain only when no dialect could read it
FAULTS = {
    "missing_comma": "select\n    id as order_id,\n    customer_id\n    amount as amt,\n"
                     "    status\nfrom t\n",
    "three_words": "select a b c from t",
    "selct": "selct a, b from t",
    "selct_in_subquery": "select * from (selct a from t) x",
    "frm": "select a, b frm t",
    "as_as": "select sum(a) as as total from t",
    "unclosed_paren": "select cast(a as date as b from t",
    "unterminated_string": "select 'abc from t",
}
VALID = {
    "alias_without_as": ("select a b from t", ("duckdb", "snowflake", "bigquery", "postgres")),
    "bigquery_between": ("select * from `p.d.t` where d between date_sub(current_date(), "
                         "interval 7 day) and current_date()", ("bigquery",)),
    "snowflake_path": ("select a:b::string as c from t", ("snowflake",)),
    "duckdb_exclude": ("select * exclude (a) from t", ("duckdb",)),
}


@pytest.mark.parametrize("how", ["bulwark.yml", "guess"])
@pytest.mark.parametrize("dialect", ["duckdb", "snowflake", "bigquery", "postgres"])
@pytest.mark.parametrize("name", sorted(FAULTS))
def test_sql_fault_is_certain(name: str, dialect: str, how: str) -> None:
    from dbt_bulwark.sql.sql_verdicts import sql_syntax_error

    verdict = sql_syntax_error(FAULTS[name], dialect, how)
    assert verdict is not None and verdict.certain, (name, dialect, how, verdict)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_sql_is_never_an_error(name: str) -> None:
    from dbt_bulwark.sql.sql_verdicts import sql_syntax_error

    sql, dialects = VALID[name]
    for dialect in dialects:
        verdict = sql_syntax_error(sql, dialect, "profile")
        assert verdict is None or not verdict.certain, (dialect, verdict)


def test_duckdb_parser_is_not_asked_for_other_dialects(monkeypatch: pytest.MonkeyPatch) -> None:
    from dbt_bulwark.sql import sql_verdicts

    def boom(sql: str) -> None:
        raise AssertionError("DuckDB's parser asked about a non-DuckDB project")

    monkeypatch.setattr(sql_verdicts, "_duckdb_parse", boom)
    for dialect, how in [("snowflake", "profile"), ("bigquery", "bulwark.yml"),
                         ("duckdb", "guess")]:
        sql_verdicts.sql_syntax_error("select a b c from t", dialect, how)
        sql_verdicts.sql_syntax_error("select x from t where y in unnest(@a)", dialect, how)


def test_enabled_from_an_uninstalled_package_macro(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    # corpus FP-10 (Fivetran packages): `enabled=` from a macro of a package that a fresh
    # clone has not installed is unknown, not False: its users are not "ref to disabled"
    root = shop(tmp_path, {
        "packages.yml": (None, "packages:\n  - package: fivetran/fivetran_utils\n"
                               "    version: 0.4.0\n"),
        M + "a.sql": (None, "{{ config(enabled=fivetran_utils.enabled_vars(['x'])) }}\n"
                            "select 1 as id\n"),
        M + "b.sql": (None, "select * from {{ ref('a') }}\n"),
    })
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0


def test_dbt_date_of_a_local_package(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    # corpus FP-8 (dbt-expectations' integration tests): dbt_date declared by `local: ../`
    root = tmp_path / "pkg"
    (root / "integration_tests" / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: exp\nversion: '1.0'\nconfig-version: 2\n")
    (root / "packages.yml").write_text("packages:\n  - package: calogica/dbt_date\n"
                                       "    version: [\">=0.9.0\", \"<0.11.0\"]\n")
    it = root / "integration_tests"
    (it / "dbt_project.yml").write_text("name: exp_it\nversion: '1.0'\nconfig-version: 2\n")
    (it / "bulwark.yml").write_text("dialect: duckdb\n")
    (it / "packages.yml").write_text("packages:\n  - local: ../\n")
    (it / "models" / "series.sql").write_text(
        "{{ dbt_date.get_base_dates(n_dateparts=10, datepart='day') }}\n")
    rc, findings = run_hook(capsys, "fast-compile", it, ["--repo-root", str(root)])
    assert serious(findings) == [] and rc == 0


def test_macro_returning_a_list_var(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = shop(tmp_path, {
        "dbt_project.yml": ("  vip_threshold: 100\n",
                            "  vip_threshold: 100\n  extra_cols: ['status', 'amount']\n"),
        "macros/cols.sql": (None, "{% macro extra_cols() %}{{ return(var('extra_cols', [])) }}"
                                  "{% endmacro %}\n"),
        M + "picked.sql": (None, "select order_id{% for c in extra_cols() %}, {{ c }}"
                                 "{% endfor %}\nfrom {{ ref('fct_orders') }}\n"),
    })
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0


def _git_commit(root: Path) -> None:
    import subprocess

    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.email=t@example.invalid", "-c", "user.name=t",
                  "-c", "commit.gpgsign=false", "commit", "-q", "-m", "base"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _jinja_typed_project(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: jt\nversion: '1.0'\nconfig-version: 2\n"
                                          "profile: jt\n")
    (root / "models" / "m.sql").write_text("select cast(1 as integer) as id\n")
    (root / "models" / "n.sql").write_text("select id from {{ ref('m') }}\n")
    (root / "models" / "m.yml").write_text(textwrap.dedent("""\
        models:
          - name: m
            config:
              contract: {enforced: true}
            columns:
              - name: id
                data_type: "{{ 'UInt8' if target.type in ['clickhouse'] else 'integer' }}"
        exposures:
          - name: e
            type: dashboard
            owner: {name: x}
            depends_on: ["ref('m')"]
        """))
    return root


def test_jinja_in_contract_data_type_without_any_dialect(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # corpus (dbt-project-evaluator's integration tests): no profile, no bulwark.yml, so
    # no adapter is known; dbt still renders the data_type before it compares types
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    root = _jinja_typed_project(tmp_path / "jt")
    rc, findings = run_hook(capsys, "check-contracts", root)
    assert serious(findings) == [] and rc == 0


def test_jinja_data_type_is_no_type_change_against_the_base(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `bulwark check` renders the head's data_type in the contracts layer; the schema diff
    # must see the base's rendered too, or the template "changes type" to its own value
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    root = _jinja_typed_project(tmp_path / "jt")
    _git_commit(root)
    capsys.readouterr()
    rc = main(["check", "--all-files", "--base", "HEAD", "--all-findings", "--no-cache",
               "--repo-root", str(root), "--project-dir", str(root), "--format", "json", "-q"])
    data = json.loads(capsys.readouterr().out)
    found = [f for layer in data["layers"] for f in layer["findings"]]
    assert serious(found) == [] and rc == 0


def _public_model(root: Path, policy: str | None) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: pub\nversion: '1.0'\nconfig-version: 2\n")
    if policy is not None:
        (root / "bulwark.yml").write_text(policy)
    (root / "models" / "shared.sql").write_text("select 1 as id\n")
    (root / "models" / "shared.yml").write_text(
        "models:\n  - name: shared\n    access: public\n")
    return root


def test_public_model_without_contract_is_advice_by_default(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # corpus (balboa, dbt-project-evaluator): dbt accepts `access: public` without a
    # contract; a project that never chose contracts.select is told, not blocked
    rc, findings = run_hook(capsys, "check-contracts", _public_model(tmp_path / "a", None))
    assert [(f["code"], f["severity"]) for f in findings] == [("BLK201", "info")] and rc == 0


@pytest.mark.parametrize("policy", ["contracts:\n  select: access:public\n",
                                    "contracts:\n  select: 'tag:critical access:public'\n"])
def test_public_model_without_contract_blocks_when_chosen(
        policy: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, findings = run_hook(capsys, "check-contracts", _public_model(tmp_path / "b", policy))
    assert [(f["code"], f["severity"]) for f in findings] == [("BLK201", "error")] and rc == 1


def test_critical_public_model_without_contract_still_blocks(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = _public_model(tmp_path / "c", None)
    (root / "models" / "shared.yml").write_text(
        "models:\n  - name: shared\n    access: public\n    config: {tags: [critical]}\n")
    rc, findings = run_hook(capsys, "check-contracts", root)
    assert [(f["code"], f["severity"]) for f in findings] == [("BLK201", "error")] and rc == 1


def _bigquery_project(root: Path, sql: str) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: bq\nversion: '1.0'\nconfig-version: 2\n")
    (root / "bulwark.yml").write_text("dialect: bigquery\n")
    (root / "models" / "spans.sql").write_text(
        "select 0 as s, 10 as e, 2 as h, [struct(1 as id, 'u' as url)] as items\n")
    (root / "models" / "m.sql").write_text(sql)
    return root


def test_bigquery_unnest_with_offset(capsys: pytest.CaptureFixture[str],
                                     tmp_path: Path) -> None:
    # corpus (data-infra with packages): `WITH OFFSET AS n` names a column of the query
    sql = ("select s + n * h as t, n\nfrom {{ ref('spans') }}\n"
           "left join unnest(generate_array(s, e, h)) as step with offset as n\n"
           "where s + n * h < e\n")
    root = _bigquery_project(tmp_path / "bq", sql)
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert serious(findings) == [] and rc == 0
    # a misspelt column beside it is still one
    (root / "models" / "m.sql").write_text(sql.replace("as t, n", "as t, nn"))
    rc, findings = run_hook(capsys, "fast-compile", root)
    assert [f["code"] for f in serious_dicts(findings)] == ["BLK140"] and rc == 1


def test_bigquery_struct_array_fields_are_columns(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    # corpus (data-infra with packages): `FROM t, t.items AS i` makes each STRUCT field of
    # the element a column (`id`), which BigQuery resolves without a qualifier
    sql = ("select i.url, id\nfrom {{ ref('spans') }} as spans, spans.items as i\n")
    rc, findings = run_hook(capsys, "fast-compile", _bigquery_project(tmp_path / "bq", sql))
    assert serious(findings) == [] and rc == 0


def serious_dicts(findings: list[dict]) -> list[dict]:
    return [f for f in findings if f["severity"] != "info"]


def test_base_revision_sees_installed_packages(capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # corpus (a Fivetran package after `dbt deps`): `enabled=` comes from a macro of an
    # installed package; dbt_packages/ is never committed, so a base read from git alone
    # does not know the macro and took the model as enabled: "was disabled" (BLK408/411)
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    root = tmp_path / "p"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: p\nversion: '1.0'\nconfig-version: 2\n"
                                          "profile: p\n")
    (root / "packages.yml").write_text("packages:\n  - package: acme/switches\n"
                                       "    version: 1.0.0\n")
    (root / ".gitignore").write_text("dbt_packages/\n")
    (root / "models" / "opt_tmp.sql").write_text(
        "{{ config(enabled=switches.is_on('opt')) }}\nselect 1 as id\n")
    (root / "models" / "opt.sql").write_text(
        "{{ config(enabled=switches.is_on('opt')) }}\nselect id from {{ ref('opt_tmp') }}\n")
    (root / "models" / "kept.sql").write_text("select 1 as id\n")
    _git_commit(root)
    pkg = root / "dbt_packages" / "switches"
    (pkg / "macros").mkdir(parents=True)
    (pkg / "dbt_project.yml").write_text("name: switches\nversion: '1.0'\n"
                                         "config-version: 2\n")
    (pkg / "macros" / "on.sql").write_text(
        "{% macro is_on(name) %}{{ return(var(name ~ '_enabled', false)) }}{% endmacro %}\n")
    capsys.readouterr()
    rc = main(["check", "--all-files", "--base", "HEAD", "--all-findings", "--no-cache",
               "--repo-root", str(root), "--project-dir", str(root), "--format", "json", "-q"])
    data = json.loads(capsys.readouterr().out)
    found = [f for layer in data["layers"] for f in layer["findings"]]
    assert serious(found) == [] and rc == 0


def test_new_yaml_entry_without_file_warns(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    # corpus (mattermost, dbt-utils, spellbook): stale YAML entries dbt only warns about are
    # info on a clean tree; one this change adds (or orphans) is still a warning
    root = shop(tmp_path, {M + "_old.yml": (None, "models:\n  - name: long_gone\n")})
    _git_commit(root)
    rc, findings = run_hook(capsys, "fast-compile", root, ["--base", "HEAD"])
    assert [(f["code"], f["severity"]) for f in findings if f["code"] == "BLK037"] == [
        ("BLK037", "info")] and rc == 0
    (root / M / "_new.yml").write_text("models:\n  - name: dim_customerz\n")
    rc, findings = run_hook(capsys, "fast-compile", root, ["--base", "HEAD"])
    got = sorted((f["message"].split("'")[1], f["severity"]) for f in findings
                 if f["code"] == "BLK037")
    assert got == [("dim_customerz", "warning"), ("long_gone", "info")] and rc == 0
