"""Fast tests of `bulwark ci` and the baselines logic: no dbt invocation.

The end-to-end tests that run dbt on the sample project are in test_ci_e2e.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import shutil
import subprocess
from pathlib import Path

import pytest

from dbt_bulwark.cli import _Parser
from dbt_bulwark.commands import ci as ci_cmd
from dbt_bulwark.findings import UsageError
from dbt_bulwark.policy import CiSection, Policy
from dbt_bulwark.project.model import Node
from dbt_bulwark.run import baseline as bl
from dbt_bulwark.run import ci

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "jaffle_bulwark"


def _args(*argv: str) -> argparse.Namespace:
    parser = _Parser(prog="bulwark ci")
    ci_cmd.add_arguments(parser)
    return parser.parse_args(list(argv))


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t",
                    "-c", "init.defaultBranch=main", *args], cwd=cwd, check=True,
                   capture_output=True)


def _copy_sample(dest: Path, git: bool = True) -> Path:
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns(
        "target", "logs", ".bulwark-cache", "*.duckdb"))
    if git:
        _git(dest, "init", "-q")
        _git(dest, "add", "-A")
        _git(dest, "commit", "-qm", "sample")
    return dest


def _run(argv: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.chdir(cwd)
    out, err = io.StringIO(), io.StringIO()
    code = ci.run_ci(_args(*argv), out, err)
    return code, out.getvalue()


# ----------------------------------------------------------------------------- layers

def test_layer_choice() -> None:
    pol = Policy()
    assert ci.choose_layers(_args(), pol) == list(ci.STATIC)
    assert ci.choose_layers(_args("--fast"), pol) == list(ci.STATIC)
    assert ci.choose_layers(_args("--full"), pol) == list(ci.LAYERS)
    assert ci.choose_layers(_args("--layers", "baselines,contracts"), pol) == \
        ["contracts", "baselines"]
    with pytest.raises(UsageError, match="unknown layer"):
        ci.choose_layers(_args("--layers", "contracts,nope"), pol)
    pol = Policy(ci=CiSection(layers=["fast-compile", "data-quality"]))
    assert ci.choose_layers(_args(), pol) == ["fast-compile", "data-quality"]
    assert ci.choose_layers(_args("--fast"), pol) == list(ci.STATIC)


def test_fast_and_full_are_exclusive() -> None:
    with pytest.raises(SystemExit) as exc:
        _args("--fast", "--full")
    assert exc.value.code == 2


def test_verdict_skipped_is_not_passed() -> None:
    passed = ci.LayerResult("a", "passed")
    skipped = ci.LayerResult("b", "skipped", summary="dbt-core is not installed")
    assert ci.verdict([passed]) == 0
    assert ci.verdict([passed, skipped]) == 1
    assert ci.verdict([passed, skipped], allow_skipped=True) == 0
    assert ci.verdict([passed, ci.LayerResult("c", "failed")], allow_skipped=True) == 1


def test_summary_formats_name_the_failing_layer() -> None:
    results = [ci.LayerResult("contracts", "passed", 0.2, "0 error(s)"),
               ci.LayerResult("data-quality", "failed", 3.0, "1 ERROR test failure(s)")]
    text = ci.summary_text(results, 3.2, 1)
    assert "  data-quality  FAIL" in text
    assert "FAILED (not passed: data-quality)" in text
    md = ci.summary_markdown(results, 3.2, 1, "merge base")
    assert md.startswith("## bulwark ci: ❌ failed")
    assert "| data-quality | ❌ failed | 3.0s | 1 ERROR test failure(s) |" in md


def test_fast_on_sample_git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _copy_sample(tmp_path / "repo")
    code, out = _run(["--all-files", "-q"], repo, monkeypatch)
    assert code == 0, out
    assert "bulwark ci PASSED" in out
    for name in ci.STATIC:
        assert f"== {name}: PASSED" in out


def test_changed_files_scope_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _copy_sample(tmp_path / "repo")
    sql = repo / "models" / "marts" / "revenue_by_month.sql"
    sql.write_text(sql.read_text().replace("count(*) as order_count",
                                           "count(*) as order_count, 1 as extra"))
    code, out = _run(["--format", "json", "-q"], repo, monkeypatch)
    data = json.loads(out)
    assert data["base_label"].startswith("merge base of HEAD and main")
    assert [layer["layer"] for layer in data["layers"]] == list(ci.STATIC)
    assert "1 changed file(s)" in data["layers"][0]["summary"]
    assert code == 0, out


def test_not_a_git_repo_has_no_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proj = _copy_sample(tmp_path / "plain", git=False)
    monkeypatch.setattr("dbt_bulwark.project.workspace.find_repo_root", lambda start=None: proj)
    code, out = _run(["-q", "--repo-root", str(proj)], proj, monkeypatch)
    assert code == 0, out
    assert "base: no base (not a git repository); all files" in out
    assert "== schema-diff: PASSED" in out and "nothing to compare" in out
    with pytest.raises(UsageError, match="needs a git repository"):
        _run(["-q", "--repo-root", str(proj), "--base", "HEAD"], proj, monkeypatch)


def test_static_layer_not_available_is_skipped(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _copy_sample(tmp_path / "repo")
    monkeypatch.setitem(ci.STATIC_LAYERS, "contracts",
                        ci.StaticLayer("dbt_bulwark.no_such_hook", "check",
                                       "dbt_bulwark.commands.check_contracts"))
    code, out = _run(["--all-files", "-q"], repo, monkeypatch)
    assert code == 1
    assert "== contracts: SKIPPED" in out and "not available" in out
    code, out = _run(["--all-files", "-q", "--allow-skipped"], repo, monkeypatch)
    assert code == 0


def test_static_findings_fail_the_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _copy_sample(tmp_path / "repo")
    sql = repo / "models" / "marts" / "revenue_by_month.sql"
    sql.write_text(sql.read_text().replace("ref('orders')", "ref('orderz')"))
    code, out = _run(["-q", "--fail-fast"], repo, monkeypatch)
    assert code == 1
    assert "== fast-compile: FAILED" in out
    assert "models/marts/revenue_by_month.sql:" in out
    assert "critical-tags  -  " in out   # not run after --fail-fast


def test_execution_layers_skip_without_dbt(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _copy_sample(tmp_path / "repo")
    monkeypatch.setattr("dbt_bulwark.run.dbt_exec.dbt_missing_reason",
                        lambda adapter=None: "dbt-core is not installed in this environment: "
                        f"pip install 'dbt-bulwark[dbt]'{' dbt-' + adapter if adapter else ''}")
    # issue 16: the dbt layers without dbt are a usage error, one line naming the package
    code, out = _run(["--layers", "contracts,build-empty,baselines", "-q"], repo, monkeypatch)
    assert code == 2
    assert "== build-empty" not in out
    # the static layers alone need no dbt
    code, out = _run(["--layers", "contracts", "-q"], repo, monkeypatch)
    assert code == 0, out


def test_markdown_summary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _copy_sample(tmp_path / "repo")
    summary = tmp_path / "summary.md"
    code, out = _run(["--format", "markdown", "--summary-file", str(summary), "-q"], repo,
                     monkeypatch)
    assert code == 0
    assert out.startswith("## bulwark ci: ✅ passed")
    assert summary.read_text() == out


# ----------------------------------------------------------------------------- baselines

def _node() -> Node:
    return Node("model.p.orders", "model", "orders", "p", "orders.sql",
                "models/orders.sql", "models/orders.sql", ["p", "orders"])


def _snap(rows: int = 10, amount_sum: float = 100.5, hash_: str = "42",
          extra: bool = False) -> bl.Snapshot:
    cols = [{"name": "id", "type": "INTEGER", "null_count": 0, "distinct_count": rows,
             "min": 1, "max": rows, "sum": rows * (rows + 1) // 2},
            {"name": "amount", "type": "DOUBLE", "null_count": 1, "distinct_count": 9,
             "min": 0.5, "max": 20.25, "sum": amount_sum},
            {"name": "status", "type": "VARCHAR", "null_count": 0, "distinct_count": 3,
             "min": "completed", "max": "shipped"}]
    if extra:
        cols.append({"name": "note", "type": "VARCHAR", "null_count": 0})
    return bl.Snapshot("orders", None, "model.p.orders", "duckdb", rows, hash_, cols)


def test_baseline_json_is_stable_and_round_trips() -> None:
    text = bl.render(_snap())
    assert list(json.loads(text)) == ["bulwark_baseline", "model", "unique_id", "adapter",
                                      "row_count", "content_hash", "columns"]
    assert text.endswith("}\n")
    again = bl.Snapshot.from_json(json.loads(text))
    assert bl.render(again) == text
    with pytest.raises(ValueError):
        bl.Snapshot.from_json({"model": "x"})


def test_compare_identical_and_within_float_tolerance() -> None:
    tol = bl.Tolerances(float_rel=1e-6, rows=0)
    assert not bl.compare(_node(), _snap(), _snap(), tol, "b.json").findings
    near = _snap(amount_sum=100.5 * (1 + 1e-9))
    assert not bl.compare(_node(), _snap(), near, tol, "b.json").findings
    far = _snap(amount_sum=101.0)
    diff = bl.compare(_node(), _snap(), far, tol, "b.json")
    assert [f.code for f in diff.findings] == ["BLK532"]
    assert "column amount: sum 100.5 -> 101" in diff.lines[0]
    assert "bulwark baseline capture orders" in diff.findings[0].hint


def test_compare_schema_rows_and_hash() -> None:
    tol = bl.Tolerances()
    diff = bl.compare(_node(), _snap(), _snap(extra=True), tol, "b.json")
    assert [f.code for f in diff.findings] == ["BLK530"]
    assert diff.lines == ["column note added (VARCHAR)"]
    diff = bl.compare(_node(), _snap(extra=True), _snap(), tol, "b.json")
    assert diff.lines == ["column note removed (was VARCHAR)"]
    diff = bl.compare(_node(), _snap(rows=10), _snap(rows=12), tol, "b.json")
    assert "BLK531" in {f.code for f in diff.findings}
    assert diff.lines[0] == "row count 10 -> 12 (+2, +20%)"
    diff = bl.compare(_node(), _snap(hash_="1"), _snap(hash_="2"), tol, "b.json")
    assert [f.code for f in diff.findings] == ["BLK533"]


def test_row_count_tolerance_absolute_and_relative() -> None:
    base, grown = _snap(rows=100), _snap(rows=103, hash_="other")
    assert bl.compare(_node(), base, grown, bl.Tolerances(rows=5), "b").findings == [] or \
        all(f.code != "BLK531" for f in bl.compare(_node(), base, grown,
                                                   bl.Tolerances(rows=5), "b").findings)
    codes = {f.code for f in bl.compare(_node(), base, grown, bl.Tolerances(rows=2), "b").findings}
    assert "BLK531" in codes
    rel = {f.code for f in bl.compare(_node(), base, grown, bl.Tolerances(rows=0.05), "b").findings}
    assert "BLK531" not in rel and "BLK533" not in rel   # hash not compared when drift allowed


def test_kind_of_types() -> None:
    assert bl.kind_of("INTEGER") == "number"
    assert bl.kind_of("DECIMAL(18,2)") == "number"
    assert bl.kind_of("DOUBLE") == "float"
    assert bl.kind_of("character varying(256)") == "ordered"
    assert bl.kind_of("DATE") == "ordered"
    assert bl.kind_of("STRUCT(a INTEGER)") == "other"
    assert bl.kind_of("INTEGER[]") == "other"


def test_stats_sql_is_one_aggregate_query() -> None:
    sql = bl.stats_sql(_node(), [("id", "INTEGER"), ("amount", "DOUBLE"), ("tags", "VARCHAR[]")],
                       "duckdb")
    assert sql.count("from {{ ref(\"orders\") }}") == 1
    assert "substr(md5(" in sql and "::bigint)" in sql   # the 60 bits PostgreSQL sums too
    assert "format('{:.10g}'" in sql          # floats hashed rounded
    assert "min({{ adapter.quote(\"tags\") }})" not in sql   # no min/max of lists
    assert bl._hash_sql("mysql", [("id", "INTEGER")]) is None


def test_baseline_file_names() -> None:
    node = _node()
    assert bl.file_name(node) == "orders.json"
    node.version = 2
    assert bl.file_name(node) == "orders.v2.json"


def test_write_atomic(tmp_path: Path) -> None:
    path = tmp_path / "d" / "x.json"
    assert bl.write_atomic(path, "a\n") is True
    assert bl.write_atomic(path, "a\n") is False
    assert path.read_text() == "a\n"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_empty_alias_after_ref_is_recognised() -> None:
    """dbt-postgres 1.11's message for `{{ ref('x') }} as o` under `dbt build --empty`
    (seen on the sample before it read refs in CTEs): BLK513, not a model bug."""
    from dbt_bulwark.run.quality import _EMPTY_ALIAS

    msg = ('Database Error in model orders (models/marts/orders.sql) syntax error at or near '
           '"as" LINE 19: ...orders" where false limit 0) _dbt_limit_subq_stg_orders as o ^')
    assert _EMPTY_ALIAS.search(msg)
    assert _EMPTY_ALIAS.search('LINE 3: ... limit 0) _dbt_limit_subq_stg_orders o ^')
    assert not _EMPTY_ALIAS.search('syntax error at or near "frm" LINE 2: frm x ^')


def test_schema_diff_of_a_change_runs_beside_the_other_layers_with_the_same_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On two cores the schema-diff layer of a change runs in a forked child while the
    other static layers run here; its findings and cache entries come back, and the
    report is the one a single core gives."""
    repo = _copy_sample(tmp_path / "repo")
    sql = repo / "models" / "marts" / "revenue_by_month.sql"
    sql.write_text(sql.read_text().replace("count(*) as order_count", "count(*) as n_orders"))
    where = tmp_path / "pids"
    real = ci.run_static

    def recorded(name: str, plan: ci.Plan, first: bool) -> ci.LayerResult:
        with open(where, "a", encoding="utf-8") as fh:
            fh.write(f"{name} {os.getpid()}\n")
        return real(name, plan, first)

    monkeypatch.setattr(ci, "run_static", recorded)
    reports, saved = {}, {}
    for cores in (1, 2):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        shutil.rmtree(repo / ".bulwark-cache", ignore_errors=True)
        monkeypatch.setattr("dbt_bulwark.cache._TEMPLATES", {})   # each run compiles anew
        where.unlink(missing_ok=True)
        code, out = _run(["--format", "json", "-q"], repo, monkeypatch)
        data = json.loads(out)
        reports[cores] = (code, [(x["layer"], x["status"], x["findings"])
                                 for x in data["layers"]])
        ran = dict(line.split() for line in where.read_text().splitlines())
        beside = ran["schema-diff"] != str(os.getpid())
        assert beside == (cores == 2 and hasattr(os, "fork")), ran
        assert ran["fast-compile"] == str(os.getpid())
        saved[cores] = {(p.name, key) for p in (repo / ".bulwark-cache").rglob("*.pickle")
                        for key in pickle.loads(p.read_bytes())["entries"]}
    assert reports[1] == reports[2]
    assert saved[1] <= saved[2]   # what the child cached came back and was saved
    code, layers = reports[2]
    assert code == 1 and layers[-1][:2] == ("schema-diff", "failed"), layers
    assert any("order_count" in f["message"] for f in layers[-1][2]), layers[-1]
