"""Regression verdicts against the git base (regression.py), on scripted git repositories.

Existing vs new findings, the three base sources (the index's HEAD at pre-commit,
PRE_COMMIT_FROM_REF at pre-push, --base by hand), staged deletions and renames, the
errors that replace silent skips, a dbt project in a git submodule, and a properties
file that does not load.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

PROJECT = {
    "dbt_project.yml": "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n",
    "models/stg_products.sql": "select 1 as id, 'a' as name\n",
    "models/products.sql": "select id, name\nfrom {{ ref('stg_products') }}\n",
    "models/orders.sql": "select id, {{ cents('id') }} as amount\nfrom {{ ref('products') }}\n",
    "models/raw_orders.sql": "select * from {{ source('raw', 'orders') }}\n",
    "models/uses_seed.sql": "select code from {{ ref('countries') }}\n",
    "seeds/countries.csv": "code,name\nfr,France\n",
    "macros/cents.sql": "{% macro cents(c) %}{{ c }} / 100{% endmacro %}\n",
    "models/sources.yml": "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: orders\n",
}
PACKAGES = "packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.1.1\n"


def _git(cwd: Path, *args: str, check: bool = True) -> str:
    env = _env()
    proc = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main",
                           "-c", "protocol.file.allow=always", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.invalid")
    env.update(extra)
    return env


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")


def _repo(tmp_path: Path, files: dict[str, str] | None = None, commit: bool = True) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _write(repo, PROJECT if files is None else files)
    _git(repo, "init", "-q")
    if commit:
        _commit(repo, "init")
    return repo


def _commit(repo: Path, msg: str) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--no-verify", "-m", msg)
    return _git(repo, "rev-parse", "HEAD")


def bulwark(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dbt_bulwark.cli", *args], cwd=cwd,
                          env=_env(**env), capture_output=True, text=True, timeout=600)


def _codes(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return json.loads(proc.stdout)["findings"]


# ----------------------------------------------------------------------------- existing vs new


def test_existing_findings_do_not_fail_but_new_ones_do(tmp_path: Path) -> None:
    files = dict(PROJECT)
    files["models/legacy.sql"] = "select * from {{ ref('gone_long_ago') }}\n"
    repo = _repo(tmp_path, files)
    # the committed error is printed, labelled, and does not count
    proc = bulwark(repo, "fast-compile", "--all-files")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BLK110 [existing] ref('gone_long_ago')" in proc.stdout
    # ... unless asked
    assert bulwark(repo, "fast-compile", "--all-files", "--all-findings").returncode == 1
    assert bulwark(repo, "fast-compile", "--all-files", "--no-base").returncode == 1
    (repo / "bulwark.yml").write_text("fail_on_existing: true\n")
    assert bulwark(repo, "fast-compile", "--all-files").returncode == 1
    (repo / "bulwark.yml").unlink()
    # a new error counts; JSON carries the label
    (repo / "models/new.sql").write_text("select * from {{ ref('stg_prodcts') }}\n")
    proc = bulwark(repo, "fast-compile", "--all-files", "--format", "json")
    assert proc.returncode == 1
    by_path = {f["path"]: f for f in _codes(proc)}
    assert by_path["models/legacy.sql"]["existing"] is True
    assert by_path["models/new.sql"]["existing"] is False
    assert by_path["models/new.sql"]["code"] == "BLK110"
    # JSON also carries the coverage counts
    cov = json.loads(proc.stdout)["coverage"]
    assert cov[0]["project"] == "shop" and cov[0]["models"] >= 6
    proc = bulwark(repo, "check", "--all-files", "--format", "json")
    (cov,) = json.loads(proc.stdout)["coverage"]
    assert cov["project"] == "shop" and cov["models"] >= 6


def test_moving_an_existing_finding_keeps_it_existing(tmp_path: Path) -> None:
    """Identity is (path, code, node, message): a shifted line is still the same finding."""
    files = dict(PROJECT)
    files["models/legacy.sql"] = "select * from {{ ref('gone_long_ago') }}\n"
    repo = _repo(tmp_path, files)
    (repo / "models/legacy.sql").write_text("-- moved down\n\nselect * from "
                                            "{{ ref('gone_long_ago') }}\n")
    _git(repo, "add", "-A")
    proc = bulwark(repo, "fast-compile", "models/legacy.sql", PRE_COMMIT="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "models/legacy.sql:3:" in proc.stdout and "[existing]" in proc.stdout


def test_no_commits_everything_counts(tmp_path: Path) -> None:
    files = dict(PROJECT)
    files["models/legacy.sql"] = "select * from {{ ref('gone_long_ago') }}\n"
    repo = _repo(tmp_path, files, commit=False)
    proc = bulwark(repo, "fast-compile", "--all-files")
    assert proc.returncode == 1
    assert "[existing]" not in proc.stdout


# ----------------------------------------------------------------------------- base sources


def _with_packages(tmp_path: Path) -> Path:
    files = dict(PROJECT)
    files["packages.yml"] = PACKAGES     # declared, not installed: a fresh clone
    return _repo(tmp_path, files)


def test_pre_commit_base_is_the_index_head_and_a_ref_typo_is_an_error(tmp_path: Path) -> None:
    repo = _with_packages(tmp_path)
    p = repo / "models/products.sql"
    p.write_text(p.read_text().replace("stg_products", "stg_prducts"))
    _git(repo, "add", "-A")
    proc = bulwark(repo, "fast-compile", "models/products.sql", PRE_COMMIT="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "models/products.sql:2:" in proc.stdout and "BLK110" in proc.stdout
    assert "did you mean 'stg_products'" in proc.stdout
    # without the base the did-you-mean alone makes it an error (a one-letter slip of a
    # project model; the declared package ships no models)
    proc = bulwark(repo, "fast-compile", "models/products.sql", "--no-base")
    assert proc.returncode == 1 and "did you mean 'stg_products'" in proc.stdout


def test_pre_push_base_is_pre_commit_from_ref(tmp_path: Path) -> None:
    repo = _with_packages(tmp_path)
    first = _git(repo, "rev-parse", "HEAD")
    p = repo / "models/products.sql"
    p.write_text(p.read_text().replace("stg_products", "stg_prducts"))
    broken = _commit(repo, "typo")
    pushed = dict(PRE_COMMIT="1", PRE_COMMIT_FROM_REF=first, PRE_COMMIT_TO_REF=broken)
    proc = bulwark(repo, "fast-compile", "models/products.sql", **pushed)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BLK110" in proc.stdout
    # the pushed range only: the same error already in the from-ref is existing
    (repo / "models/other.sql").write_text("select 1 as x\n")
    later = _commit(repo, "unrelated")
    proc = bulwark(repo, "fast-compile", "models/other.sql", PRE_COMMIT="1",
                   PRE_COMMIT_FROM_REF=broken, PRE_COMMIT_TO_REF=later)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_source_typo_is_an_error_when_it_resolved_at_the_base(tmp_path: Path) -> None:
    repo = _with_packages(tmp_path)
    p = repo / "models/raw_orders.sql"
    p.write_text(p.read_text().replace("'raw'", "'rw'"))
    _git(repo, "add", "-A")
    proc = bulwark(repo, "fast-compile", "models/raw_orders.sql", PRE_COMMIT="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BLK114" in proc.stdout and "source('raw', 'orders')" in proc.stdout


def test_macro_typo_is_an_error_when_it_resolved_at_the_base(tmp_path: Path) -> None:
    repo = _with_packages(tmp_path)
    p = repo / "models/orders.sql"
    p.write_text(p.read_text().replace("cents(", "cent("))
    _git(repo, "add", "-A")
    proc = bulwark(repo, "fast-compile", "models/orders.sql", PRE_COMMIT="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BLK102 unknown macro 'cent'" in proc.stdout and "did you mean 'cents'" in proc.stdout


def test_base_by_hand(tmp_path: Path) -> None:
    repo = _with_packages(tmp_path)
    first = _git(repo, "rev-parse", "HEAD")
    p = repo / "models/products.sql"
    p.write_text(p.read_text().replace("stg_products", "stg_prducts"))
    _commit(repo, "typo")
    assert bulwark(repo, "fast-compile", "--all-files", "--base", first).returncode == 1
    # against HEAD (the default by hand) the typo is already committed: existing
    proc = bulwark(repo, "fast-compile", "--all-files")
    assert proc.returncode == 0 and "[existing]" in proc.stdout


def test_bulwark_check_judges_against_its_base(tmp_path: Path) -> None:
    """`bulwark check` (ci.py's static layers) labels and counts the same way."""
    files = dict(PROJECT)
    files["models/legacy.sql"] = "select * from {{ ref('gone_long_ago') }}\n"
    repo = _repo(tmp_path, files)
    proc = bulwark(repo, "check", "--all-files", "--base", "HEAD")
    assert "[existing]" in proc.stdout
    assert proc.returncode == 0 and "== fast-compile: PASSED" in proc.stdout, proc.stdout
    proc = bulwark(repo, "check", "--all-files", "--base", "HEAD", "--all-findings")
    assert proc.returncode == 1 and "== fast-compile: FAILED" in proc.stdout, proc.stdout


@pytest.mark.parametrize("command", [("check", "-q"), ("fast-compile",)])
def test_run_from_the_project_subfolder_checks_the_change(tmp_path: Path,
                                                          command: tuple[str, ...]) -> None:
    """The dbt project one folder down (`transform/`), bulwark run there: the changed files
    (repo-relative) are the change's nodes, not paths read against the working directory."""
    repo = _repo(tmp_path, {f"transform/{k}": v for k, v in PROJECT.items()})
    (repo / "transform/models/products.sql").write_text("selct id, name\nfrom {{ ref('stg_products') }}\n")
    _git(repo, "add", "-A")
    args = command if command[0] == "check" else (*command, "models/products.sql")
    proc = bulwark(repo / "transform", *args)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "transform/models/products.sql:1:1: BLK130" in proc.stdout, proc.stdout


# ----------------------------------------------------------------------------- deletions


@pytest.mark.parametrize("what, removed, user", [
    ("model", "models/stg_products.sql", "models/products.sql:2"),
    ("seed", "seeds/countries.csv", "models/uses_seed.sql:1"),
    ("source", "models/sources.yml", "models/raw_orders.sql:1"),
    ("macro", "macros/cents.sql", "models/orders.sql:1"),
])
def test_staged_deletion_checks_the_users(tmp_path: Path, what: str, removed: str, user: str) -> None:
    repo = _with_packages(tmp_path)
    _git(repo, "rm", "-q", removed)
    # pre-commit runs the always_run hook with no file (none of its files exist)
    proc = bulwark(repo, "fast-compile", PRE_COMMIT="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BLK118" in proc.stdout and user in proc.stdout, proc.stdout


def test_staged_rename_checks_the_users(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _git(repo, "mv", "models/stg_products.sql", "models/stg_items.sql")
    proc = bulwark(repo, "fast-compile", "models/stg_items.sql", PRE_COMMIT="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "models/products.sql:2:" in proc.stdout
    assert "models/stg_products.sql:0:0: BLK118" in proc.stdout


def test_deleting_an_unused_model_passes(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    _git(repo, "rm", "-q", "models/orders.sql")
    proc = bulwark(repo, "fast-compile", PRE_COMMIT="1")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_deletion_at_pre_push(tmp_path: Path) -> None:
    repo = _with_packages(tmp_path)
    first = _git(repo, "rev-parse", "HEAD")
    _git(repo, "rm", "-q", "models/stg_products.sql")
    last = _commit(repo, "delete")
    proc = bulwark(repo, "fast-compile", PRE_COMMIT="1", PRE_COMMIT_FROM_REF=first,
                   PRE_COMMIT_TO_REF=last)
    assert proc.returncode == 1 and "BLK118" in proc.stdout, proc.stdout + proc.stderr


def test_commit_without_dbt_files_is_a_no_op(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "README.md").write_text("# shop\n")
    _git(repo, "add", "-A")
    for hook in ("fast-compile", "check-contracts", "check-critical-tags", "check-schema-diff"):
        proc = bulwark(repo, hook, PRE_COMMIT="1")
        assert proc.returncode == 0, (hook, proc.stdout, proc.stderr)
        assert proc.stdout == "" and proc.stderr == "", (hook, proc.stdout, proc.stderr)


# ----------------------------------------------------------------------------- higher confidence


def test_sql_that_parsed_at_the_base_and_no_longer_parses_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Without DuckDB (the hook environment), a sqlglot-only failure is BLK131 info;
    against a base where the SQL parsed, it is an error."""
    from dbt_bulwark import cli
    from dbt_bulwark.sql import sql_verdicts

    files = dict(PROJECT)
    files["bulwark.yml"] = "dialect: snowflake\n"
    repo = _repo(tmp_path, files)
    (repo / "models/stg_products.sql").write_text("select 1 as id, 'a' as name from t t2 t3\n")
    monkeypatch.setattr(sql_verdicts, "_duckdb_parse", lambda sql: False)
    monkeypatch.chdir(repo)
    code = cli.main(["fast-compile", "models/stg_products.sql", "--no-base", "--no-cache"])
    out = capsys.readouterr().out
    assert code == 0 and "BLK131 [info]" in out, out
    code = cli.main(["fast-compile", "models/stg_products.sql", "--no-cache"])
    out = capsys.readouterr().out
    assert code == 1 and "BLK130 SQL syntax error" in out and "parsed at the base" in out, out


def test_one_run_lists_the_base_once_and_asks_git_each_question_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`bulwark check` on a change: the regression base and the schema-diff layer read the
    base revision through one reader (one `ls-tree`), and each `rev-parse` question (top
    level, revision ids) goes to git once; the verdict is the one of separate readers."""
    from dbt_bulwark import cli
    from dbt_bulwark.project import gitfs

    repo = _repo(tmp_path)
    (repo / "models/stg_products.sql").write_text("select 1 as product_id\n")
    _git(repo, "add", "-A")
    asked: list[tuple[str, ...]] = []
    real = gitfs.run_git

    def spy(cwd: Any, *args: str, **kw: Any) -> Any:
        asked.append(args)
        return real(cwd, *args, **kw)

    monkeypatch.setattr(gitfs, "run_git", spy)
    monkeypatch.chdir(repo)
    for var in [k for k in os.environ if k.startswith(("GIT_", "PRE_COMMIT"))]:
        monkeypatch.delenv(var)
    code = cli.main(["check", "models/stg_products.sql", "--no-cache"])
    out = capsys.readouterr().out
    assert code == 1 and "BLK401" in out, out          # a removed column, judged on the base
    listings = [a for a in asked if "ls-tree" in a]
    assert len(listings) == 1, listings
    rev_parses = [a for a in asked if "rev-parse" in a]
    assert len(rev_parses) == len(set(rev_parses)), rev_parses
    assert gitfs._RUN_MEMO is None, "the memo lives for one command"


# ----------------------------------------------------------------------------- no silent skips


def test_base_outside_git_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    _write(root, PROJECT)
    for hook in ("fast-compile", "check-schema-diff", "check-critical-tags"):
        proc = bulwark(root, hook, "--all-files", "--base", "HEAD", "--repo-root", str(root))
        assert proc.returncode == 2, (hook, proc.stdout, proc.stderr)
        assert "not inside a git repository" in proc.stderr
    # no --base outside git: nothing to compare, everything counts
    assert bulwark(root, "fast-compile", "--all-files", "--repo-root", str(root)).returncode == 0


def test_missing_from_ref_and_to_ref_are_errors(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    head = _git(repo, "rev-parse", "HEAD")
    ghost = "1234567890abcdef1234567890abcdef12345678"
    for hook in ("fast-compile", "check-schema-diff", "check-contracts"):
        proc = bulwark(repo, hook, "models/products.sql", PRE_COMMIT="1",
                       PRE_COMMIT_FROM_REF=ghost, PRE_COMMIT_TO_REF=head)
        assert proc.returncode == 2, (hook, proc.stdout, proc.stderr)
        assert "PRE_COMMIT_FROM_REF" in proc.stderr and ghost[:10] in proc.stderr
        proc = bulwark(repo, hook, "models/products.sql", PRE_COMMIT="1",
                       PRE_COMMIT_FROM_REF=head, PRE_COMMIT_TO_REF=ghost)
        assert proc.returncode == 2, (hook, proc.stdout, proc.stderr)
        assert "PRE_COMMIT_TO_REF" in proc.stderr


def test_git_not_on_path_is_an_error(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    for hook in ("fast-compile", "check-schema-diff"):
        proc = bulwark(repo, hook, "--all-files", "--repo-root", str(repo), PATH=str(empty))
        assert proc.returncode == 2, (hook, proc.stdout, proc.stderr)
        assert "git is not installed or not on PATH" in proc.stderr


def test_project_in_a_submodule_is_compared_in_its_own_history(tmp_path: Path) -> None:
    sub = tmp_path / "analytics"
    sub.mkdir()
    _write(sub, PROJECT)
    _git(sub, "init", "-q")
    _commit(sub, "dbt project")
    sup = tmp_path / "super"
    sup.mkdir()
    _git(sup, "init", "-q")
    (sup / "README.md").write_text("super\n")
    _commit(sup, "super")
    _git(sup, "submodule", "add", "-q", str(sub), "analytics")
    first = _commit(sup, "add the dbt project as a submodule")
    inner = sup / "analytics"
    _git(inner, "rm", "-q", "models/stg_products.sql")
    _commit(inner, "delete a model that is still used")
    _commit(sup, "bump the submodule")
    proc = bulwark(sup, "check-schema-diff", "--base", first, "--format", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    codes = {f["code"] for f in _codes(proc)}
    assert "BLK407" in codes, proc.stdout
    assert "BLK423" not in codes         # not "every model is new"
    proc = bulwark(sup, "fast-compile", "--all-files", "--base", first)
    assert proc.returncode == 1 and "BLK118" in proc.stdout, proc.stdout + proc.stderr
    assert "analytics/models/products.sql:2" in proc.stdout
    proc = bulwark(sup, "check", "--all-files", "--base", first)
    assert "== schema-diff: FAILED" in proc.stdout and "BLK407" in proc.stdout, proc.stdout


# ----------------------------------------------------------------------------- unloadable YAML

CRITICAL_YAML = """version: 2
models:
  - name: products
    config:
      tags: [critical]
      contract: {enforced: true}
      meta: {owner: team}
    description: Products.
    columns:
      - name: id
        data_type: integer
        data_tests: [unique, not_null]
      - name: name
        data_type: varchar
"""


def test_unparseable_properties_file_is_not_a_change(tmp_path: Path) -> None:
    files = dict(PROJECT)
    files["models/products.yml"] = CRITICAL_YAML
    repo = _repo(tmp_path, files)
    p = repo / "models/products.yml"
    p.write_text(p.read_text().replace("    description: Products.", "   description: [oops"))
    (repo / "models/products.sql").write_text("-- touched\nselect id, name\n"
                                              "from {{ ref('stg_products') }}\n")
    _git(repo, "add", "-A")
    for hook, bad in (("check-critical-tags", {"BLK310", "BLK312"}),
                      ("check-schema-diff", {"BLK404", "BLK401", "BLK405"})):
        # without the fix: BLK310 lost tag, BLK312 tests removed, BLK404 contract turned off
        proc = bulwark(repo, hook, "models/products.yml", "models/products.sql", "--format",
                       "json", PRE_COMMIT="1")
        codes = {f["code"] for f in _codes(proc)}
        assert not codes & bad, (hook, proc.stdout)
        assert "BLK001" in codes, (hook, proc.stdout)     # the file itself is reported
        assert "BLK009" in codes, (hook, proc.stdout)     # and what it leaves unchecked


def test_deleting_a_critical_model_runs_the_critical_hook(tmp_path: Path) -> None:
    files = dict(PROJECT)
    files["models/products.yml"] = CRITICAL_YAML
    repo = _repo(tmp_path, files)
    _git(repo, "rm", "-q", "models/products.sql")
    proc = bulwark(repo, "check-critical-tags", PRE_COMMIT="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "BLK311" in proc.stdout


# ----------------------------------------------------------------------------- coverage


def test_coverage_line_names_the_reasons(tmp_path: Path) -> None:
    files = dict(PROJECT)
    files["packages.yml"] = PACKAGES
    files["models/keyed.sql"] = ("select {{ dbt_utils.generate_surrogate_key(['id']) }} as k\n"
                                 "from {{ ref('products') }}\n")
    repo = _repo(tmp_path, files)
    proc = bulwark(repo, "fast-compile", "--all-files")
    line = [x for x in proc.stderr.splitlines() if x.startswith("coverage of project 'shop'")]
    assert line, proc.stderr
    assert "1 not checked" in line[0]
    assert "package dbt_utils not installed: run dbt deps: 1" in line[0]
    proc = bulwark(repo, "fast-compile", "--all-files", "--format", "json")
    (cov,) = json.loads(proc.stdout)["coverage"]
    assert cov["not_checked"] == 1 and cov["models"] == cov["fully_checked"] + 1
    assert cov["reasons"] == {"package dbt_utils not installed: run dbt deps": 1}


def test_bulwark_check_sees_deletions(tmp_path: Path) -> None:
    repo = _with_packages(tmp_path)
    _git(repo, "rm", "-q", "models/stg_products.sql")
    proc = bulwark(repo, "check", "--base", "HEAD")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "== fast-compile: FAILED" in proc.stdout and "BLK118" in proc.stdout, proc.stdout


# ----------------------------------------------------------------------------- finding shape


def test_existing_label_and_exit_counting() -> None:
    from dbt_bulwark.findings import Finding, exit_code

    new = Finding("m.sql", 1, 1, "BLK110", "x")
    old = Finding("m.sql", 1, 1, "BLK110", "x", existing=True)
    assert new == old                      # the label is not part of the identity
    assert old.text().startswith("m.sql:1:1: BLK110 [existing] x")
    warn = Finding("m.sql", 1, 1, "BLK312", "y", "warning", existing=True)
    assert "BLK312 [warning] [existing] y" in warn.text()
    assert exit_code([old]) == 0 and exit_code([old], include_existing=True) == 1
    assert exit_code([new]) == 1
    assert old.to_dict()["existing"] is True


def test_a_base_that_shows_the_work_tree_is_the_work_trees_project(tmp_path: Path) -> None:
    """A clean ``--all-files`` run (a fresh clone in CI) loads and checks the project once:
    the base revision's files are the work tree's, so its project is the same object."""
    from dbt_bulwark.project.workspace import open_workspace

    repo = _repo(tmp_path)
    (repo / "target").mkdir()
    (repo / "target/manifest.json").write_text("{}")     # no project reads target/
    (repo / ".bulwark-cache").mkdir()
    (repo / ".bulwark-cache/x").write_text("x")          # nor a hidden folder

    def same() -> bool:
        ws = open_workspace(None, str(repo), None, False)
        try:
            return ws.base_project(ws.tree_at("HEAD"), ".") is ws.project(".")
        finally:
            ws.close()

    assert same()
    (repo / "models/new.sql").write_text("select 1 as id\n")    # untracked: a change
    assert not same()
    (repo / "models/new.sql").unlink()
    # a gitignored model is read from the work tree only: the base is not the head then
    (repo / ".gitignore").write_text("scratch_*.sql\nprofiles.yml\n.user.yml\nlocal.duckdb\n")
    _commit(repo, "ignore")
    (repo / "profiles.yml").write_text("shop: {}\n")               # read from disk alike
    (repo / "local.duckdb").write_text("")                           # not a project file
    (repo / ".user.yml").write_text("id: x\n")   # dbt's, beside a profile in the project
    assert same()
    (repo / "models/scratch_x.sql").write_text("select * from {{ ref('nowhere') }}\n")
    assert not same()
    proc = bulwark(repo, "fast-compile", "--all-files")
    assert proc.returncode == 1 and "models/scratch_x.sql" in proc.stdout, proc.stdout
    (repo / "models/scratch_x.sql").unlink()
    (repo / "models/products.sql").write_text("select id\nfrom {{ ref('stg_products') }}\n")
    assert not same()
    _git(repo, "add", "-A")                                      # staged: still a change
    assert not same()
    _commit(repo, "edit")
    assert same()
    # the committed finding is still labelled existing on the clean tree
    (repo / "models/legacy.sql").write_text("select * from {{ ref('gone_long_ago') }}\n")
    _commit(repo, "legacy")
    proc = bulwark(repo, "check", "--all-files")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BLK110 [existing] ref('gone_long_ago')" in proc.stdout


def _shape(project: Any) -> dict[str, Any]:
    """What the checks read of a loaded project, node by node (plain data)."""
    def node(n: Any) -> tuple[Any, ...]:
        return (n.unique_id, n.raw_code, n.checksum, n.config, n.config_origin, n.depends_on,
                n.refs, n.sources, n.calls, n.patch_path, n.patch_line, n.jinja_error,
                [c.name for c in n.columns])
    return {
        "nodes": sorted(node(n) for n in project.nodes.values()),
        "disabled": sorted(node(n) for ns in project.disabled.values() for n in ns),
        "tests": sorted((u, tuple(t.depends_on)) for u, t in project.data_tests.items()),
        "children": {k: sorted(v) for k, v in project.children_map().items()},
        "findings": sorted(f.text() for f in project.findings),
        "sources": sorted(project.sources), "macros_hash": project.macros_hash,
    }


def test_a_base_one_sql_body_away_is_made_from_the_work_trees_project(tmp_path: Path) -> None:
    """A commit that edits the SQL of a few models (the usual one) does not load its git
    base again: the base is the work tree's project with those nodes' code, when the text
    at the base reads as the same node (refs, sources, config() calls on the same lines).
    Every other change loads the base in full. Either way the base is what a full load of
    its files gives."""
    from dbt_bulwark.project.loader import load_project
    from dbt_bulwark.project.workspace import open_workspace

    files = {**PROJECT,
             "models/cfg.sql": "{{ config(materialized='table', tags=['x']) }}\nselect 1 as id\n",
             "models/off.sql": "{{ config(enabled=false) }}\nselect 2 as id\n",
             "models/schema.yml": "version: 2\nmodels:\n  - name: products\n    columns:\n"
                                  "      - name: id\n        data_tests: [not_null]\n"}
    repo = _repo(tmp_path, files)

    def base() -> tuple[bool, dict[str, Any], dict[str, Any]]:
        ws = open_workspace(None, str(repo), None, False)
        try:
            ws.project(".")
            tree = ws.with_installed(ws.tree_at("HEAD"), ".")
            got = ws.base_project(ws.tree_at("HEAD"), ".")
            derived = got._builder is None and got is not ws.project(".")
            return derived, _shape(got), _shape(load_project(tree, ".", ws.cli_vars, None))
        finally:
            ws.close()

    def edit(changes: dict[str, str]) -> tuple[bool, bool]:
        _write(repo, changes)
        derived, got, loaded = base()
        _git(repo, "checkout", "-q", "--", ".")
        _git(repo, "clean", "-qfd")
        return derived, got == loaded

    # SQL bodies only (the config() call stays on its line): made from the head
    assert edit({"models/products.sql": "select id, upper(name) as name\n"
                                        "from {{ ref('stg_products') }}\n",
                 "models/cfg.sql": "{{ config(materialized='table', tags=['x']) }}\n"
                                   "select 1 as id, 2 as two\n",
                 "models/off.sql": "{{ config(enabled=false) }}\nselect 3 as id\n"}) \
        == (True, True)
    # what the node reads, or where its config() sits, changed: loaded in full
    for changes in ({"models/products.sql": "select id from {{ ref('countries') }}\n"},
                    {"models/raw_orders.sql": "select * from {{ source('raw', 'x') }}\n"},
                    {"models/cfg.sql": "-- moved\n{{ config(materialized='table', "
                                       "tags=['x']) }}\nselect 1 as id\n"},
                    {"models/cfg.sql": "{{ config(materialized='view', tags=['x']) }}\n"
                                       "select 1 as id\n"},
                    {"models/products.sql": "select {{ oops( }}\n"},
                    {"models/schema.yml": files["models/schema.yml"] + "  - name: orders\n"},
                    {"macros/cents.sql": "{% macro cents(c) %}{{ c }}{% endmacro %}\n"},
                    {"models/new.sql": "select 1 as id\n"},
                    {"dbt_project.yml": files["dbt_project.yml"] + "vars: {a: 1}\n"},
                    {"seeds/countries.csv": "code\nfr\n"}):
        assert edit(changes) == (False, True), changes
    (repo / "models/stg_products.sql").unlink()              # a removed model
    assert base()[:1] == (False,)
    _git(repo, "checkout", "-q", "--", ".")
    # a file no project reads changes nothing of it
    _write(repo, {".github/ci.yml": "on: push\n", "models/products.sql": "select 9 as id, 'b' as name\n"
                  "from {{ ref('stg_products') }}\n"})
    derived, got, loaded = base()
    assert derived and got == loaded
