"""`check-contracts --fix`: only insertions, everything else byte for byte; dbt builds the result."""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from dbt_bulwark import cli

FIXTURES = Path(__file__).parent / "fixtures" / "contracts"

SQL = ("select cast(item_id as integer) as item_id, cast(label as varchar) as label, "
       "cast(price as double) as price from {{ ref('raw_items') }}\n")
EXPECTED_COLUMNS = {"item_id": "int", "label": "varchar", "price": "double"}

# properties files in the styles people write; the model `m` is tagged critical in each
VARIANTS: dict[str, str] = {
    "comments": (
        "# top comment\n"
        "version: 2\n\n"
        "models:\n"
        "  # the model\n"
        "  - name: m   # trailing\n"
        "    description: x  # why\n"
        "    config:\n"
        "      tags: ['critical']   # keep me\n"
        "    columns:\n"
        "      - name: item_id  # the key\n"
        "        data_tests: [unique, not_null]\n"
        "  # a comment before the next model\n"
        "  - name: other\n"
    ),
    "anchors": (
        "version: 2\n"
        "x-common: &common\n"
        "  meta: {owner: data}\n"
        "models:\n"
        "  - name: m\n"
        "    config:\n"
        "      tags: [critical]\n"
        "      <<: *common\n"
        "    columns:\n"
        "      - name: label\n"
        "        description: &d the label\n"
        "  - name: other\n"
        "    description: *d\n"
    ),
    "flow": (
        "version: 2\n"
        "models:\n"
        "  - {name: m, config: {tags: [critical]}, columns: [{name: item_id}]}\n"
        "  - {name: other}\n"
    ),
    "quoted": (
        "version: 2\n"
        "models:\n"
        "  - name: \"m\"\n"
        "    description: 'it''s \"quoted\"'\n"
        "    config:\n"
        "      tags: [\"critical\"]\n"
        "    columns:\n"
        "      - name: 'label'\n"
        "        description: \"a: colon\"\n"
    ),
    "long_descriptions": (
        "version: 2\n"
        "models:\n"
        "  - name: m\n"
        "    description: >\n"
        "      A folded description that goes on and on, well past any sensible line width, "
        "so that a re-serialising YAML library would be tempted to wrap it somewhere.\n"
        "\n"
        "      Second paragraph.\n"
        "    config:\n"
        "      tags: [critical]\n"
        "    columns:\n"
        "      - name: price\n"
        "        description: |\n"
        "          Literal block.\n"
        "            indented line\n"
    ),
    "crlf": (
        "version: 2\r\n"
        "\r\n"
        "models:\r\n"
        "  - name: m  # crlf\r\n"
        "    config:\r\n"
        "      tags: [critical]\r\n"
        "    columns:\r\n"
        "      - name: item_id\r\n"
    ),
}


def assert_only_insertions(before: str, after: str) -> None:
    """``after`` is ``before`` plus inserted lines (a flow line may grow, keeping every
    character of the old line in order)."""
    a = before.splitlines(keepends=True)
    b = after.splitlines(keepends=True)
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op in ("equal", "insert"):
            continue
        assert op == "replace" and i2 - i1 <= j2 - j1, "".join(difflib.unified_diff(a, b))
        new = iter(b[j1:j2])
        for old in a[i1:i2]:
            assert any(_subsequence(old, line) for line in new), \
                "".join(difflib.unified_diff(a, b))


def _subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


def make_project(tmp_path: Path, yml: str | None, sql: str = SQL) -> Path:
    project = tmp_path / "proj"
    (project / "models").mkdir(parents=True)
    (project / "seeds").mkdir()
    (project / "dbt_project.yml").write_text(
        "name: fixproj\nprofile: fixproj\nconfig-version: 2\n"
        "models:\n  fixproj:\n    +materialized: table\n")
    shutil.copy(FIXTURES / "presence" / "seeds" / "raw_items.csv", project / "seeds")
    (project / "bulwark.yml").write_text("dialect: duckdb\n")
    (project / "models" / "m.sql").write_text(sql)
    (project / "models" / "other.sql").write_text("select 1 as x\n")
    if yml is not None:
        (project / "models" / "schema.yml").write_bytes(yml.encode("utf-8"))
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    return project


def run(project: Path, *args: str) -> tuple[int, list[dict]]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(["check-contracts", "--all-files", "--format", "json", "--repo-root",
                         str(project), "--project-dir", str(project), "--no-cache", *args])
    return code, json.loads(buf.getvalue())["findings"]


def model_entry(data: dict, name: str) -> dict:
    return next(m for m in data["models"] if m["name"] == name)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fix_round_trips_every_style(tmp_path: Path, variant: str) -> None:
    before = VARIANTS[variant]
    project = make_project(tmp_path, before)
    path = project / "models" / "schema.yml"
    data_before = yaml.safe_load(before)
    code, findings = run(project)
    assert code == 1 and {f["code"] for f in findings} == {"BLK201"}
    code, findings = run(project, "--fix")
    assert code == 1, findings                  # files changed: pre-commit must see a failure
    assert findings == [], findings             # and nothing is left to report
    after = path.read_bytes().decode("utf-8")
    assert_only_insertions(before, after)
    if "\r\n" in before:
        assert after.count("\n") == after.count("\r\n")
    data_after = yaml.safe_load(after)
    m = model_entry(data_after, "m")
    assert m["config"]["contract"] == {"enforced": True}
    assert {c["name"]: c.get("data_type") for c in m["columns"]} == EXPECTED_COLUMNS
    # everything else in the file is what it was
    for key in data_before:
        if key != "models":
            assert data_after[key] == data_before[key]
    other_before = [x for x in data_before["models"] if x["name"] != "m"]
    assert [x for x in data_after["models"] if x["name"] != "m"] == other_before
    # the fix is complete and idempotent
    code, findings = run(project, "--fix")
    assert (code, findings) == (0, [])
    assert path.read_bytes().decode("utf-8") == after


def test_fix_creates_a_properties_file_next_to_the_model(tmp_path: Path) -> None:
    project = make_project(tmp_path, None,
                           "{{ config(tags=['critical']) }}\n" + SQL)
    code, _ = run(project, "--fix")
    assert code == 1
    created = project / "models" / "_m.yml"
    data = yaml.safe_load(created.read_text())
    assert data["version"] == 2
    m = model_entry(data, "m")
    assert m["config"]["contract"] == {"enforced": True}
    assert {c["name"]: c["data_type"] for c in m["columns"]} == EXPECTED_COLUMNS
    assert run(project) == (0, [])


def test_fix_uses_the_folders_properties_file(tmp_path: Path) -> None:
    project = make_project(tmp_path, "version: 2\nmodels:\n  - name: other\n",
                           "{{ config(tags=['critical']) }}\n" + SQL)
    run(project, "--fix")
    assert not (project / "models" / "_m.yml").exists()
    data = yaml.safe_load((project / "models" / "schema.yml").read_text())
    assert model_entry(data, "m")["config"]["contract"] == {"enforced": True}


def test_fix_refuses_what_it_cannot_complete(tmp_path: Path) -> None:
    # `price * 1.5`: a type the warehouse decides (DECIMAL or DOUBLE): not knowable
    sql = "select cast(item_id as integer) as item_id, price * 1.5 as price from {{ ref('raw_items') }}\n"
    yml = "version: 2\nmodels:\n  - name: m\n    config:\n      tags: [critical]\n"
    project = make_project(tmp_path, yml, sql)
    code, findings = run(project, "--fix")
    assert code == 1
    assert {f["code"] for f in findings} == {"BLK201", "BLK221"}
    assert "'price'" in next(f["message"] for f in findings if f["code"] == "BLK221")
    assert (project / "models" / "schema.yml").read_text() == yml


def test_fix_adds_missing_columns_to_an_enforced_contract(tmp_path: Path) -> None:
    yml = ("version: 2\nmodels:\n  - name: m\n    config:\n      contract: {enforced: true}\n"
           "    columns:\n      - name: item_id\n        data_type: integer\n"
           "      - name: label\n")
    project = make_project(tmp_path, yml)
    code, findings = run(project)
    assert {f["code"] for f in findings} == {"BLK205", "BLK210"}
    code, findings = run(project, "--fix")
    assert code == 1 and findings == []
    after = (project / "models" / "schema.yml").read_text()
    assert_only_insertions(yml, after)
    cols = model_entry(yaml.safe_load(after), "m")["columns"]
    assert {c["name"]: c["data_type"] for c in cols} == {
        "item_id": "integer", "label": "varchar", "price": "double"}


def test_fix_reports_a_file_it_cannot_edit(tmp_path: Path) -> None:
    yml = ("version: 2\nshared: &cfg\n  tags: [critical]\nmodels:\n  - name: m\n"
           "    config: *cfg\n  - name: other\n    config: *cfg\n")
    project = make_project(tmp_path, yml)
    code, findings = run(project, "--fix")
    assert code == 1
    codes = {f["code"] for f in findings}
    assert "BLK220" in codes and "BLK201" in codes
    assert (project / "models" / "schema.yml").read_text() == yml


def test_fix_needs_a_known_dialect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    project = make_project(tmp_path, VARIANTS["comments"])
    (project / "bulwark.yml").unlink()
    code, findings = run(project, "--fix")
    assert code == 1 and {f["code"] for f in findings} == {"BLK201", "BLK221"}
    assert (project / "models" / "schema.yml").read_text() == VARIANTS["comments"]


@pytest.mark.oracle
@pytest.mark.slow
def test_dbt_builds_the_fixed_project(tmp_path: Path) -> None:
    import dbt_oracle

    dbt_oracle.require_dbt()
    project = tmp_path / "fixable"
    shutil.copytree(FIXTURES / "fixable", project)
    # the default selection's access:public is advice (info), which --fix leaves alone;
    # selected explicitly, a public model must have a contract and --fix writes it
    (project / "bulwark.yml").write_text(
        "dialect: duckdb\ncontracts:\n  select: 'tag:critical tag:locked access:public'\n")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    yml = project / "models" / "core" / "_core.yml"
    before = yml.read_text()
    code, findings = run(project)
    assert code == 1 and {f["code"] for f in findings} >= {"BLK201", "BLK210"}
    code, findings = run(project, "--fix")
    assert code == 1 and not [f for f in findings if f["severity"] == "error"], findings
    assert_only_insertions(before, yml.read_text())
    data = yaml.safe_load(yml.read_text())
    for name in ("dim_items", "items_public", "fct_star"):
        entry = model_entry(data, name)
        assert entry["config"]["contract"]["enforced"] is True
    # dbt itself accepts the contracts the fix wrote
    from test_contracts_oracle import dbt_build

    results = dbt_build(project)
    models = {uid: r["status"] for uid, r in results.items() if uid.startswith("model.")}
    assert len(models) == 3 and set(models.values()) == {"success"}, results


@pytest.mark.parametrize("broken_name", ["schema.yml", "_m.yml"])
def test_fix_refuses_while_a_properties_file_of_the_model_does_not_load(
        tmp_path: Path, broken_name: str) -> None:
    # the model's properties file has a syntax error: a fix written elsewhere would be a
    # second entry for `m` ("described twice") once the user repairs it
    project = make_project(tmp_path, None, "{{ config(tags=['critical']) }}\n" + SQL)
    broken = project / "models" / broken_name
    text = "version: 2\nmodels:\n  - name: m\n    description: 'unterminated\n"
    broken.write_text(text)
    code, findings = run(project, "--fix")
    assert code == 1
    assert broken.read_text() == text
    assert sorted(p.name for p in (project / "models").glob("*.yml")) == [broken_name]
    refused = [f for f in findings if f["code"] == "BLK222"]
    assert len(refused) == 1 and refused[0]["path"] == f"models/{broken_name}"
    assert "twice" in refused[0]["message"]


@pytest.mark.parametrize("dtype, expression, dialect, expected", [
    ("TIMESTAMP", "CURRENT_TIMESTAMP", "duckdb", "timestamp with time zone"),
    ("TIMESTAMP", "CURRENT_TIMESTAMP - INTERVAL '1' DAY", "duckdb", None),
    ("TIMESTAMP", "CAST(CURRENT_TIMESTAMP AS TIMESTAMP)", "duckdb", "timestamp"),
    ("DECIMAL(10, 2)", "t.d * 2", "duckdb", None),
    ("DECIMAL(10, 2)", "COALESCE(t.x, t.d)", "duckdb", None),
    ("DECIMAL(10, 2)", "t.d", "duckdb", "decimal(10, 2)"),
    ("DECIMAL(18, 4)", "CAST(t.i AS DECIMAL(18, 4))", "duckdb", "decimal(18, 4)"),
    ("BIGINT", "COUNT(*)", "duckdb", "bigint"),
    ("TEXT", "UPPER(t.s)", "duckdb", "varchar"),
    # dialects no oracle runs: only what a cast says
    ("BIGINT", "COUNT(*)", "snowflake", None),
    ("TIMESTAMP", "CURRENT_TIMESTAMP()", "snowflake", None),
    ("VARCHAR", "CAST(t.s AS VARCHAR)", "snowflake", "varchar"),
    ("INT", "CAST(t.i AS INT64)", "bigquery", "int64"),
    (None, "t.i", "duckdb", None),
])
def test_fix_writes_only_certain_types(dtype: str | None, expression: str, dialect: str, expected: str | None) -> None:
    from dbt_bulwark.checks.contracts import certain_type

    assert certain_type(dtype, expression, dialect) == expected


def test_fix_leaves_a_public_model_that_is_only_advice_alone(tmp_path: Path) -> None:
    """With the default selection a public model without a contract is an info finding
    (dbt accepts it): --fix fixes what blocks, so it writes no contract for it."""
    project = tmp_path / "fixable"
    shutil.copytree(FIXTURES / "fixable", project)
    (project / "bulwark.yml").write_text("dialect: duckdb\n")
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    yml = project / "models" / "core" / "_core.yml"
    _code, findings = run(project, "--fix")
    public = [f for f in findings if f["code"] == "BLK201" and "items_public" in f["message"]]
    assert len(public) == 1 and public[0]["severity"] == "info", findings
    assert "once contracts.select selects the model" in public[0]["hint"]
    data = yaml.safe_load(yml.read_text())
    entry = next((m for m in data.get("models", []) if m.get("name") == "items_public"), None)
    assert entry is None or "contract" not in (entry.get("config") or {}), entry
    assert model_entry(data, "dim_items")["config"]["contract"]["enforced"] is True
