"""Issue 12: a model whose only Jinja beyond literal ref/source/config is calls of *inert*
macros with literal arguments is read without a parse-mode render. What the load finds
(refs, sources, config, errors, findings) must equal the render's, case by case."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from test_regression import _write as write_files

from dbt_bulwark.project import loader
from dbt_bulwark.project.fs import WorkTree
from dbt_bulwark.project.loader import load_project

MACROS = {
    "macros/inert.sql": """
        {% macro trim_null(column_name) %} NULLIF(TRIM({{ column_name }}), '') {% endmacro %}
        {% macro pass_status() %} "PASS" {% endmacro %}
        {% macro two(a, b='x') %}{{ a }} || {{ b }}{% endmacro %}
        """,
    "macros/active.sql": """
        {% macro with_ref(x) %}{{ ref('hidden_parent') }}{% endmacro %}
        {% macro with_config(x) %}{{ config(materialized='table') }}{% endmacro %}
        {% macro with_var(x) %}{{ var('missing_var') }}{% endmacro %}
        {% macro with_stmt(x) %}{% if x %}{{ x }}{% endif %}{% endmacro %}
        {% macro twice(x) %}{{ x }}{% endmacro %}
        {% macro twice(x) %}{{ ref('hidden_parent') }}{% endmacro %}
        """,
    "macros/broken.sql": """
        {% macro ok_body(x) %}{{ x }}{% endmacro %}
        {% macro broken( %}
        """,
    "macros/probed.sql": """
        {% macro key(fields) %}{{ return(adapter.dispatch('key')(fields)) }}{% endmacro %}
        {% macro default__key(fields) %}
          {%- set parts = [] -%}
          {%- for f in fields %}{% do parts.append(trim_null(f)) %}{% endfor -%}
          {%- if var('with_nulls', False) %}x{% endif -%}
          {{ parts | join(' || ') }}
        {% endmacro %}
        {% macro reads_this(x) %}{% if this %}{{ x }}{% endif %}{% endmacro %}
        {% macro reads_config(x) %}{% if config.get('materialized') == 'table' %}
          {{ ref('hidden_parent') }}{% endif %}{% endmacro %}
        {% macro raises(x) %}{{ exceptions.raise_compiler_error('no') }}{% endmacro %}
        {% macro reads_env(x) %}{{ env_var('BULWARK_TEST_NOT_SET', 'd') }}{% endmacro %}
        {% macro warehouse(x) %}{{ adapter.get_columns_in_relation(x) }}{% endmacro %}
        """,
    "macros/shadow.sql": "{% macro var(x) %}{{ x }}{% endmacro %}\n",
}

MODELS = {
    # elided: inert calls only (with literal ref/source/config around them)
    "inert_plain": "select {{ trim_null('a') }} as a, {{ pass_status() }} from t",
    "inert_ref": ("{{ config(materialized='view', tags=['x']) }}\n"
                  "select {{ trim_null('a') }}, {{- two('p', b='q') -}} from {{ ref('p') }}"),
    "inert_source": "select {{ trim_null(\"a\") }} from {{ source('s', 't') }}",
    # rendered: the call could do something a parse reads, or fail
    "calls_ref": "select {{ with_ref('a') }} from {{ ref('p') }}",
    "calls_config": "select {{ with_config('a') }}",
    "calls_var": "select {{ with_var('a') }}",
    "calls_stmt": "select {{ with_stmt('a') }}",     # (probed: elided)
    "redefined": "select {{ twice('a') }}",
    "too_many_args": "select {{ trim_null('a', 'b') }}",
    "unknown_kwarg": "select {{ trim_null(col='a') }}",
    "repeated_arg": "select {{ two('a', a='b') }}",
    "broken_file": "select {{ ok_body('a') }}",   # (elided: its macro compiles alone)
    "shadowed": "select {{ var('a') }}",
    "unknown_macro": "select {{ no_such_macro('a') }}",   # (probed: elided)
    "non_literal": "select {{ trim_null(other) }}",   # (probed: elided)
    "statement": "{% set x = 1 %}select {{ trim_null('a') }}",
    "comment": "{# c #}select {{ trim_null('a') }}",
    "package_call": "select {{ pkg.inert_pkg('a') }}",
    # probed: rendered alone once, no effect a parse reads, no node-dependent name
    "probed_dispatch": "select {{ key(['a', 'b']) }} from {{ ref('p') }}",
    "probed_this": "select {{ reads_this('a') }}",
    "probed_config": "{{ config(materialized='table') }}select {{ reads_config('a') }}",
    "probed_raises": "select {{ raises('a') }}",
    "probed_env": "select {{ reads_env('a') }}",
    "probed_warehouse": "select {{ warehouse('a') }}",
    "probed_expr": "select {{ target.name ~ '_x' }}, {{ trim_null(col) }} from {{ ref('p') }}",
    "top_level_return": "select {{ return('x') }} from {{ ref('p') }}",
    "reads_this": "select {{ this }} from {{ ref('p') }}",
    "reads_this_name": "select '{{ this.name }}' as m from {{ ref('p') }}",
    "missing_var": "select {{ 'a' ~ var('not_set') }}",
    "nested_dict": ("{{ config(materialized='table', meta={'a': {'b': 1}}) }}"
                    "select {{ trim_null('a') }}"),
    "string_braces": "select {{ trim_null('}}') }}, {{ ref('p') }}",
}


def _project(tmp_path: Path, models: dict[str, str] | None = None) -> Path:
    root = tmp_path / "proj"
    files: dict[str, str] = {
        "dbt_project.yml": "name: proj\nversion: '1.0'\nprofile: p\n",
        "models/p.sql": "select 1 as a",
        "models/hidden_parent.sql": "select 1 as a",
        "models/sources.yml": "version: 2\nsources:\n  - name: s\n    tables:\n      - name: t\n",
        "dbt_packages/pkg/dbt_project.yml": "name: pkg\nversion: '1.0'\n",
        "dbt_packages/pkg/macros/m.sql":
            "{% macro inert_pkg(x) %}{{ x }}{% endmacro %}\n",
        "packages.yml": "packages:\n  - local: dbt_packages/pkg\n",
    }
    files.update({k: textwrap.dedent(v) for k, v in MACROS.items()})
    files.update({f"models/{k}.sql": v for k, v in (MODELS if models is None else models).items()})
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _signature(root: Path) -> tuple[dict[str, Any], list[str]]:
    project = load_project(WorkTree(root), "", {}, None)
    nodes = {uid: (n.refs, sorted(n.sources), n.calls, n.jinja_error, n.config)
             for uid, n in project.nodes.items()}
    return nodes, sorted(repr(f) for f in project.findings)


def _elided_and_rendered(root: Path, monkeypatch: pytest.MonkeyPatch
                         ) -> tuple[Any, Any, list[str]]:
    """The project read with elision, read with every template rendered, and the texts
    that were elided."""
    elided: list[str] = []
    original = loader._ProjectBuilder.elide_inert_calls

    def counting(self: Any, pkg: Any, text: str, *rest: Any) -> Any:
        out = original(self, pkg, text, *rest)
        if out is not None:
            elided.append(text)
        return out

    monkeypatch.setattr(loader._ProjectBuilder, "elide_inert_calls", counting)
    with_elision = _signature(root)
    monkeypatch.setattr(loader._ProjectBuilder, "elide_inert_calls", lambda *a: None)
    return with_elision, _signature(root), elided


def test_elision_finds_what_the_render_finds(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path)
    with_elision, rendered, elided = _elided_and_rendered(root, monkeypatch)
    assert with_elision == rendered
    expected = {MODELS[k] for k in ("inert_plain", "inert_ref", "inert_source", "package_call",
                                    "probed_dispatch",
                                    # probed: a statement-only macro, and an unknown name
                                    # (permissive parse: calling it is nothing, as in dbt)
                                    "calls_stmt", "unknown_macro", "probed_expr",
                                    "non_literal",
                                    # a read of the node's relation has no effect
                                    "reads_this", "reads_this_name",
                                    # a macro compiles alone, as in dbt (the broken one
                                    # beside it is BLK101's, at its own line)
                                    "broken_file")}
    assert set(elided) == expected
    nodes = with_elision[0]
    assert "hidden_parent" in {r.name for r in nodes["model.proj.calls_ref"][0]}
    assert nodes["model.proj.inert_ref"][4]["materialized"] == "view"
    assert "hidden_parent" in {r.name for r in nodes["model.proj.probed_config"][0]}
    assert nodes["model.proj.probed_raises"][3] is not None


CONFIG_MODELS = {
    # elided: config() arguments made of literals, var() and as_* filters
    "var_default": "{{ config(enabled = var('flag_unset', False) | as_bool) }}\n"
                   "select 1 as a from {{ ref('p') }}",
    "var_set": "{{ config(enabled=var('flag_on') | as_bool, tags=['x']) }}\nselect 1 as a",
    "var_nested": "{{ config(enabled=var('flag_unset', var('flag_text', False)) | as_bool) }}\n"
                  "select 1 as a",
    "var_string": "{{ config(schema=var('where_to', 'marts')) }}\nselect 1 as a",
    "var_and": "{{ config(enabled=(var('flag_on', false) | as_bool) and\n"
               "  (var('flag_unset', true) | as_bool)) }}\nselect 1 as a",
    "var_or_not": "{{ config(enabled=not var('flag_unset', False) or var('flag_on')) }}\n"
                  "select 1 as a",
    "var_paren_and": "{{ config(enabled=(var('flag_on', False) and var('flag_unset', true))\n"
                     "  | as_bool) }}\nselect 1 as a",
    "var_compare": "{{ config(enabled=((var('mode', False) == True or var('mode', False) ==\n"
                   "  \"unmapped\") and var('flag_on')) | as_bool) }}\nselect 1 as a",
    "var_not_equal": "{{ config(enabled=var('flag_on') != 'false', tags=['t']) }}\n"
                     "select 1 as a",
    "var_not_paren": "{{ config(enabled=(not var('flag_on')) | as_bool) }}\nselect 1 as a",
    # rendered: what the evaluator does not know, or dbt-extractor cannot read
    "var_missing": "{{ config(enabled=var('flag_unset') | as_bool) }}\nselect 1 as a",
    "var_concat": "{{ config(schema=var('where_to', 'm') ~ '_x') }}\nselect 1 as a",
    "var_number": "{{ config(enabled=True, batch=var('size', 10)) }}\nselect 1 as a",
    "var_jinja": "{{ config(alias=var('templated')) }}\nselect 1 as a",
    "var_text_not": "{{ config(enabled=not var('flag_on')) }}\nselect 1 as a",
    "var_chained": "{{ config(enabled=var('flag_on') == 'true' == True) }}\nselect 1 as a",
    "var_negative": "{{ config(enabled=(-var('size', 1)) | as_bool) }}\nselect 1 as a",
}


def _config_project(tmp_path: Path, shadow: bool = False) -> Path:
    root = tmp_path / ("shadowed" if shadow else "cfg")
    files = {
        "dbt_project.yml": ("name: cfg\nversion: '1.0'\nprofile: p\nvars:\n  flag_on: 'true'\n"
                            "  flag_text: 'True'\n  templated: \"{{ 'a' ~ 'b' }}\"\n"),
        "models/p.sql": "select 1 as a",
    }
    files.update({f"models/{k}.sql": v for k, v in CONFIG_MODELS.items()})
    if shadow:
        files["macros/var.sql"] = "{% macro var(x, d=none) %}{{ return(true) }}{% endmacro %}\n"
    write_files(root, files)
    return root


@pytest.mark.parametrize("shadow", [False, True])
def test_config_of_vars_is_evaluated_as_the_render_evaluates_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shadow: bool) -> None:
    """`{{ config(enabled=var('x', False) | as_bool) }}` (the usual way packages switch models
    off) is read without compiling the template, with the render's result."""
    root = _config_project(tmp_path, shadow)
    with_elision, rendered, elided = _elided_and_rendered(root, monkeypatch)
    assert with_elision == rendered
    expected = set() if shadow else \
        {CONFIG_MODELS[k] for k in ("var_default", "var_set", "var_nested", "var_string",
                                   "var_and", "var_or_not", "var_text_not", "var_paren_and",
                                   "var_compare", "var_not_equal", "var_not_paren")}
    assert set(elided) == expected
    if not shadow:
        nodes = with_elision[0]
        assert nodes["model.cfg.var_set"][4]["enabled"] is True
        assert "model.cfg.var_default" not in nodes   # disabled, as dbt has it
        assert nodes["model.cfg.var_string"][4]["schema"] == "marts"


BRANCH_MODELS = {
    # elided: if/elif/else only, each condition the render evaluates the same for every node
    "if_target": ("{% if target.type == 'bigquery' %}select * from {{ ref('hidden_parent') }}\n"
                  "{% elif target.type in ('postgres', 'duckdb') %}select * from {{ ref('p') }}"
                  "\n{% else %}{{ config(materialized='table') }}select 1{% endif %}"),
    "if_incremental": ("{{ config(materialized='incremental') }}\nselect * from {{ ref('p') }}\n"
                       "{% if is_incremental() %}\n  where a > (select max(a) from {{ this }})"
                       "\n{% endif %}"),
    "if_nested": ("{%- if var('flag', true) -%}\n  {%- if execute %}{{ ref('hidden_parent') }}"
                  "{% else %}{{ trim_null('a') }} from {{ ref('p') }}{% endif -%}\n"
                  "{%- else -%}{{ ref('no_such_model') }}{%- endif -%}"),
    "if_config": "{% if not var('flag', true) %}{{ config(enabled=false) }}{% endif %}select 1",
    "if_only_text": "select 1 {% if target.type == 'duckdb' %}as a{% else %}as b{% endif %}",
    "if_untaken_unknown": ("{% if target.type == 'duckdb' %}select 1{% else %}"
                           "{{ ref('p') | no_such_filter }}{% endif %}"),
    # rendered: a condition that depends on the node, has an effect, or fails; another
    # statement; a template that does not compile (in a branch the render does not take)
    "if_node_config": ("{% if config.get('materialized') == 'table' %}{{ ref('p') }}"
                       "{% endif %}select 1"),
    "if_missing_var": "{% if var('not_set') %}{{ ref('p') }}{% endif %}select 1",
    "if_effect": "{% if with_ref('a') %}select 1{% endif %}",
    "if_for": "{% for x in [1] %}{% if x %}{{ ref('p') }}{% endif %}{% endfor %}",
    "if_set": "{% set x = 1 %}{% if x %}{{ ref('p') }}{% endif %}",
    "if_syntax": "{% if target.type == 'duckdb' %}select 1{% else %}{{ ref('p' }}{% endif %}",
    "if_twice_kw": ("{% if target.type == 'duckdb' %}select 1{% else %}"
                    "{{ two(a='x', a='y') }}{% endif %}"),
    "if_unclosed": "{% if target.type == 'duckdb' %}{{ ref('p') }}",
    "if_taken_return": "{% if target.type == 'duckdb' %}{{ return('x') }}{% endif %}",
    "if_in_string": ("select '{{ \"{% if false %}\" }}' as a {{ ref('p') }}"
                     "{% if target.type == 'duckdb' %}{% endif %}"),
}


def test_if_blocks_are_read_as_the_render_takes_them(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose only statements are if/elif/else is read without compiling its
    template when each condition the render evaluates is the same for every node of the
    package (target, var(), execute, is_incremental()); what the load finds equals the
    render's, findings included."""
    root = _project(tmp_path, BRANCH_MODELS)
    with_elision, rendered, elided = _elided_and_rendered(root, monkeypatch)
    assert with_elision == rendered
    assert set(elided) == {BRANCH_MODELS[k] for k in (
        "if_target", "if_incremental", "if_nested", "if_config", "if_only_text")}
    nodes = with_elision[0]
    assert [r.name for r in nodes["model.proj.if_target"][0]] == ["p"]
    assert [r.name for r in nodes["model.proj.if_incremental"][0]] == ["p"]
    assert [r.name for r in nodes["model.proj.if_nested"][0]] == ["p"]
    assert nodes["model.proj.if_syntax"][3] is not None


def _record_compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the renders of the test compile from now on (each call, memo hits too)."""
    from dbt_bulwark.sql import jinja_env

    compiled: list[str] = []
    real = jinja_env._from_string

    def compiling(text: str) -> Any:
        compiled.append(text)
        return real(text)

    monkeypatch.setattr(jinja_env, "_from_string", compiling)
    return compiled


def test_a_macro_compiles_alone_as_in_dbt(monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt compiles each macro of a file on its own: a render compiles the blocks of the
    macros it calls (on their own lines), not the rest of their files; a macro of the same
    file is looked up by name and its return() ends only itself. A file is compiled whole
    when it defines a name twice (Jinja's last definition wins) or a `_private` macro
    (its macros call it; other files see no such name)."""
    from dbt_bulwark.project.macros import MacroIndex
    from dbt_bulwark.sql.jinja_env import RenderContext, render

    macros = MacroIndex("p")
    macros.add_file("p", "macros/m.sql", (
        "{% macro shout(x) %}{{ helper(x) }}!{% endmacro %}\n"
        "{% macro helper(x) %}{{ return(x | upper) }}{% endmacro %}\n"
        "\n{% macro unused() %}{{ this_is_never_compiled }}{% endmacro %}\n"))
    macros.add_file("p", "macros/twice.sql", (
        "{% macro twice() %}first{% endmacro %}{% macro twice() %}second{% endmacro %}\n"
        "{% macro unused_too() %}{{ this_is_never_compiled }}{% endmacro %}\n"))
    macros.add_file("p", "macros/private.sql", (
        "{% macro hush(x) %}{{ _lower(x) }}{% endmacro %}\n"
        "{% macro _lower(x) %}{{ x | lower }}{% endmacro %}\n"))
    compiled = _record_compiles(monkeypatch)
    ctx = RenderContext(package="p", macros=macros, vars={})
    out = render("{{ shout('a') }} {{ twice() }} {{ hush('B') }} {{ _lower('C') }}.", ctx)
    assert out.strip() == "A! second b ."
    shout, helper, twice = macros.find("shout"), macros.find("helper"), macros.find("twice")
    assert shout is not None and helper is not None and twice is not None
    assert helper.line == 2 and twice.block is None
    assert helper.source() == "\n{% macro helper(x) %}{{ return(x | upper) }}{% endmacro %}"
    assert shout.source() in compiled and helper.source() in compiled
    # the one text with an unused macro: the file of the macro defined twice, compiled whole
    assert [t for t in compiled if "this_is_never_compiled" in t] == [twice.text]
    assert all(m.block is None for m in macros.by_package["p"].values()
               if m.path == "macros/private.sql")


SHAPE_CASES = [
    "{{ 'a' ~ \"b\" }}", "{{ 'a' 'b' }}", "{{ f(x='a') }}", "{{ d['k'] }}", "{{ 'abc'[1] }}",
    "{{ 'a' | upper }}", "{{ 'A'.lower() }}", "{{ d.'k' }}", "{{ f('a'=1) }}",
    "{{ 'a' is string }}", "{{ d is 'k' }}", "{{ \"}}\" }}", "{{ 'a\\'b' }}",
    "{{ '%s-%s' % ('a', 'b') }}", "{{ 'a' if true else 'b' }}", "{{ {'k': 'v'}['k'] }}",
    "{{ ['a', 'b'] | join(',') }}", "{{- 'a' -}} x {{ 'b'}}", "{{ 'a' in 'abc' }}",
    "{{ nothing | default('d') }}", "{{ var('v', 'fallback') }}", "{{ f('a',\n 'b') }}",
    "{{ not 'a' }}", "{{ 'a' == 'b' or 'c' != 'd' }}", "{{ f('a') }}{% if 1 %}x{% endif %}",
    "{{ 'a' + }}", "{{ 'a'(1) }}", "{{ f(('a')) }}", "{{ 'é' ~ '✓' }}",
]


@pytest.mark.parametrize("text", SHAPE_CASES)
def test_a_literal_shape_renders_as_its_text(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A template rendered through its literal shape gives what the text itself gives: the
    same output, or the same error (a shape that reads otherwise is not taken)."""
    from dbt_bulwark.project.macros import MacroIndex
    from dbt_bulwark.sql import jinja_env
    from dbt_bulwark.sql.jinja_env import RenderContext, render

    macros = MacroIndex("p")
    macros.add_file("p", "macros/f.sql",
                    "{% macro f(x, y='') %}[{{ x }}|{{ y }}]{% endmacro %}\n")

    def outcome() -> str:
        ctx = RenderContext(package="p", macros=macros, vars={"v": "set"})
        try:
            return "ok: " + render(text, ctx)
        except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
            return f"{type(exc).__name__}: {exc}"

    shaped = outcome()
    monkeypatch.setattr(jinja_env, "literal_shape", lambda _text: None)
    assert shaped == outcome()


def test_templates_differing_only_in_literals_compile_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The data-quality models of a project are one macro call each, with their own name as
    the argument; the probes of inert calls are alike: one compile serves them all."""
    from dbt_bulwark.project.macros import MacroIndex
    from dbt_bulwark.sql.jinja_env import RenderContext, literal_shape, render

    macros = MacroIndex("p")
    macros.add_file("p", "macros/dq.sql", "{% macro dq(name) %}select '{{ name }}'{% endmacro %}\n")
    compiled = _record_compiles(monkeypatch)
    outs = [render("{{ dq('" + name + "') }}\n", RenderContext(package="p", macros=macros, vars={}))
            for name in ("dq_one", "dq_two", "dq_three")]
    assert outs == ["select 'dq_one'\n", "select 'dq_two'\n", "select 'dq_three'\n"]
    assert {t for t in compiled if t.startswith("{{")} == {"{{ dq(__bw_literal_0) }}\n"}
    for kept in ("{{ 'a' 'b' }}", "{{ f(x='a') }}{% set y = 1 %}", "{{ d.'k' }}",
                 "{{ f('a'=1) }}", "{{ d is 'k' }}", "{{ 'a\\'b' }}", "{{ \"}}\" }}",
                 "{{ x | 'f' }}", "{# 'a' #}{{ 'b' }}", "{{ 'a'(1) }}",
                 "{{ 'a' ~ __bw_literal_0 }}"):
        assert literal_shape(kept) is None, kept


def test_one_context_gives_its_macros_one_namespace_that_renders_never_change() -> None:
    """Every macro module a render makes reads the context's one namespace of its package
    (built once: a render of macro-heavy models made one per macro it called); the literal
    values of a shaped template go into a copy, so renders in one context (the probes, a
    node's nested var() renders) never see another's."""
    from dbt_bulwark.project.macros import MacroIndex
    from dbt_bulwark.sql.jinja_env import RenderContext, render

    macros = MacroIndex("p")
    macros.add_file("p", "macros/m.sql",
                    "{% macro outer(x) %}<{{ inner(x) }}|{{ this }}>{% endmacro %}\n"
                    "{% macro inner(x) %}{{ x | upper }}{% endmacro %}\n")
    ctx = RenderContext(package="p", macros=macros, vars={}, this_name="db.s.node")
    shared = ctx.namespace("p")
    before = dict(shared)
    assert render("{{ outer('a') }}", ctx) == "<A|db.s.node>"
    assert render("{{ outer('b') }} {{ 'c' }}", ctx) == "<B|db.s.node> c"
    assert render("{{ outer(__bw_literal_0 | default('none')) }}", ctx) == "<NONE|db.s.node>"
    assert ctx.namespace("p") is shared and dict(shared).keys() == before.keys()
    assert ctx.namespace("other") is not shared
