"""--fix writes what it means, per model and in the file's own line ends (issue 11,
"Messages that point at the truth": a refused --fix names its own model; a CR-only file
keeps CR line ends).

Real git repositories in tmp dirs; the fixed files are re-read by PyYAML (what dbt uses)
and the hooks run again on them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_contracts_fix import assert_only_insertions, make_project, model_entry
from test_contracts_fix import run as run_contracts
from test_critical import make_repo
from test_critical import run as run_hook

from dbt_bulwark.yaml_edit import PropertiesEditor

CR_ONLY = ("# models -- keep this comment\r"
           "version: 2\r"
           "\r"
           "models:\r"
           "  - name: m   # the model\r"
           "    config:\r"
           "      tags: [critical]\r"
           "    columns:\r"
           "      - name: item_id\r"
           "  - name: other\r")


def test_contracts_fix_keeps_cr_only_line_ends(tmp_path: Path) -> None:
    project = make_project(tmp_path, CR_ONLY)
    path = project / "models" / "schema.yml"
    code, findings = run_contracts(project, "--fix")
    assert code == 1 and findings == [], findings
    after = path.read_bytes().decode()
    assert "\n" not in after, after           # no LF added to a CR-only file
    assert_only_insertions(CR_ONLY, after)  # comments and the rest byte for byte
    entry = model_entry(yaml.safe_load(after), "m")
    assert entry["config"]["contract"] == {"enforced": True}
    assert {c["name"]: c["data_type"] for c in entry["columns"]} == {
        "item_id": "int", "label": "varchar", "price": "double"}
    assert run_contracts(project) == (0, [])  # the project as dbt reads it is fixed


def test_critical_fix_keeps_cr_only_line_ends(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, "tagged")
    path = repo / "models/staging/_staging.yml"
    # a block list: the fix adds a line (a flow list would grow in place)
    text = path.read_text().replace('tags: ["locked"]', 'tags:\n        - locked')
    assert "- locked" in text
    before = text.replace("\r\n", "\n").replace("\n", "\r")
    path.write_bytes(before.encode())
    rc, out, err = run_hook(repo, capsys, "check-critical-tags", "--fix", "--no-base",
                            "--no-cache", "--all-files")
    assert rc == 1 and "Traceback" not in err, out + err
    after = path.read_bytes().decode()
    assert after != before and "\n" not in after, after
    stg = next(m for m in yaml.safe_load(after)["models"] if m["name"] == "stg_orders")
    assert "critical" in stg["config"]["tags"]


SHARED = ("version: 2\n"
          "shared: &cfg\n"
          "  tags: [critical]\n"
          "models:\n"
          "  - name: m\n"
          "    config: *cfg\n"
          "  - name: other\n"
          "    config:\n"
          "      tags: [critical]\n")


def test_contracts_fix_refusal_names_its_own_model_and_fixes_the_others(tmp_path: Path) -> None:
    # `m` takes its config through an alias: editing it would change `shared` too, so its
    # fix is refused; `other`, in the same file, is still fixed
    project = make_project(tmp_path, SHARED)
    path = project / "models" / "schema.yml"
    code, findings = run_contracts(project, "--fix")
    assert code == 1
    refused = [f for f in findings if f["code"] == "BLK220"]
    assert len(refused) == 1, findings
    assert "'m'" in refused[0]["message"] and "'other'" not in refused[0]["message"]
    assert refused[0]["line"] == 6                       # m's `config: *cfg`
    data = yaml.safe_load(path.read_text())
    assert model_entry(data, "other")["config"]["contract"] == {"enforced": True}
    assert "contract" not in model_entry(data, "m")["config"]   # nothing half-made
    assert data["shared"] == {"tags": ["critical"]}
    assert not any(f["code"] == "BLK201" and "'other'" in f["message"] for f in findings)


BATCHED = ("version: 2\n"
           "models:\n"
           "  - name: a\n"
           "    description: first\n"
           "  - name: b\n"
           "    description: second\n")


def test_rollback_undoes_one_models_edits_only(tmp_path: Path) -> None:
    for text in (BATCHED, BATCHED + "x-anchor: &x {k: v}\n"):   # one pass / whole file
        path = tmp_path / "s.yml"
        path.write_text(text)
        editor = PropertiesEditor(path, tmp_path)
        a = editor.model("a")
        assert a is not None and editor.set_config(a, "contract", {"enforced": True})
        after_a = editor.text
        mark = editor.mark()
        b = editor.model("b")
        assert b is not None and editor.set_config(b, "contract", {"enforced": True})
        new = editor.model("c")
        assert new is not None and editor.add_columns(new, [{"name": "id"}])
        assert editor.text != after_a
        editor.rollback(mark)
        assert editor.text == after_a
        assert editor.save()
        data = yaml.safe_load(path.read_text())
        assert [m["name"] for m in data["models"]] == ["a", "b"]
        assert data["models"][0]["config"] == {"contract": {"enforced": True}}
        assert "config" not in data["models"][1]


def test_contracts_fix_refuses_a_model_in_a_sibling_document(tmp_path: Path) -> None:
    # dbt reads one document per properties file: `m`, described in the second one, gets
    # no new entry elsewhere (it would be described twice once the file is split)
    text = ("version: 2\nmodels:\n  - name: other\n---\nversion: 2\nmodels:\n"
            "  - name: m\n    config:\n      tags: [critical]\n")
    project = make_project(tmp_path, text, "{{ config(tags=['critical']) }}\n"
                           "select cast(1 as integer) as item_id\n")
    code, findings = run_contracts(project, "--fix")
    assert code == 1
    assert (project / "models" / "schema.yml").read_text() == text
    assert sorted(p.name for p in (project / "models").glob("*.yml")) == ["schema.yml"]
    assert any(f["code"] in ("BLK222", "BLK220") and f["path"] == "models/schema.yml"
               and "'m'" in f["message"] for f in findings), findings


EDIT_BOMB = """
import sys
from pathlib import Path
from dbt_bulwark.yaml_edit import PropertiesEditor, YamlEditError
path = Path(sys.argv[1])
try:
    editor = PropertiesEditor(path, path.parent)
    entry = editor.model("a")
    editor.set_config(entry, "materialized", "table")
    editor.save()
    print("edited")
except YamlEditError as exc:
    print("refused", exc.line, exc.message)
"""


def test_editor_bounds_alias_expansion(tmp_path: Path) -> None:
    """The editor compares and copies the data it loads: an alias bomb (or a recursive
    alias) in a properties file is refused at once, never a hang (it used to run for ever
    in the comparison after an edit)."""
    import os
    import subprocess
    import sys

    from test_safety import SRC, alias_bomb

    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cases = {"bomb.yml": (alias_bomb(12), "alias bomb"),
             "recursive.yml": ("version: 2\nx: &x {a: 1, b: [*x]}\nmodels:\n  - name: a\n",
                               "recursive alias")}
    for name, (text, why) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        proc = subprocess.run([sys.executable, "-c", EDIT_BOMB, str(path)], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.stdout.startswith("refused"), proc.stdout + proc.stderr
        assert why in proc.stdout and path.read_text() == text
    # anchors and aliases of ordinary size are still edited
    path = tmp_path / "fine.yml"
    path.write_text("version: 2\nx: &x {k: [1, 2]}\nmodels:\n  - name: a\n    meta: *x\n")
    proc = subprocess.run([sys.executable, "-c", EDIT_BOMB, str(path)], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.stdout.strip() == "edited", proc.stdout + proc.stderr


def test_editing_after_a_save_reads_the_saved_text_again(tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text(BATCHED)
    editor = PropertiesEditor(path, tmp_path)
    a = editor.model("a")
    assert a is not None and editor.set_config(a, "contract", {"enforced": True})
    assert editor.save()
    assert dict(a)["config"] == {"contract": {"enforced": True}}
    b = editor.model("b")
    assert b is not None and editor.add_columns(b, [{"name": "id", "data_type": "integer"}])
    assert editor.save()
    data = yaml.safe_load(path.read_text())
    assert data["models"][0]["config"] == {"contract": {"enforced": True}}
    assert data["models"][1]["columns"] == [{"name": "id", "data_type": "integer"}]
    assert_only_insertions(BATCHED, path.read_text())


def test_policy_dialect_is_checked_without_importing_sqlglot(tmp_path: Path) -> None:
    import subprocess
    import sys

    from sqlglot.dialects.dialect import Dialects
    from test_safety import SRC

    from dbt_bulwark.policy import SQLGLOT_DIALECTS

    # every name listed is one the installed sqlglot knows (the list only saves an import)
    assert {d.value for d in Dialects if d.value} >= SQLGLOT_DIALECTS
    (tmp_path / "bulwark.yml").write_text("dialect: duckdb\n")
    code = ("import sys\nfrom dbt_bulwark.project.fs import WorkTree\n"
            "from dbt_bulwark.policy import load_policy\n"
            f"p = load_policy(WorkTree({str(tmp_path)!r}), '')\n"
            "print(p.dialect, 'sqlglot' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(SRC)}, timeout=60, check=True).stdout
    assert out.split() == ["duckdb", "False"]
    (tmp_path / "bulwark.yml").write_text("dialect: duckdbb\n")   # a typo: still refused
    code2 = code.replace("print(p.dialect, 'sqlglot' in sys.modules)", "print(p)")
    proc = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True,
                          env={"PYTHONPATH": str(SRC)}, timeout=60, check=False)
    assert "duckdbb" in proc.stdout + proc.stderr and "did you mean 'duckdb'" in \
        proc.stdout + proc.stderr


def test_fix_recheck_reads_unchanged_properties_once_and_gets_fresh_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--fix --no-cache: the check after the fix reuses the parses of the files the fix did
    not touch (in memory, a fresh copy per load); the edited file is parsed again."""
    from dbt_bulwark.cache import ParseCache
    from dbt_bulwark.project import yamlio

    project = make_project(tmp_path, CR_ONLY.replace("\r", "\n"))
    other = "version: 2\nmodels:\n  - name: other\n    description: untouched\n"
    (project / "models" / "other.yml").write_text(other)
    # the entries of m and other in different files: other's file is not edited
    (project / "models" / "schema.yml").write_text(
        CR_ONLY.replace("\r", "\n").replace("  - name: other\n", ""))
    seen: list[str] = []
    real = yamlio.load

    def counting(text: str) -> object:
        seen.append(text)
        return real(text)

    monkeypatch.setattr(yamlio, "load", counting)
    code, findings = run_contracts(project, "--fix")
    assert code == 1 and findings == [], findings
    assert seen.count(other) == 1                      # not parsed again by the re-check
    fixed = (project / "models" / "schema.yml").read_text()
    assert seen.count(fixed) == 1                      # the edited file is parsed anew
    cache = ParseCache(None, "parse", copies=True)
    cache.put(("yaml", "k"), ("ok", {"a": [1]}))
    got = cache.get(("yaml", "k"))
    got[1]["a"].append(2)                              # a caller changing what it got...
    assert cache.get(("yaml", "k")) == ("ok", {"a": [1]})   # ...changes no later get


def test_sql_without_a_template_compiles_as_itself_without_jinja() -> None:
    import subprocess
    import sys

    from test_safety import SRC

    from dbt_bulwark.sql.jinja_env import environment

    texts = ["select 1 as id\n\n\n", "select '}}' as a, '%}' b -- #}\n", "\tselect\u00e9 1 ",
             "", "a\u2028b\x0bc\x0cd\x85e"]
    for text in texts:   # what Jinja makes of each: the text itself
        assert environment(True).from_string(text).render() == text
    code = ("import sys\nfrom dbt_bulwark.project.loader import load_project\nfrom dbt_bulwark.project.fs "
            "import WorkTree\nfrom dbt_bulwark.sql.compiler import compile_node\nimport json\n"
            "p = load_project(WorkTree(sys.argv[1]), '')\n"
            "out = {n.name: compile_node(p, n).sql for n in p.models()}\n"
            "print(json.dumps([out, 'jinja2' in sys.modules]))\n")
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "models").mkdir()
        (root / "dbt_project.yml").write_text("name: p\nversion: '1'\nconfig-version: 2\n")
        for i, text in enumerate(texts):
            (root / "models" / f"m{i}.sql").write_text(text, newline="")
        proc = subprocess.run([sys.executable, "-c", code, tmp], capture_output=True,
                              text=True, env={"PYTHONPATH": str(SRC)}, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        out, jinja_loaded = json.loads(proc.stdout)
    assert out == {f"m{i}": text for i, text in enumerate(texts)}
    assert jinja_loaded is False


def test_suggest_write_that_does_not_take_effect_is_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`critical suggest --write` reloads the project as `--fix` does: a tag written where
    dbt does not read it (here a file outside model-paths) is an error, not a success."""
    import dbt_bulwark.checks.critical as critical

    repo = make_repo(tmp_path, "tagged")
    rc, out, err = run_hook(repo, capsys, "critical", "suggest", "--top", "0", "--write",
                            "--no-cache")
    assert rc == 0 and "added tags in" in out, out + err     # where dbt reads them: fine
    repo2 = make_repo(tmp_path, "tagged", name="repo2")
    monkeypatch.setattr(critical, "properties_file_for", lambda project, node: "docs/x.yml")
    rc, out, err = run_hook(repo2, capsys, "critical", "suggest", "--top", "0", "--write",
                            "--no-cache")
    assert (repo2 / "docs" / "x.yml").exists()
    assert rc == 1, out + err
    assert "does not carry it" in err and "Traceback" not in err
