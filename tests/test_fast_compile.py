"""fast-compile: mutation tests on tests/fixtures/fast_compile/shop (every fault class is
injected and caught at the right file and line; benign edits give nothing), position
mapping through Jinja, and the SQL syntax verdict."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fast_compile_cases import BENIGN, CASES, SHOP, Case, apply

from dbt_bulwark.cli import main
from dbt_bulwark.sql.compiler import TemplateMap


def run_fc(capsys: pytest.CaptureFixture[str], root: Path, files: list[str] | None = None,
           extra: list[str] | None = None) -> tuple[int, list[dict]]:
    args = ["fast-compile", "--project-dir", str(root), "--repo-root", str(root),
            "--format", "json", "--no-cache", *(extra or [])]
    args += [str(root / f) for f in files] if files else ["--all-files"]
    rc = main(args)
    out = capsys.readouterr().out
    return rc, json.loads(out)["findings"]


def serious(findings: list[dict]) -> list[dict]:
    return [f for f in findings if f["severity"] != "info"]


def test_clean_fixture_has_no_findings(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = apply(Case("clean", {}), tmp_path / "shop")
    rc, findings = run_fc(capsys, root)
    assert findings == [] and rc == 0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_is_caught(case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    root = apply(case, tmp_path / "shop")
    rc, findings = run_fc(capsys, root, case.files)
    got = [(f["code"], f["path"], f["line"]) for f in findings]
    for code, path, line in case.expect:
        hits = [g for g in got if g[0] == code and g[1] == path and (line == 0 or g[2] == line)]
        assert hits, f"expected {code} at {path}:{line}, got {got}"
    wanted_sev = {"BLK037": "info"}  # no git base here: see test_new_yaml_entry_without_file_warns
    for code, _p, _l in case.expect:
        sev = wanted_sev.get(code, "error")
        assert any(f["code"] == code and f["severity"] == sev for f in findings)
    assert rc == (1 if any(f["severity"] == "error" for f in findings) else 0)


@pytest.mark.parametrize("case", BENIGN, ids=[c.name for c in BENIGN])
def test_benign_edit_is_silent(case: Case, capsys: pytest.CaptureFixture[str],
                               tmp_path: Path) -> None:
    root = apply(case, tmp_path / "shop")
    rc, findings = run_fc(capsys, root, case.files)
    assert serious(findings) == [] and rc == 0


def test_messages_carry_fix_hints(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    case = next(c for c in CASES if c.name == "missing_ref")
    root = apply(case, tmp_path / "shop")
    _rc, findings = run_fc(capsys, root)
    f = next(f for f in findings if f["code"] == "BLK110")
    assert "stg_orders" in f["hint"] and f["col"] == 22
    case = next(c for c in CASES if c.name == "typo_column")
    root = apply(case, tmp_path / "shop2")
    _rc, findings = run_fc(capsys, root)
    f = next(f for f in findings if f["code"] == "BLK140" and "fct_orders" in f["path"])
    assert f["hint"] == "did you mean 'status'?" and (f["line"], f["col"]) == (20, 12)
    # the rename flows on: the child that reads `status` from fct_orders breaks too
    f = next(f for f in findings if f["code"] == "BLK140" and "dim_customers" in f["path"])
    assert f["hint"] == "did you mean 'statuz'?" and (f["line"], f["col"]) == (8, 21)


def test_missing_package_is_info_once_per_model(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    case = Case("pkg", {
        "packages.yml": (None, "packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n"),
        "models/staging/stg_keys.sql": (None, "select {{ dbt_utils.generate_surrogate_key(['id']) }}"
                                              " as k, {{ dbt_utils.star(ref('raw_orders')) }}\n"
                                              "from {{ ref('raw_orders') }}\n"),
    })
    root = apply(case, tmp_path / "shop")
    rc, findings = run_fc(capsys, root)
    assert rc == 0
    assert [(f["code"], f["severity"], f["path"]) for f in findings] == [
        ("BLK103", "info", "models/staging/stg_keys.sql")]
    assert "dbt_utils" in findings[0]["message"] and "dbt deps" in findings[0]["message"]


def test_pre_commit_mode_checks_only_affected(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    case = Case("two", {M: (None, None)} if False else {
        "models/staging/stg_events.sql": ("status as event_type", "statuz as event_type"),
        "models/marts/dim_customers.sql": ("c.email,", "c.emial,"),
    })
    root = apply(case, tmp_path / "shop")
    # stg_events reads a source with declared columns: not trusted by default
    _rc, findings = run_fc(capsys, root, ["models/staging/stg_customers.sql"])
    assert {f["path"] for f in serious(findings)} == {"models/marts/dim_customers.sql"}
    _rc, findings = run_fc(capsys, root, ["models/staging/stg_orders.sql"])
    assert serious(findings) == []


M = "models/marts/"


def test_trust_source_columns_policy(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    case = Case("src", {"models/staging/stg_events.sql": ("status as event_type", "statuz as event_type"),
                        "bulwark.yml": ("dialect: duckdb\n", "dialect: duckdb\nfast_compile:\n"
                                        "  trust_source_columns: true\n")})
    root = apply(case, tmp_path / "shop")
    _rc, findings = run_fc(capsys, root)
    assert [(f["code"], f["line"], f["col"]) for f in findings] == [("BLK140", 4, 5)]


def test_bad_input_never_crashes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    case = Case("bad", {
        "models/staging/weird.sql": (None, "select '\u00e9t\u00e9' as x, {{ ref( }}\n"),
        "models/staging/binary.sql": (None, "select 1"),
        "models/staging/bad.yml": (None, "models:\n  - name: [unclosed\n"),
        "macros/broken.sql": (None, "{% macro x( %}\n"),
    })
    root = apply(case, tmp_path / "shop")
    (root / "models/staging/binary.sql").write_bytes(b"select \xff\xfe from x")
    rc, findings = run_fc(capsys, root)
    codes = {f["code"] for f in findings}
    assert rc == 1 and {"BLK020", "BLK001", "BLK003", "BLK101"} <= codes


# ----------------------------------------------------------------------------- positions


def _render(raw: str, **ctx: object) -> str:
    import jinja2

    return jinja2.Environment(keep_trailing_newline=True,
                              extensions=["jinja2.ext.do"]).from_string(raw).render(**ctx)


def _check(raw: str, rendered: str, needle: str, expect_raw: str, nth: int = 0) -> None:
    tm = TemplateMap(raw, rendered)
    off = -1
    for _ in range(nth + 1):
        off = rendered.find(needle, off + 1)
    assert off >= 0
    line, col = tm.position(off)
    at = raw.splitlines()[line - 1][col - 1:]
    assert at.startswith(expect_raw), (needle, line, col, at)


def test_position_literal_and_expression() -> None:
    raw = "select\n  a,\n  {{ f('b') }} as b\nfrom {{ t }} where x = 1\n"
    rendered = _render(raw, f=lambda v: f"upper({v})", t="__ref__t")
    _check(raw, rendered, "where x", "where x")
    _check(raw, rendered, "upper(b)", "{{ f('b') }}")
    _check(raw, rendered, "__ref__t", "{{ t }}")
    _check(raw, rendered, "a,", "a,")


def test_position_loops_map_each_iteration_to_the_body() -> None:
    raw = "select\n{% for c in ['x', 'y', 'z'] %}  sum({{ c }}) as total_{{ c }},\n{% endfor %}  1 as one\nfrom t\n"
    rendered = _render(raw)
    _check(raw, rendered, "as total_", "as total_", nth=2)
    _check(raw, rendered, "1 as one", "1 as one")
    _check(raw, rendered, "from t", "from t")


def test_position_if_branches_and_whitespace_control() -> None:
    raw = ("select id\n{%- if flag %}\n  , flag_a\n{%- else %}\n  , flag_b\n{%- endif %}\n"
           "from {{- ' ' ~ 'tbl' -}}\n  where ok\n")
    for flag, picked in ((True, ", flag_a"), (False, ", flag_b")):
        rendered = _render(raw, flag=flag)
        _check(raw, rendered, picked, picked)
        _check(raw, rendered, "where ok", "where ok")
        _check(raw, rendered, "tbl", "{{- ' ' ~ 'tbl' -}}")


def test_position_macro_output_maps_to_its_call() -> None:
    raw = ("{% macro cols(n) %}{% for i in range(n) %}c{{ i }}, {% endfor %}{% endmacro %}"
           "select {{ cols(3) }} last_col\nfrom x\n")
    rendered = _render(raw)
    _check(raw, rendered, "c2", "{{ cols(3) }}")
    _check(raw, rendered, "last_col", "last_col")


def test_position_through_compile_node(tmp_path: Path) -> None:
    from dbt_bulwark.project.fs import WorkTree
    from dbt_bulwark.project.loader import load_project
    from dbt_bulwark.sql.compiler import compile_node

    project = load_project(WorkTree(SHOP), "")
    node = project.nodes["model.shop.dim_customers"]
    compiled = compile_node(project, node)
    assert compiled.sql is not None
    off = compiled.sql.find("as returned_orders")
    assert compiled.source_position(off) == (8, 59)   # the loop body's literal text
    off = compiled.sql.find("__ref__fct_orders")
    assert compiled.source_position(off) == (13, 11)  # the {{ ref('fct_orders') }}


# ----------------------------------------------------------------------------- SQL verdict


def test_sql_verdicts_never_come_from_sqlglot_alone() -> None:
    from dbt_bulwark.sql.sql_verdicts import sql_syntax_error

    # valid in Snowflake, sqlglot-snowflake reads it
    assert sql_syntax_error("select v:a::string as a from t", "snowflake", "profile") is None
    # guess mode: valid in one common dialect is enough
    assert sql_syntax_error("select v:a::string as a from t", "duckdb", "guess") is None
    # a placeholder glued to a keyword: dbt's quoted relation name would be valid
    assert sql_syntax_error("select * from t left join__ref__x on 1=1", "postgres",
                            "profile") is None
    v = sql_syntax_error("select a from t where (a = 1", "snowflake", "profile")
    assert v is not None and v.certain and v.offset == 22
    v = sql_syntax_error("select 'abc from t", "bigquery", "guess")
    assert v is not None and v.certain and v.offset == 7
    v = sql_syntax_error("select a b c from t", "duckdb", "bulwark.yml")
    assert v is not None and v.certain
    # DuckDB accepts trailing commas: so does a DuckDB project
    assert sql_syntax_error("select a, from t", "duckdb", "profile") is None


def test_duckdb_verdict_asks_the_engine_without_the_package_layer() -> None:
    """A DuckDB project's syntax verdict asks DuckDB's engine (``_duckdb``, duckdb >= 1.4)
    without importing the ``duckdb`` package's Python layer (~0.1 s on every commit that
    changes a model); the verdicts are DuckDB's."""
    from conftest import imported_by

    code = ("from dbt_bulwark.sql.sql_verdicts import _duckdb_parse as p\n"
            "assert p('select 1') is None\n"
            "err = p('select a b c from t')\n"
            "assert isinstance(err, tuple) and err[0] == 11, err\n")
    assert imported_by(code, ["duckdb"]) == []
    # where the bare engine cannot be imported (duckdb < 1.4), the package gives the same
    # verdicts (it is imported first here: it loads the engine, then hidden)
    assert imported_by("import sys, duckdb\nsys.modules['_duckdb'] = None\n" + code,
                       ["duckdb"]) == ["duckdb"]


def test_macro_parameter_left_out_is_not_an_unknown_macro(tmp_path: Path) -> None:
    """`{{ money() }}` where `money(col)` ignores its parameter: dbt renders it fine."""
    from dbt_bulwark.project.fs import WorkTree
    from dbt_bulwark.project.loader import load_project
    from dbt_bulwark.sql.compiler import compile_node

    (tmp_path / "models").mkdir()
    (tmp_path / "macros").mkdir()
    (tmp_path / "dbt_project.yml").write_text("name: p\n")
    (tmp_path / "macros" / "m.sql").write_text(
        "{% macro money(col) -%}\n::decimal(16,3)\n{%- endmacro %}\n")
    (tmp_path / "models" / "a.sql").write_text("select 1{{ money() }} as x\n")
    project = load_project(WorkTree(tmp_path), "")
    compiled = compile_node(project, project.nodes["model.p.a"])
    assert compiled.undefined == []
    assert compiled.sql is not None and "::decimal(16,3)" in compiled.sql


def test_parallel_all_files_gives_the_same_findings(capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`--all-files` on many nodes forks one worker per core; the verdict must not change."""
    import dbt_bulwark.checks.fast_compile as fc

    faults = [c for c in CASES if c.files and len(c.edits) == 1]
    edits: dict = {}
    for case in faults:
        for rel, change in case.edits.items():
            edits.setdefault(rel, change)   # one edit per file, several faults at once
    root = apply(Case("many", edits), tmp_path / "shop")
    _rc, serial = run_fc(capsys, root)
    monkeypatch.setattr(fc, "PARALLEL_MIN_NODES", 1)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    # what each process compiles and infers, in a file they all append to
    import dbt_bulwark.sql.columns as columns
    import dbt_bulwark.sql.compiler as compiler

    log = tmp_path / "work.log"
    real_compile, real_infer = compiler.compile_node, columns.infer_output_columns

    def compile_spy(project: Any, node: Any, **kw: Any) -> Any:
        with log.open("a") as out:
            out.write(f"compile {node.unique_id} {kw} {os.getpid()}\n")
        return real_compile(project, node, **kw)

    def infer_spy(sql: str, *a: Any, **kw: Any) -> Any:
        with log.open("a") as out:
            out.write(f"infer {hash(sql)} {a[1:]} {kw}\n")
        return real_infer(sql, *a, **kw)

    monkeypatch.setattr(compiler, "compile_node", compile_spy)
    monkeypatch.setattr(columns, "infer_output_columns", infer_spy)
    _rc, parallel = run_fc(capsys, root)
    assert serial, "the fixture should produce findings"
    key = lambda f: (f["path"], f["line"], f["col"], f["code"], f["message"])  # noqa: E731
    assert sorted(map(key, parallel)) == sorted(map(key, serial))
    # along the ref graph: no node compiled, no SQL inferred, in two processes; the
    # children did the work (this process hands it out)
    work = [line.rsplit(" ", 1)[0] if line.startswith("compile") else line
            for line in log.read_text().splitlines()]
    assert work and len(work) == len(set(work)), [w for w in work if work.count(w) > 1]
    pids = {line.rsplit(" ", 1)[1] for line in log.read_text().splitlines()
            if line.startswith("compile")}
    assert len(pids) == 2 and str(os.getpid()) not in pids, pids


def test_ref_in_generic_test_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """`relationships: {to: ref('missing')}`: dbt warns and skips the test; so do we, at the
    line and column of the ref() in the YAML."""
    root = tmp_path / "p"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: p\n")
    (root / "models" / "a.sql").write_text("select 1 as id\n")
    (root / "models" / "s.yml").write_text(
        "version: 2\nmodels:\n  - name: a\n    columns:\n      - name: id\n"
        "        data_tests:\n          - relationships:\n              arguments:\n"
        "                to: ref('missing_model')\n                field: id\n")
    rc, findings = run_fc(capsys, root)
    hits = [f for f in findings if f["code"] == "BLK110"]
    assert [(h["path"], h["line"], h["col"], h["severity"]) for h in hits] == \
        [("models/s.yml", 9, 21, "warning")]
    assert rc == 0
    # pre-commit mode: only when the YAML that calls ref() is among the changed files
    rc, findings = run_fc(capsys, root, ["models/a.sql"])
    assert not [f for f in findings if f["code"] == "BLK110"]
    rc, findings = run_fc(capsys, root, ["models/s.yml"])
    assert [f["code"] for f in findings if f["code"] == "BLK110"] == ["BLK110"]
