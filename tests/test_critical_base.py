"""check-critical-tags against the base revision (BLK310-BLK312), on real git repos.

The fixture ``tagged`` is committed, then the working tree is changed the way a
developer would, and the hook compares with HEAD (pre-commit) or ``--base REV`` (CI).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_critical import check_json, edit, git, make_repo, run

FIN = "models/marts/finance/_finance.yml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path, "tagged")


def codes(findings: list[dict]) -> set[tuple[str, str]]:
    return {(f["code"], f["node"]) for f in findings}


def test_unchanged_tree_has_no_base_findings(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, findings = check_json(repo, capsys, "--all-files")
    assert {f["code"] for f in findings} == {"BLK301", "BLK302", "BLK303", "BLK304"}


def test_removed_tag_is_reported_where_tags_are_set(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = repo / "models/marts/finance/revenue.sql"
    edit(sql, "{{ config(tags=['critical']) }}\n", "")
    rc, findings = check_json(repo, capsys, "models/marts/finance/revenue.sql")
    assert rc == 1
    assert [(f["code"], f["path"], f["line"]) for f in findings] == [
        ("BLK310", FIN, 10)]  # no tags anywhere now: the model's YAML entry
    assert "lost tag 'critical' (it was critical at the base revision)" in findings[0]["message"]


def test_removed_folder_tag_points_at_remaining_tag_source(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # ledger keeps 'locked' (SQL) but loses 'critical': it is still critical (locked), so
    # BLK301 reports it and says the tag was there at base; no duplicate BLK310.
    sql = repo / "models/marts/finance/ledger.sql"
    edit(sql, "tags=['locked', 'critical']", "tags=['locked']")
    rc, findings = check_json(repo, capsys, "models/marts/finance/ledger.sql")
    assert codes(findings) == {("BLK301", "model.crit.ledger")}
    assert findings[0]["message"].endswith("; it had it at the base revision")
    # removing 'locked' instead: BLK310 at the line of the SQL config() that sets tags
    sql.write_text(sql.read_text().replace("tags=['locked']", "tags=['critical']"))
    rc, findings = check_json(repo, capsys, "models/marts/finance/ledger.sql")
    assert [(f["code"], f["path"], f["line"]) for f in findings] == [
        ("BLK310", "models/marts/finance/ledger.sql", 2)]
    assert "lost tag 'locked' (it was locked" in findings[0]["message"]


def test_moving_a_tag_between_sources_is_fine(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = repo / "models/marts/finance/revenue.sql"
    edit(sql, "{{ config(tags=['critical']) }}\n", "")
    edit(repo / FIN, "    config:\n      group: finance\n",
         "    config:\n      group: finance\n      tags: [critical]\n")
    rc, findings = check_json(repo, capsys, "models/marts/finance/revenue.sql", FIN)
    assert (rc, findings) == (0, [])


def test_policy_change_that_no_longer_requires_it_excuses_the_removal(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = repo / "models/marts/finance/revenue.sql"
    edit(sql, "{{ config(tags=['critical']) }}\n", "")
    (repo / "bulwark.yml").write_text("critical:\n  select: path:models/marts/core\n")
    rc, findings = check_json(repo, capsys, "models/marts/finance/revenue.sql", "bulwark.yml")
    assert not {f for f in codes(findings) if f[1] == "model.crit.revenue"}


def test_policy_change_that_still_requires_it_is_not_an_excuse(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = repo / "models/marts/finance/revenue.sql"
    edit(sql, "{{ config(tags=['critical']) }}\n", "")
    (repo / "bulwark.yml").write_text("critical:\n  select: path:models/marts/finance\n")
    rc, findings = check_json(repo, capsys, "models/marts/finance/revenue.sql")
    revenue = [f for f in findings if f["node"] == "model.crit.revenue"]
    assert [f["code"] for f in revenue] == ["BLK301"]
    assert "it had it at the base revision" in revenue[0]["message"]


def test_policy_file_unchanged_is_not_an_excuse(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the same policy committed at base and now: untagging still needs a policy change
    (repo / "bulwark.yml").write_text("critical:\n  select: path:models/marts/core\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "policy")
    sql = repo / "models/marts/finance/revenue.sql"
    edit(sql, "{{ config(tags=['critical']) }}\n", "")
    rc, findings = check_json(repo, capsys, "models/marts/finance/revenue.sql")
    assert codes(findings) == {("BLK310", "model.crit.revenue")}


def test_disabling_a_locked_model(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit(repo / FIN, "  - name: ledger\n    description: The ledger.\n",
         "  - name: ledger\n    description: The ledger.\n    config:\n      enabled: false\n")
    rc, findings = check_json(repo, capsys, FIN)
    assert [(f["code"], f["path"], f["line"]) for f in findings] == [("BLK311", FIN, 23)]  # the `enabled: false` line
    assert "locked model 'ledger' is disabled by this change" in findings[0]["message"]


def test_deleting_a_critical_model(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "models/marts/accounts/dim_accounts_v2.sql").unlink()
    rc, findings = check_json(repo, capsys, "models/marts/accounts/_accounts.yml")
    got = [f for f in findings if f["code"] == "BLK311"]
    assert [f["path"] for f in got] == ["models/marts/accounts/dim_accounts_v2.sql"]
    assert "'dim_accounts.v2' was deleted or renamed" in got[0]["message"]
    # the loader's warning about the YAML version entry is fast-compile's to report
    assert "BLK035" not in {f["code"] for f in findings}


def test_removed_tests_of_locked_and_critical_models(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stg = repo / "models/staging/_staging.yml"
    edit(stg, "      - name: amount\n        data_tests:\n          - not_null\n", "")
    core = repo / "models/marts/core/_core.yml"
    edit(core, "data_tests: [unique, not_null]", "data_tests: [unique]")
    rc, findings = check_json(repo, capsys, "models/staging/_staging.yml",
                              "models/marts/core/_core.yml")
    by = {(f["code"], f["node"]): f for f in findings}
    locked = by[("BLK312", "model.crit.stg_orders")]
    assert locked["severity"] == "error" and "not_null(amount)" in locked["message"]
    crit = by[("BLK312", "model.crit.dim_customers")]
    assert crit["severity"] == "warning" and "not_null(customer_id)" in crit["message"]
    assert ("BLK304", "model.crit.dim_customers") in by  # and the key is no longer tested


def test_explicit_base_revision_and_cache(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = repo / "models/marts/finance/revenue.sql"
    edit(sql, "{{ config(tags=['critical']) }}\n", "")
    git(repo, "commit", "-q", "-am", "untag revenue")
    rc, findings = check_json(repo, capsys, "--all-files")  # HEAD: nothing removed
    assert "BLK310" not in {f["code"] for f in findings}
    # CI: compare with the commit before; twice, the second from the parse cache
    for _ in range(2):
        rc, out, err = run(repo, capsys, "check-critical-tags", "--format", "json",
                           "--base", "HEAD~1")
        assert ("BLK310", "model.crit.revenue") in codes(__import__("json").loads(out)["findings"])
    assert (repo / ".bulwark-cache").is_dir()
    rc, out, err = run(repo, capsys, "check-critical-tags", "--base", "nosuchrev")
    assert rc == 2 and "nosuchrev" in err


def test_no_commits_yet_and_no_base_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, "tagged", commit=False)
    rc, findings = check_json(repo, capsys, "--all-files")
    assert len(findings) == 4  # no base: only the protection rules
    edit(repo / "models/marts/finance/revenue.sql", "{{ config(tags=['critical']) }}\n", "")
    rc, findings = check_json(repo, capsys, "--all-files", "--no-base")
    assert "BLK310" not in {f["code"] for f in findings}


def test_policy_can_switch_base_checks_off(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "bulwark.yml").write_text("critical:\n  check_base: false\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "policy")
    edit(repo / "models/marts/finance/revenue.sql", "{{ config(tags=['critical']) }}\n", "")
    rc, findings = check_json(repo, capsys, "models/marts/finance/revenue.sql")
    assert (rc, findings) == (0, [])


def test_monorepo_base_per_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, "monorepo")
    edit(repo / "ops/models/fct_tickets.sql", "{{ config(tags=['frozen']) }}\n", "")
    rc, findings = check_json(repo, capsys, "ops/models/fct_tickets.sql")
    assert [(f["code"], f["node"]) for f in findings] == [("BLK310", "model.ops.fct_tickets")]
    assert "lost tag 'frozen'" in findings[0]["message"]
