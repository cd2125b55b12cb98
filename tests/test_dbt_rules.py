"""Version rules: the static hooks apply the rule of the dbt the project declares.

* generic test ``arguments:`` (dbt >= 1.10, behaviour flag): test names and kwargs as
  the real dbt of that version makes them -- compared with dbt-core 1.9 from the matrix
  venv (tests/test_matrix.py's ~/.cache/dbt-bulwark/ci-venvs) and 1.11 (this venv);
* contract type comparison (dbt >= 1.11 compares base types; 1.9/1.10 the type text):
  check-schema-diff on a contracted column ``varchar(3)`` -> ``varchar(10)``;
* the ``dbt_version`` policy key overrides ``require-dbt-version``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import skip_or_fail
from test_schema_diff import CONTRACT_YML, PROJECT_YML, codes, contract_files, make, run

from dbt_bulwark.project import dbt_rules
from dbt_bulwark.project.workspace import open_workspace

ROOT = Path(__file__).resolve().parents[1]
VENVS = Path(os.environ.get("BULWARK_MATRIX_VENVS")
             or Path.home() / ".cache" / "dbt-bulwark" / "ci-venvs")


@pytest.mark.parametrize(("yml", "policy", "want"), [
    ({}, None, (1, 11)),
    ({"require-dbt-version": ">=1.9.0"}, None, (1, 9)),
    ({"require-dbt-version": [">=1.10.0", "<2.0.0"]}, None, (1, 10)),
    ({"require-dbt-version": ">=1.9.0,<2.0.0"}, None, (1, 9)),
    ({"require-dbt-version": "<2.0.0"}, None, (1, 11)),
    ({"require-dbt-version": ">=1.12.0"}, None, (1, 11)),      # newest rules we know
    ({"require-dbt-version": ">=1.5.0"}, None, (1, 9)),        # oldest we support
    ({"require-dbt-version": ">=1.9.0"}, "1.11", (1, 11)),     # the policy wins
    ({}, "1.10", (1, 10)),
])
def test_rules_version(yml: dict, policy: str | None, want: tuple[int, int]) -> None:
    assert dbt_rules.rules_version(yml, policy) == want


def test_arguments_rule_follows_version_and_flag() -> None:
    assert dbt_rules.unpacks_test_arguments({})
    assert not dbt_rules.unpacks_test_arguments({"require-dbt-version": ">=1.9.0"})
    assert dbt_rules.unpacks_test_arguments({"require-dbt-version": ">=1.10.0"})
    assert not dbt_rules.unpacks_test_arguments(
        {"flags": {"require_generic_test_arguments_property": False}})


# ----------------------------------------------------------------------------- arguments:

SCHEMA_YML = """
version: 2
models:
  - name: orders
    columns:
      - name: status
        data_tests:
          - flexible:
              arguments:
                values: ['placed', 'shipped']
          - not_null
"""

# a generic test that takes any keyword argument (it reads ``kwargs``): parses under
# both rules, so the names and kwargs each dbt makes can be compared
FLEXIBLE_SQL = """
{% test flexible(model, column_name) %}
select * from {{ model }} where {{ column_name }} is null
{%- if kwargs %} and 1 = {{ kwargs | length }}{% endif %}
{% endtest %}
"""


def _args_project(tmp_path: Path, require: str) -> Path:
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(textwrap.dedent(f"""
        name: shop
        version: '1.0'
        config-version: 2
        profile: shop
        require-dbt-version: "{require}"
    """))
    (root / "models/orders.sql").write_text("select 'placed' as status\n")
    (root / "models/schema.yml").write_text(SCHEMA_YML)
    (root / "macros").mkdir()
    (root / "macros/flexible.sql").write_text(FLEXIBLE_SQL)
    (root / "profiles.yml").write_text(json.dumps({"shop": {"target": "dev", "outputs": {
        "dev": {"type": "duckdb", "path": str(tmp_path / "x.duckdb")}}}}))
    return root


def _bulwark_tests(root: Path) -> dict[str, dict]:
    ws = open_workspace([str(root)], str(root), None, False)
    project = ws.project(ws.project_roots[0])
    return {uid: n.config["test_metadata"]["kwargs"] for uid, n in project.data_tests.items()
            if uid.startswith("test.")}


def _dbt_tests(python: str, root: Path) -> dict[str, dict]:
    code = textwrap.dedent("""
        import json, sys
        from dbt.cli.main import dbtRunner
        r = dbtRunner().invoke(["parse", "--project-dir", sys.argv[1], "--profiles-dir",
                                sys.argv[1], "--target-path", sys.argv[2], "--log-level",
                                "none", "--no-partial-parse"])
        assert r.success, r.exception
        out = {uid: n.test_metadata.kwargs for uid, n in r.result.nodes.items()
               if uid.startswith("test.")}
        print(json.dumps(out, default=str))
    """)
    env = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false", DO_NOT_TRACK="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([python, "-c", code, str(root), str(root.parent / "target")],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _require_dbt(python: str) -> None:
    if not Path(python).exists():
        msg = f"no dbt venv at {python} (bash .ci/matrix-venvs)"
        skip_or_fail(msg)
    ok = subprocess.run([python, "-c", "import dbt.cli.main"], capture_output=True)
    if ok.returncode != 0:
        skip_or_fail("dbt-core is not installed in " + python)


@pytest.mark.oracle
@pytest.mark.parametrize(("require", "python"), [
    (">=1.10.0", sys.executable),                                   # dbt 1.11 rules
    (">=1.9.0", str(VENVS / "dbt-1.9" / "bin" / "python")),          # dbt 1.9 rules
])
def test_generic_test_arguments_match_real_dbt(tmp_path: Path, require: str,
                                               python: str) -> None:
    _require_dbt(python)
    root = _args_project(tmp_path, require)
    ours = _bulwark_tests(root)
    theirs = _dbt_tests(python, root)
    assert sorted(ours) == sorted(theirs)
    accepted = next(uid for uid in ours if "flexible" in uid)
    if require.startswith(">=1.9"):
        assert "arguments" in ours[accepted]          # one ordinary kwarg under 1.9
    else:
        assert ours[accepted]["values"] == ["placed", "shipped"]
    for uid in ours:
        mine = {k: v for k, v in ours[uid].items() if k != "model"}
        real = {k: v for k, v in theirs[uid].items() if k != "model"}
        assert mine == real, uid


# ----------------------------------------------------------------------------- contract types

def test_contract_size_change_is_breaking_under_dbt_1_10_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    files = contract_files()
    files["dbt_project.yml"] = PROJECT_YML + 'require-dbt-version: ">=1.9.0"\n'
    repo = make(tmp_path, files)
    repo.write({"models/dim.yml": CONTRACT_YML.replace("varchar(3)", "varchar(10)")})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1 and "BLK403" in codes(data), data
    # the policy key picks the 1.11 rule: a size change is not a type change
    repo.write({"bulwark.yml": 'dbt_version: "1.11"\n'})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0 and "BLK403" not in codes(data), data


def test_contract_case_change_is_breaking_only_before_1_11(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, contract_files())
    repo.write({"models/dim.yml": CONTRACT_YML.replace("data_type: double",
                                                       "data_type: DOUBLE")})
    rc, data = run(repo, monkeypatch, capsys)
    assert "BLK403" not in codes(data), data                 # dbt 1.11 (default)
    repo.write({"bulwark.yml": 'dbt_version: "1.10"\n'})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1 and "BLK403" in codes(data), data


@pytest.mark.oracle
def test_dbt_1_9_rejects_arguments_on_a_builtin_test(tmp_path: Path) -> None:
    """Why the 1.9 rule matters: dbt 1.9 passes ``arguments`` to the macro as one kwarg
    (as bulwark does under that rule), and the built-in tests take no such argument."""
    python = str(VENVS / "dbt-1.9" / "bin" / "python")
    _require_dbt(python)
    root = _args_project(tmp_path, ">=1.9.0")
    (root / "models/schema.yml").write_text(SCHEMA_YML.replace("flexible", "accepted_values"))
    with pytest.raises(AssertionError, match="takes no keyword argument 'arguments'"):
        _dbt_tests(python, root)
    kwargs = next(v for k, v in _bulwark_tests(root).items() if "accepted_values" in k)
    assert kwargs["arguments"] == {"values": ["placed", "shipped"]}
