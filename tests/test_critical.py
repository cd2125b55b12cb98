"""check-critical-tags rules and `bulwark critical suggest` on fixture projects.

Fixtures (tests/fixtures/critical/, written for these tests):

* ``tagged``: one project whose critical models get their tags from every config
  source -- a ``dbt_project.yml`` folder ``+tags`` (marts/core), SQL ``config()``
  (revenue, ledger), YAML ``config.tags`` (stg_orders) and a per-version tag
  (dim_accounts v2) -- and their owners from top-level ``meta``, ``config.meta``,
  SQL ``config(meta=...)`` and a group. ``packages/dbt_utils`` is copied into its
  ``dbt_packages/`` (a stand-in for the real package, for the generic test only).
* ``monorepo``: two projects with their own ``bulwark.yml`` (a selector; a
  min_downstream rule with a custom critical tag and a custom locked tag).
* ``hubs``: a graph whose hubs are known, for ``critical suggest``.

Everything runs in-process through ``cli.main`` on a copy in a temporary git repo.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dbt_bulwark import cli
from dbt_bulwark.checks.critical import classify, critical_policy, primary_key, rank, reach_all
from dbt_bulwark.policy import Policy, load_policy
from dbt_bulwark.project.fs import WorkTree
from dbt_bulwark.project.loader import load_project
from dbt_bulwark.project.model import Project

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "critical"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid",
}


# --------------------------------------------------------------------------- helpers


def git(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(GIT_ENV)
    proc = subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main",
                           *args], cwd=repo, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def make_repo(tmp_path: Path, fixture: str, commit: bool = True, name: str = "repo") -> Path:
    """Copy a fixture into a fresh git repository (with its fake packages installed)."""
    repo = tmp_path / name
    shutil.copytree(FIXTURES / fixture, repo)
    if fixture == "tagged":
        shutil.copytree(FIXTURES / "packages" / "dbt_utils", repo / "dbt_packages" / "dbt_utils")
    (repo / ".gitignore").write_text(".bulwark-cache/\ntarget/\nlogs/\n")
    git(repo, "init", "-q")
    if commit:
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "--no-verify", "-m", "fixture")
    return repo


def run(repo: Path, capsys: pytest.CaptureFixture[str], *argv: str,
        monkeypatch: pytest.MonkeyPatch | None = None) -> tuple[int, str, str]:
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        rc = cli.main([*argv])
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    return rc, out, err


def check_json(repo: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list]:
    rc, out, err = run(repo, capsys, "check-critical-tags", "--format", "json", "--no-cache",
                       *extra)
    assert "Traceback" not in err
    return rc, json.loads(out)["findings"]


def brief(findings: list[dict]) -> set[tuple[str, int, str, str]]:
    return {(f["path"], f["line"], f["code"], f["node"]) for f in findings}


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def only_insertions(before: str, after: str) -> list[str]:
    """The texts inserted into ``before`` to give ``after``; fails on any other change."""
    import difflib

    sm = difflib.SequenceMatcher(None, before, after, autojunk=False)
    out = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        assert op in ("equal", "insert"), (op, before[i1:i2], after[j1:j2])
        if op == "insert":
            out.append(after[j1:j2])
    return out


def load(repo: Path, root: str = "") -> tuple[Project, Policy]:
    fs = WorkTree(repo)
    return load_project(fs, root), load_policy(fs, root)


@pytest.fixture
def tagged(tmp_path: Path) -> Path:
    return make_repo(tmp_path, "tagged")


# --------------------------------------------------------------------------- which models


def test_critical_models_from_every_config_source(tagged: Path) -> None:
    project, policy = load(tagged)
    st = classify(project, critical_policy(policy))
    by_name = {(s.node.name, s.node.version): s for s in st.values()}
    assert set(by_name) == {
        ("fct_orders", None),      # dbt_project.yml folder +tags
        ("dim_customers", None),   # dbt_project.yml folder +tags
        ("revenue", None),         # SQL config(tags=...)
        ("ledger", None),          # SQL config, locked + critical
        ("stg_orders", None),      # YAML config.tags: locked
        ("dim_accounts", 2),       # per-version YAML tag; v1 is not critical
    }
    assert by_name[("ledger", None)].locked and by_name[("stg_orders", None)].locked
    assert not by_name[("revenue", None)].locked
    assert all(not s.required for s in st.values())  # zero config: only tags count


def test_zero_config_findings(tagged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, findings = check_json(tagged, capsys, "--all-files", "--no-base")
    assert rc == 1
    assert brief(findings) == {
        ("models/staging/_staging.yml", 6, "BLK301", "model.crit.stg_orders"),
        ("models/marts/core/fct_orders.sql", 1, "BLK302", "model.crit.fct_orders"),
        ("models/marts/core/fct_orders.sql", 1, "BLK303", "model.crit.fct_orders"),
        ("models/marts/core/fct_orders.sql", 1, "BLK304", "model.crit.fct_orders"),
    }
    f301 = next(f for f in findings if f["code"] == "BLK301")
    assert "locked model 'stg_orders' is missing tag 'critical'" in f301["message"]


def test_text_output_and_summary(tagged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(tagged, capsys, "check-critical-tags", "--all-files", "--no-base",
                     "--no-cache")
    assert rc == 1
    first = out.splitlines()[0]
    assert first.startswith("models/marts/core/fct_orders.sql:1:1: BLK302 ")
    assert "hint: " in out
    summary, totals = out.strip().splitlines()[-2:]
    assert totals == "Found 4 errors, 0 warnings (1 fixable with --fix)"
    assert summary.startswith("check-critical-tags: 6 critical model(s) (2 locked); ")
    assert "without an enforced contract" in summary and "see check-contracts" in summary


def test_protections_satisfied_in_every_accepted_form(tagged: Path) -> None:
    project, policy = load(tagged)
    nodes = {n.name: n for n in project.models() if n.version in (None, 2)}
    assert "unique + not_null" in (primary_key(nodes["dim_customers"]) or "")
    assert "unique_combination_of_columns(customer_id)" in (primary_key(nodes["revenue"]) or "")
    assert "primary_key constraint" in (primary_key(nodes["ledger"]) or "")
    assert primary_key(nodes["fct_orders"]) is None
    from dbt_bulwark.checks.critical import owner

    assert owner(project, nodes["dim_customers"]) == "meta.owner: crm-team"   # top-level meta
    assert owner(project, nodes["budget"]) == "meta.owner: fp-and-a"          # config.meta
    assert owner(project, nodes["ledger"]) == "meta.owner: finance-team"      # SQL config
    assert owner(project, nodes["revenue"]) == "group 'finance' (Finance)"    # group owner
    assert owner(project, nodes["dim_accounts"]) == "meta.owner: accounts-team"  # versions


def test_only_changed_files_are_reported(tagged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, findings = check_json(tagged, capsys, "--no-base", "models/staging/stg_customers.sql")
    assert (rc, findings) == (0, [])
    rc, findings = check_json(tagged, capsys, "--no-base", "models/marts/core/fct_orders.sql")
    assert rc == 1 and {f["code"] for f in findings} == {"BLK302", "BLK303", "BLK304"}
    # a dbt_project.yml change affects the whole project
    rc, findings = check_json(tagged, capsys, "--no-base", "dbt_project.yml")
    assert len(findings) == 4


def test_policy_rules_select_more_models(tagged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tagged / "bulwark.yml").write_text(
        "critical:\n"
        "  select: path:models/marts/finance\n"
        "  feeds_exposures: true\n"
        "  require: {description: false, owner: false, primary_key: false}\n")
    rc, findings = check_json(tagged, capsys, "--all-files", "--no-base")
    assert rc == 1
    missing = {(f["node"], f["code"]) for f in findings}
    assert missing == {
        ("model.crit.stg_orders", "BLK301"),    # locked, still needs `critical`
        ("model.crit.budget", "BLK301"),        # finance path, and feeds weekly_dashboard
    }
    budget = next(f for f in findings if f["node"] == "model.crit.budget")
    assert "matches critical.select; feeds exposure 'weekly_dashboard'" in budget["message"]


def test_min_downstream_and_public(tagged: Path) -> None:
    (tagged / "bulwark.yml").write_text("critical:\n  min_downstream: 2\n  public: true\n")
    edit(tagged / "models/marts/misc/scratch.sql", "select", "{{ config(access='public') }}\nselect")
    project, policy = load(tagged)
    st = classify(project, critical_policy(policy))
    required = {s.node.name: s.reasons for s in st.values() if s.required}
    # stg_orders -> fct_orders -> revenue, ledger: 3 downstream; fct_orders: 2;
    # stg_customers -> dim_customers -> exposure weekly_dashboard: 1 model + 1 exposure
    assert set(required) == {"stg_orders", "fct_orders", "stg_customers", "scratch"}
    assert required["scratch"] == ["access: public"]
    assert required["stg_orders"] == ["tagged 'locked'",
        "3 downstream models/exposures (critical.min_downstream: 2)"]


def test_group_without_owner_and_disabled_tests(tagged: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    fin = tagged / "models/marts/finance/_finance.yml"
    edit(fin, "    owner:\n      name: Finance\n      email: finance@example.com\n",
         "    owner: {}\n")
    core = tagged / "models/marts/core/_core.yml"
    edit(core, "data_tests: [unique, not_null]",
         "data_tests:\n          - unique:\n              config: {enabled: false}\n"
         "          - not_null")
    rc, findings = check_json(tagged, capsys, "--all-files", "--no-base")
    got = {(f["node"], f["code"]): f["message"] for f in findings}
    assert "its group 'finance' has no owner" in got[("model.crit.revenue", "BLK303")]
    assert ("model.crit.dim_customers", "BLK304") in got


def test_model_level_unique_on_column_name(tagged: Path) -> None:
    core = tagged / "models/marts/core/_core.yml"
    edit(core, "    columns:\n      - name: customer_id\n        data_tests: [unique, not_null]\n",
         "    data_tests:\n      - unique: {column_name: customer_id}\n"
         "      - not_null: {column_name: customer_id}\n")
    project, _ = load(tagged)
    node = project.model_by_name("dim_customers")
    assert node is not None
    assert primary_key(node) == "'customer_id' is tested unique + not_null"


def test_monorepo_policies_per_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, "monorepo")
    rc, findings = check_json(repo, capsys, "--all-files", "--no-base")
    assert rc == 1
    assert brief(findings) == {
        ("sales/models/marts/_marts.yml", 4, "BLK301", "model.sales.fct_deals"),
        ("ops/models/schema.yml", 9, "BLK301", "model.ops.fct_tickets"),
    }
    ops = next(f for f in findings if f["node"] == "model.ops.fct_tickets")
    assert "locked model 'fct_tickets' is missing tag 'tier1' (tagged 'frozen')" in ops["message"]
    # a file of one project only checks that project
    rc, findings = check_json(repo, capsys, "--no-base", "sales/models/marts/fct_deals.sql")
    assert [f["node"] for f in findings] == ["model.sales.fct_deals"]


def test_bad_policy_selector_is_a_usage_error(tagged: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tagged / "bulwark.yml").write_text("critical:\n  select: 'nosuch:thing'\n")
    rc, out, err = run(tagged, capsys, "check-critical-tags", "--all-files", "--no-base",
                       "--no-cache")
    assert rc == 2
    assert "critical.select" in err and "Traceback" not in err


def test_broken_yaml_is_a_finding_not_a_crash(tagged: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tagged / "models/staging/_staging.yml").write_text("version: 2\nmodels:\n  - name: [oops\n")
    (tagged / "models/staging/stg_orders.sql").write_bytes(b"select \xff as x\n")
    rc, findings = check_json(tagged, capsys, "models/staging/_staging.yml",
                              "models/staging/stg_orders.sql")
    codes = {(f["path"], f["code"]) for f in findings}
    assert ("models/staging/_staging.yml", "BLK001") in codes
    assert ("models/staging/stg_orders.sql", "BLK003") in codes
    assert rc == 1


def test_no_project_and_no_git(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(tmp_path, capsys, "check-critical-tags", "--repo-root", str(tmp_path))
    assert rc == 0 and "no dbt_project.yml" in err
    plain = tmp_path / "plain"
    shutil.copytree(FIXTURES / "tagged", plain)  # not a git repository: base check skipped
    rc, findings = check_json(plain, capsys, "--all-files", "--repo-root", str(plain))
    assert rc == 1 and len(findings) == 4


# --------------------------------------------------------------------------- suggest


def test_suggest_ranks_the_known_hubs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, "hubs")
    project, policy = load(repo)
    ranked = rank(project, critical_policy(policy))
    names = [s.node.name for s in ranked]
    assert names[:3] == ["int_customers", "stg_users", "stg_orders"]
    assert names[-1] == "stg_misc"
    reach = reach_all(project)
    hub = reach["model.hubs.int_customers"]
    assert (hub.direct, hub.downstream, hub.exposures) == (4, 6, ["exec_dashboard", "growth"])
    users = reach["model.hubs.stg_users"]
    assert (users.direct, users.downstream) == (2, 8)

    rc, out, _ = run(repo, capsys, "critical", "suggest", "--top", "3", "--no-cache")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["rank", "model", "score"]
    assert [ln.split()[1] for ln in lines[1:]] == ["int_customers", "stg_users", "stg_orders"]
    assert "feeds 2 exposure(s) (exec_dashboard, growth); 6 downstream model(s), 4 direct" in out


def test_suggest_json_select_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, "hubs")
    rc, out, _ = run(repo, capsys, "critical", "suggest", "--select", "path:models/marts",
                     "--top", "2", "--format", "json", "--no-cache")
    data = json.loads(out)
    assert rc == 0
    assert [s["name"] for s in data["suggestions"]] == ["fct_sales", "fct_engagement"]
    assert data["suggestions"][0]["marts"] and data["suggestions"][0]["tests"] == 2

    before = (repo / "models/marts/_marts.yml").read_text()
    rc, out, _ = run(repo, capsys, "critical", "suggest", "--top", "4", "--write", "--no-cache")
    assert rc == 0
    assert "added tags in models/intermediate/schema.yml" in out
    assert "added tags in models/marts/_marts.yml" in out
    after = (repo / "models/marts/_marts.yml").read_text()
    inserted = only_insertions(before, after)
    assert "".join(inserted).strip("\n") == "    config:\n      tags:\n        - critical"
    project, policy = load(repo)
    tagged_now = {s.node.name for s in classify(project, critical_policy(policy)).values()}
    assert tagged_now == {"int_customers", "stg_users", "stg_orders", "fct_sales"}
    # written tags are seen as tagged on the next run, nothing written twice
    rc, out, _ = run(repo, capsys, "critical", "suggest", "--top", "4", "--write", "--no-cache")
    assert "added tags" not in out and out.count(" yes ") == 4


def test_suggest_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, "hubs")
    rc, _, err = run(repo, capsys, "critical")
    assert rc == 2 and "critical suggest" in err
    with pytest.raises(SystemExit) as exc:
        run(repo, capsys, "critical", "suggest", "--top", "x")
    assert exc.value.code == 2
