"""Conventions users already know (issue 13): inline suppressions, code selection,
validated policy values, SARIF 2.1.0, 1-based columns, the totals line, human
messages, one "no profile" note per run; and [tool.bulwark] read with tomli."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dbt_bulwark import cli
from dbt_bulwark.checks.suppressions import parse
from dbt_bulwark.findings import Finding, humane, report, to_sarif, totals_line

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "tests" / "data" / "sarif-schema-2.1.0.json"

PROJECT = {
    "dbt_project.yml": "name: tiny\nversion: '1.0.0'\nconfig-version: 2\nprofile: tiny\n",
    "models/stg.sql": "select 1 as id, 2 as amount\n",
    # BLK140 on line 3 (col 5)
    "models/a.sql": "select\n    id,\n    amuont\nfrom {{ ref('stg') }}\n",
    # BLK110 on line 1
    "models/b.sql": "select * from {{ ref('nope') }}\n",
    "models/schema.yml": (
        "version: 2\n"
        "models:\n"
        "  - name: a\n"                       # 3: BLK302/303/304 (critical-tags), BLK201
        "    config:\n"
        "      tags: [critical]\n"
        "    columns:\n"
        "      - name: id\n"
        "  - name: stg\n"                     # 8
        "    description: staging\n"
    ),
}


def make_repo(tmp: Path, files: dict[str, str] | None = None, **overrides: str) -> Path:
    repo = tmp / "repo"
    content = dict(PROJECT if files is None else files)
    content.update({k.replace("__", "/").replace("_DOT_", "."): v for k, v in overrides.items()})
    for rel, text in content.items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def write(repo: Path, rel: str, text: str) -> None:
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text(text, encoding="utf-8")


def run(repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        *argv: str) -> tuple[int, str, str]:
    monkeypatch.chdir(repo)
    capsys.readouterr()
    code = cli.main([*argv, "--no-cache"])
    out, err = capsys.readouterr()
    return code, out, err


def codes(out: str) -> list[str]:
    return re.findall(r"^\S+:\d+:\d+: (BLK\d{3})", out, re.M)


# ----------------------------------------------------------------------------- parsing

def test_parse_sql_forms() -> None:
    text = ("select a, -- bulwark: ignore[BLK140]\n"            # 1: its own line
            "  -- bulwark: ignore[BLK140, blk2]\n"              # 2: alone: 2 and 3
            "  b\n"
            "{# bulwark: ignore[BLK1] #}\n"                     # 4: Jinja, alone: 4 and 5
            "c\n"
            "-- bulwark: ignore-file[BLK131]\n"                 # 6: whole file
            "-- bulwark: ignore\n")                             # 7: bare
    ds = parse("m.sql", text)
    assert [(d.line, d.kind, d.codes, d.first, d.last) for d in ds] == [
        (1, "ignore", ("BLK140",), 1, 1),
        (2, "ignore", ("BLK140", "BLK2"), 2, 3),
        (4, "ignore", ("BLK1",), 4, 5),
        (6, "ignore-file", ("BLK131",), 0, 1 << 30),
        (7, "ignore", (), 7, 8),
    ]
    # a YAML-style comment means nothing in SQL, a SQL one nothing in YAML
    assert parse("m.sql", "# bulwark: ignore[BLK140]\n") == []
    assert parse("m.yml", "x: 1 -- bulwark: ignore[BLK140]\n") == []


def test_parse_yaml_entry_covers_the_entry() -> None:
    text = ("models:\n"
            "  - name: a  # bulwark: ignore[BLK211]\n"      # 2: entry line -> lines 2..6
            "    config:\n"
            "      contract: {enforced: true}\n"
            "    columns:\n"
            "      - name: ghost\n"
            "  - name: b\n"                                  # 7: next entry, not covered
            "  # bulwark: ignore[BLK302]\n"                  # 8: alone above an entry
            "  - name: c\n"
            "    description: x\n"
            "sources: []\n")
    ds = parse("m.yml", text)
    assert [(d.line, d.first, d.last) for d in ds] == [(2, 2, 6), (8, 8, 10)]


def test_unknown_codes_are_kept_apart() -> None:
    (d,) = parse("m.sql", "-- bulwark: ignore[BLK999, E501]\n")
    assert d.codes == () and d.bad == ("BLK999", "E501")


# ----------------------------------------------------------------------------- suppression, end to end

def test_sql_same_line_and_line_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    code, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    assert code == 1 and sorted(codes(out)) == ["BLK110", "BLK140"]
    write(repo, "models/a.sql",
          "select\n    id,\n    amuont -- bulwark: ignore[BLK140]\nfrom {{ ref('stg') }}\n")
    write(repo, "models/b.sql", "-- bulwark: ignore[BLK110]\nselect * from {{ ref('nope') }}\n")
    code, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    assert code == 0, out
    assert codes(out) == [] and "All checks passed" in out


def test_jinja_comment_prefix_and_ignore_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    write(repo, "models/a.sql",
          "select\n    id,\n    {# bulwark: ignore[BLK1] #} amuont\nfrom {{ ref('stg') }}\n")
    write(repo, "models/b.sql",
          "select * from {{ ref('nope') }}\n-- bulwark: ignore-file[BLK110, BLK140]\n")
    code, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    # b.sql's ignore-file names BLK140 too, which nothing reports there: BLK041
    assert codes(out) == ["BLK041"], out
    assert "unused suppression: BLK140" in out and code == 0   # a warning does not fail


def test_yaml_line_and_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    code, out, _ = run(repo, monkeypatch, capsys, "check-critical-tags", "--all-files")
    assert sorted(codes(out)) == ["BLK302", "BLK303", "BLK304"]
    schema = PROJECT["models/schema.yml"].replace(
        "  - name: a\n", "  - name: a  # bulwark: ignore[BLK302,BLK303]\n")
    write(repo, "models/schema.yml", schema)
    code, out, _ = run(repo, monkeypatch, capsys, "check-critical-tags", "--all-files")
    assert codes(out) == ["BLK304"]


def test_yaml_entry_covers_findings_inside_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    schema = ("version: 2\nmodels:\n"
              "  - name: stg\n"
              "    config:\n"
              "      contract: {enforced: true}\n"
              "    columns:\n"
              "      - name: id\n        data_type: integer\n"
              "      - name: amount\n        data_type: integer\n"
              "      - name: ghost\n        data_type: integer\n")   # BLK211 at line 11
    repo = make_repo(tmp_path, {**PROJECT, "models/schema.yml": schema,
                                "models/a.sql": "select 1 as id\n",
                                "models/b.sql": "select 2 as id\n"})
    code, out, _ = run(repo, monkeypatch, capsys, "check-contracts", "--all-files")
    assert "models/schema.yml:11:" in out and "BLK211" in out
    write(repo, "models/schema.yml",
          schema.replace("  - name: stg\n", "  - name: stg  # bulwark: ignore[BLK211]\n"))
    code, out, _ = run(repo, monkeypatch, capsys, "check-contracts", "--all-files")
    assert code == 0 and "BLK211" not in out, out


def test_bare_ignore_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    write(repo, "models/b.sql", "select * from {{ ref('nope') }} -- bulwark: ignore\n")
    code, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "models/b.sql")
    assert codes(out) == ["BLK040"]
    assert "models/b.sql:1:" in out and "[warning]" in out and code == 0


def test_unused_only_when_the_file_was_checked_and_the_hook_reports_the_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    write(repo, "models/stg.sql", "select 1 as id, 2 as amount -- bulwark: ignore[BLK130]\n")
    # stg.sql not among the changed files: not checked, not reported
    code, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "models/b.sql")
    assert "BLK041" not in out
    code, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "models/stg.sql")
    assert codes(out).count("BLK041") == 1 and "models/stg.sql:1:29: BLK041" in out
    # check-critical-tags never reports BLK130: not its business
    code, out, _ = run(repo, monkeypatch, capsys, "check-critical-tags", "models/stg.sql")
    assert "BLK041" not in out
    # unknown codes are reported
    write(repo, "models/stg.sql", "select 1 as id, 2 as amount -- bulwark: ignore[BLK1400]\n")
    code, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "models/stg.sql")
    assert "names no known code: BLK1400" in out


def test_bulwark_check_goes_through_the_same_filter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    write(repo, "models/a.sql",
          "select\n    id,\n    amuont -- bulwark: ignore[BLK140]\nfrom {{ ref('stg') }}\n")
    code, out, _ = run(repo, monkeypatch, capsys, "check", "--all-files", "-q",
                       "--ignore", "BLK3,BLK2")
    assert "BLK140" not in out and "BLK110" in out
    assert not re.search(r"BLK[23]\d\d ", out)
    code, out, _ = run(repo, monkeypatch, capsys, "check", "--all-files", "-q",
                       "--select", "BLK3")
    assert set(codes(out)) == {"BLK302", "BLK303", "BLK304"}


# ----------------------------------------------------------------------------- selection

def test_select_and_ignore_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    _, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files", "--select", "BLK11")
    assert codes(out) == ["BLK110"]
    _, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files", "--ignore", "BLK110")
    assert codes(out) == ["BLK140"]
    _, out, _ = run(repo, monkeypatch, capsys, "check-critical-tags", "--all-files",
                    "--ignore", "BLK302", "--ignore", "BLK303")
    assert codes(out) == ["BLK304"]
    code, _, err = run(repo, monkeypatch, capsys, "fast-compile", "--select", "E501")
    assert code == 2 and "unknown code 'E501'" in err


def test_select_ignore_and_per_path_in_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    write(repo, "bulwark.yml", "ignore: [BLK110]\n")
    _, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    assert codes(out) == ["BLK140"]
    write(repo, "bulwark.yml", "select: [BLK11]\n")
    _, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    assert codes(out) == ["BLK110"]
    write(repo, "bulwark.yml", 'per_path_ignores:\n  "models/a*.sql": [BLK140]\n')
    _, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    assert codes(out) == ["BLK110"]


def test_per_project_policy_in_a_monorepo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = {f"one/{k}": v for k, v in PROJECT.items()}
    files.update({f"two/{k}": v.replace("name: tiny", "name: tiny2") for k, v in PROJECT.items()})
    files["two/bulwark.yml"] = 'per_path_ignores:\n  "models/b.sql": [BLK110]\n'
    repo = make_repo(tmp_path, files)
    _, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    assert "one/models/b.sql:1:18: BLK110" in out
    assert "two/models/b.sql" not in out and "two/models/a.sql:3:5: BLK140" in out


# ----------------------------------------------------------------------------- policy values

BAD_VALUES = [
    ("fail_on: warnings\n", 1, "fail_on", "allowed: error, warning, info"),
    ("dialect: snowflak\n", 1, "dialect", "did you mean 'snowflake'"),
    ("exclude: []\ncritical:\n  select: 'tagg:x'\n", 3, "critical.select",
     "unknown selector method 'tagg'"),
    ("contracts:\n  select: ['tag:a', '+']\n", 2, "contracts.select", "cannot parse selector"),
    ("schema_diff:\n  protected: 'confg.x:y'\n", 2, "schema_diff.protected", "unknown selector"),
    ("baselines:\n  select: 'acess:public'\n", 2, "baselines.select", "unknown selector"),
    ("data_quality:\n  select: 'x:y'\n", 2, "data_quality.select", "unknown selector"),
    ("ci:\n  layers: [fast-compile, lint]\n", 2, "ci.layers", "allowed: fast-compile"),
    ("ignore: [BLK999]\n", 1, "ignore", "unknown code 'BLK999'"),
    ("select: [W291]\n", 1, "select", "unknown code 'W291'"),
    ("per_path_ignores:\n  'models/**': [nope]\n", 2, "per_path_ignores", "unknown code"),
]


@pytest.mark.parametrize(("text", "line", "key", "allowed"), BAD_VALUES)
def test_bad_policy_values_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, line: int,
                                  key: str, allowed: str) -> None:
    repo = make_repo(tmp_path)
    write(repo, "bulwark.yml", text)
    code, out, err = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    assert code == 2, out + err
    assert f"bulwark.yml:{line}: `{key}`" in err and allowed in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["duckdb", "snowflake", "sqlserver", "synapse", "fabric",
                                  "trino", "spark", "databricks", "BigQuery", "tsql"])
def test_dialect_names_dbt_and_sqlglot_use_are_accepted(tmp_path: Path, name: str) -> None:
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.project.fs import WorkTree

    (tmp_path / "bulwark.yml").write_text(f"dialect: {name}\nfail_on: warning\n")
    assert load_policy(WorkTree(tmp_path)).dialect == name.lower()


def test_tool_bulwark_read_with_tomli_when_tomllib_is_absent(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import tomllib
    except ImportError:  # Python 3.10: tomli is the same parser
        import tomli as tomllib

    from dbt_bulwark.findings import UsageError
    from dbt_bulwark.policy import load_policy
    from dbt_bulwark.project.fs import WorkTree

    (tmp_path / "pyproject.toml").write_text('[tool.bulwark]\nfail_on = "warning"\n'
                                             'ignore = ["BLK131"]\n')
    # Python 3.10: no tomllib; tomli (declared for it) has the same API
    monkeypatch.setitem(sys.modules, "tomllib", None)
    monkeypatch.setitem(sys.modules, "tomli", tomllib)
    policy = load_policy(WorkTree(tmp_path))
    assert policy.fail_on == "warning" and policy.ignore == ["BLK131"]
    assert policy.sources == ["pyproject.toml"]
    # neither: an error that says what to do, never a silent default
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(UsageError, match="needs the `tomli` package"):
        load_policy(WorkTree(tmp_path))
    # a pyproject without [tool.bulwark] needs no TOML reader at all
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_policy(WorkTree(tmp_path)).sources == []


def test_tomli_is_declared_for_python_310() -> None:
    text = (REPO / "pyproject.toml").read_text()
    deps = text.split("dependencies = [", 1)[1].split("\n]", 1)[0]
    assert "tomli" in deps and "python_version < '3.11'" in deps
    dev = text.split("dev = [", 1)[1].split("\n]", 1)[0]
    assert "jsonschema" in dev and "jsonschema" not in deps


# ----------------------------------------------------------------------------- SARIF

def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_sarif_validates_against_the_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    write(repo, "models/stg.sql", "select 1 as id, 2 as amount -- bulwark: ignore[BLK130]\n")
    code, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files",
                       "--format", "sarif")
    assert code == 1
    log = json.loads(out)
    errors = sorted(_validator().iter_errors(log), key=str)
    assert not errors, "\n".join(str(e) for e in errors[:3])
    run_ = log["runs"][0]
    rules = {r["id"]: r for r in run_["tool"]["driver"]["rules"]}
    assert set(rules) == {"BLK110", "BLK140", "BLK041"}
    assert rules["BLK140"]["helpUri"].endswith("/docs/hooks/fast-compile.md#blk140")
    assert rules["BLK041"]["helpUri"].endswith("/docs/hooks/common.md#blk041")
    assert rules["BLK140"]["shortDescription"]["text"]
    by_rule = {r["ruleId"]: r for r in run_["results"]}
    loc = by_rule["BLK140"]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"] == "models/a.sql"
    assert loc["region"] == {"startLine": 3, "startColumn": 5}
    assert by_rule["BLK041"]["level"] == "warning" and by_rule["BLK140"]["level"] == "error"
    assert {r["baselineState"] for r in run_["results"]} == {"new"}
    # `bulwark check` writes SARIF too, through the same filter
    code, out, _ = run(repo, monkeypatch, capsys, "check", "--all-files", "-q",
                       "--format", "sarif")
    log2 = json.loads(out)
    assert not list(_validator().iter_errors(log2))
    assert "BLK302" in {r["ruleId"] for r in log2["runs"][0]["results"]}


def test_sarif_fingerprints_levels_and_baseline_state() -> None:
    a = Finding("models/x.sql", 3, 0, "BLK140", "column 'q' is not provided", node="model.p.x")
    moved = Finding("models/x.sql", 9, 4, "BLK140", "column 'q' is not provided",
                    node="model.p.x")
    whole = Finding("models/x.sql", 0, 0, "BLK213", "not inferred", "info")
    old = Finding("models/y.sql", 1, 1, "BLK110", "ref", "warning")
    object.__setattr__(old, "existing", True)      # marked by the regression baseline
    log = to_sarif([a, whole, old])
    assert not list(_validator().iter_errors(log))
    res = {r["ruleId"]: r for r in log["runs"][0]["results"]}
    assert res["BLK213"]["level"] == "note"
    assert res["BLK213"]["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 1, "startColumn": 1}
    assert res["BLK110"]["baselineState"] == "unchanged"
    assert res["BLK140"]["baselineState"] == "new"
    again = to_sarif([moved])["runs"][0]["results"][0]
    assert again["partialFingerprints"] == res["BLK140"]["partialFingerprints"]


def test_every_documented_code_is_in_the_catalogue() -> None:
    from dbt_bulwark.codes import CODES

    documented: dict[str, str] = {}
    for page in (REPO / "docs" / "hooks").glob("*.md"):
        for code in re.findall(r"^\| (BLK\d{3}) \|", page.read_text(encoding="utf-8"), re.M):
            documented[code] = page.stem
    assert documented == {c: v[0] for c, v in CODES.items()}
    emitted = set(re.findall(r'"(BLK\d{3})"', "".join(
        p.read_text(encoding="utf-8") for p in (REPO / "src" / "dbt_bulwark").rglob("*.py"))))
    assert emitted <= set(CODES), emitted - set(CODES)


# ----------------------------------------------------------------------------- output hygiene

def test_columns_are_one_based_on_known_lines() -> None:
    assert Finding("a.yml", 2, 0, "BLK001", "x").col == 1
    assert Finding("a.yml", 0, 0, "BLK002", "x").col == 0      # the whole file
    assert Finding("a.yml", 0, 7, "BLK002", "x").col == 0


def test_same_yaml_line_same_column_in_every_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    places = set()
    for hook in ("check-critical-tags", "check-contracts"):
        _, out, _ = run(repo, monkeypatch, capsys, hook, "--all-files")
        places |= set(re.findall(r"^(models/schema\.yml:3:\d+):", out, re.M))
    assert places == {"models/schema.yml:3:1"}
    write(repo, "models/bad.yml", "version: 2\nmodels: [\n")
    _, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    assert not re.search(r"^\S+:[1-9]\d*:0:", out, re.M), out


def test_totals_line() -> None:
    f = [Finding("a.sql", 1, 1, "BLK140", "x"), Finding("a.yml", 2, 1, "BLK201", "y"),
         Finding("a.yml", 3, 1, "BLK301", "z"), Finding("b.yml", 3, 1, "BLK221", "w", "warning"),
         Finding("b.yml", 4, 1, "BLK213", "v", "info")]
    assert totals_line(f) == "Found 3 errors, 1 warning, 1 info (2 fixable with --fix)"
    assert totals_line(f[:1]) == "Found 1 error, 0 warnings"
    assert totals_line(f[4:]) == "All checks passed (1 info)"
    assert totals_line([]) == "All checks passed"
    assert f[1].fixable and not f[0].fixable
    assert Finding("a", 1, 1, "BLK140", "x", fixable=True).fixable


def test_totals_line_counts_existing_findings_apart() -> None:
    from dataclasses import replace
    new = Finding("a.sql", 1, 1, "BLK140", "x")
    old = [replace(Finding("b.sql", 1, 1, "BLK130", "y"), existing=True),
           replace(Finding("b.yml", 2, 1, "BLK221", "w", "warning"), existing=True),
           replace(Finding("b.yml", 3, 1, "BLK213", "v", "info"), existing=True)]
    assert totals_line([new, *old]) == (
        "Found 1 error, 0 warnings, 1 info (+ 1 error, 1 warning already at the base)")
    assert totals_line(old) == "No new findings (1 error, 1 warning already at the base; 1 info)"
    assert totals_line(old[2:]) == "All checks passed (1 info)"


def test_totals_line_ends_text_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    _, out, _ = run(repo, monkeypatch, capsys, "check-contracts", "--all-files")
    assert out.rstrip().splitlines()[-1] == "Found 1 error, 0 warnings (1 fixable with --fix)"
    _, out, _ = run(repo, monkeypatch, capsys, "check-contracts", "--all-files",
                    "--format", "json")
    assert json.loads(out)["findings"][0]["fixable"] is True


def test_no_internal_names_in_messages() -> None:
    msg = humane("could not parse SQL: Required keyword: 'this' missing for "
                 "<class 'sqlglot.expressions.query.Where'>. Line 1, Col: 21.\x1b[4m")
    assert msg == "could not parse SQL: incomplete WHERE clause. Line 1, Col: 21."
    assert "PermissiveUndefined" not in humane(
        "UndefinedError: 'dbt_bulwark.sql.jinja_env.PermissiveUndefined object' is not iterable")
    f = Finding("m.sql", 1, 1, "BLK130", "Required keyword: 'this' missing for "
                "<class 'sqlglot.expressions.core.Paren'>")
    assert f.message == "incomplete parenthesis"


def test_syntax_error_message_is_human(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path)
    write(repo, "bulwark.yml", "dialect: postgres\n")
    write(repo, "models/b.sql", "select * from {{ ref('stg') }} where\n")
    _, out, _ = run(repo, monkeypatch, capsys, "fast-compile", "--all-files", "--select", "BLK13")
    assert "<class" not in out and "sqlglot" not in out, out


def test_no_profile_note_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = {f"one/{k}": v for k, v in PROJECT.items()}
    files.update({f"two/{k}": v.replace("name: tiny", "name: tiny2") for k, v in PROJECT.items()})
    repo = make_repo(tmp_path, files)
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path / "nowhere"))
    _, _, err = run(repo, monkeypatch, capsys, "fast-compile", "--all-files")
    assert err.count("no profile or `dialect:`") == 1, err
    assert "'tiny'" in err and "'tiny2'" in err


def test_report_formats_include_sarif() -> None:
    import io

    from dbt_bulwark.findings import FORMATS

    assert "sarif" in FORMATS
    buf = io.StringIO()
    report([Finding("a.sql", 1, 1, "BLK140", "x")], "sarif", buf)
    assert json.loads(buf.getvalue())["version"] == "2.1.0"
