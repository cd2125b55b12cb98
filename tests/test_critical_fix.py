"""`check-critical-tags --fix`: missing tags are *inserted*, nothing else in the YAML moves.

Every test compares the file before and after with a character diff and accepts
only insertions (comments, anchors, flow lists, quoting and CRLF line endings stay
byte for byte), then reloads the project to prove dbt would now see the tags.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_critical import check_json, load, make_repo, only_insertions, run

from dbt_bulwark.checks.critical import classify, critical_policy

STG = "models/staging/_staging.yml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path, "tagged")


def fix(repo: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    return run(repo, capsys, "check-critical-tags", "--fix", "--no-base", "--no-cache", *extra)


def tags_of(repo: Path, name: str, version: int | str | None = None) -> list[str]:
    project, _ = load(repo)
    node = project.model_by_name(name, version)
    assert node is not None
    return node.tags


def test_fix_extends_a_quoted_flow_list(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (repo / STG).read_text()
    rc, out, err = fix(repo, capsys, "--all-files")
    assert rc == 1
    assert f"added tags in {STG}" in err
    assert "BLK301" not in out  # fixed findings are not reported again
    after = (repo / STG).read_text()
    assert only_insertions(before, after) == [', "critical"']
    assert set(tags_of(repo, "stg_orders")) == {"locked", "critical"}
    # nothing left to fix: the file is not touched again
    rc, out, err = fix(repo, capsys, "--all-files")
    assert "added tags" not in err and (repo / STG).read_text() == after


CRLF_YAML = (
    "# staging models -- keep this comment\r\n"
    "version: 2\r\n"
    "\r\n"
    "models:\r\n"
    "  - name: stg_customers\r\n"
    "    description: &desc 'Customers from the CRM.'   # an anchor, reused below\r\n"
    "  - name: stg_orders\r\n"
    "    description: *desc\r\n"
    "    config: {tags: [locked], meta: {owner: 'orders-team'}}   # flow mapping\r\n"
    "    columns:\r\n"
    "      - name: order_id\r\n"
    "        data_tests: [unique, not_null]   # flow list\r\n"
    "\r\n"
    "# trailing comment\r\n"
)


def test_fix_keeps_comments_anchors_flow_style_and_crlf(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = repo / STG
    path.write_bytes(CRLF_YAML.encode())
    rc, out, err = fix(repo, capsys, STG)
    assert rc == 1, out + err
    after = path.read_bytes().decode()
    assert only_insertions(CRLF_YAML, after) == [", critical"]
    assert after.count("\r\n") == CRLF_YAML.count("\r\n") and "\n" not in after.replace("\r\n", "")
    assert set(tags_of(repo, "stg_orders")) == {"locked", "critical"}


BLOCK_YAML = """\
version: 2

models:
  - name: stg_customers
    description: Customers from the CRM.
  - name: stg_orders
    description: >
      One row per order,
      folded.
    config:
      tags:
        - locked          # block list with a comment
      meta:
        owner: orders-team
    columns:
      - name: order_id
        data_tests:
          - unique
          - not_null
"""


def test_fix_extends_a_block_list(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = repo / STG
    path.write_text(BLOCK_YAML)
    rc, out, err = fix(repo, capsys, STG)
    assert rc == 1
    inserted = "".join(only_insertions(BLOCK_YAML, path.read_text()))
    assert inserted.strip() == "- critical"
    assert set(tags_of(repo, "stg_orders")) == {"locked", "critical"}


def test_fix_creates_entries_and_files(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "bulwark.yml").write_text(
        "critical:\n  select: 'path:models/marts/finance path:models/marts/misc dim_accounts'\n"
        "  require: {description: false, owner: false, primary_key: false}\n")
    (repo / "models/marts/finance/forecast.sql").write_text("select 1 as id\n")
    core = repo / "models/marts/finance/_finance.yml"
    acc = repo / "models/marts/accounts/_accounts.yml"
    before_core, before_acc = core.read_text(), acc.read_text()
    rc, out, err = fix(repo, capsys, "--all-files")
    assert rc == 1, out + err
    # forecast has no entry: appended to the properties file of its folder
    inserted = "".join(only_insertions(before_core, core.read_text()))
    assert "- name: forecast" in inserted and "critical" in inserted
    # scratch has no YAML in its folder: models/marts/misc/schema.yml is created
    created = (repo / "models/marts/misc/schema.yml").read_text()
    assert created.startswith("version: 2\n") and "- name: scratch" in created
    # version 1 of dim_accounts gets the tag on its own `- v: 1` entry
    inserted = "".join(only_insertions(before_acc, acc.read_text()))
    assert "critical" in inserted
    project, policy = load(repo)
    st = classify(project, critical_policy(policy))
    for s in st.values():
        assert "critical" in s.node.tags, s.node.unique_id
    assert "critical" in tags_of(repo, "forecast")
    assert "critical" in tags_of(repo, "budget")
    assert "critical" in tags_of(repo, "scratch")
    assert "critical" in tags_of(repo, "dim_accounts", 1)
    rc, findings = check_json(repo, capsys, "--all-files", "--no-base")
    assert (rc, findings) == (0, [])


def test_fix_refuses_to_edit_through_an_alias(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        "version: 2\n"
        "models:\n"
        "  - name: stg_customers\n"
        "    config: &shared\n"
        "      tags: [locked]\n"
        "  - name: stg_orders\n"
        "    config: *shared\n"
    )
    path = repo / STG
    path.write_text(text)
    rc, out, err = fix(repo, capsys, STG)
    assert rc == 1
    assert path.read_text() == text  # untouched
    assert "BLK320 --fix could not add tag 'critical' to 'stg_customers'" in out
    assert "Traceback" not in err
    assert out.count("BLK301") == 2  # still reported


def test_fix_writes_config_tags_never_top_level(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a top-level `tags:` on a model entry is ignored by dbt 1.11: not extended, not counted
    text = (
        "version: 2\n"
        "models:\n"
        "  - name: stg_customers\n"
        "  - name: stg_orders\n"
        "    tags: [critical]          # dbt ignores this\n"
        "    config:\n"
        "      tags: [locked]\n"
    )
    path = repo / STG
    path.write_text(text)
    rc, out, err = fix(repo, capsys, STG)
    assert rc == 1, out + err
    assert only_insertions(text, path.read_text()) == [", critical"]
    assert "      tags: [locked, critical]\n" in path.read_text()
    assert "    tags: [critical]          # dbt ignores this\n" in path.read_text()
    assert set(tags_of(repo, "stg_orders")) == {"locked", "critical"}


def test_fix_that_does_not_take_effect_is_an_error(repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import dbt_bulwark.checks.critical as critical

    # tags written to a file dbt does not read (outside model-paths): the re-check sees it
    monkeypatch.setattr(critical, "properties_file_for", lambda project, node: "docs/x.yml")
    rc, out, err = fix(repo, capsys, STG)
    assert rc == 1
    assert (repo / "docs" / "x.yml").exists()
    assert "BLK321" in out and "stg_orders" in out and "BLK301" not in out
    assert "Traceback" not in err


def test_suggest_write_puts_tags_under_config(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    rc, out, err = run(repo, capsys, "critical", "suggest", "--top", "0", "--write",
                       "--no-cache")
    assert rc == 0, err
    for yml in repo.glob("models/**/*.yml"):
        data = yaml.safe_load(yml.read_text()) or {}
        for entry in data.get("models") or []:
            assert "tags" not in entry, (yml, entry)
            for v in entry.get("versions") or []:
                assert "tags" not in v, (yml, v)
    project, _ = load(repo)
    assert all("critical" in n.tags for n in project.models(include_packages=False))


def test_fix_refuses_while_a_file_that_may_describe_the_model_does_not_load(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # the model's own `_scratch.yml` has a syntax error: a new schema.yml entry would make
    # it "described twice" once the user repairs the file
    (repo / "bulwark.yml").write_text(
        "critical:\n  select: scratch\n  require: {description: false, owner: false, "
        "primary_key: false}\n")
    broken = repo / "models/marts/misc/_scratch.yml"
    broken.write_text("version: 2\nmodels:\n  - name: scratch\n    description: [oops\n")
    rc, out, err = fix(repo, capsys, "--all-files")
    assert rc == 1 and "Traceback" not in err
    assert not (repo / "models/marts/misc/schema.yml").exists()
    assert "models/marts/misc/_scratch.yml:" in out and "BLK320" in out
    assert "described twice" in out or "describe it twice" in out


def test_fix_refuses_a_model_in_a_sibling_document(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = repo / STG
    text = ("version: 2\nmodels:\n  - name: stg_customers\n---\nversion: 2\nmodels:\n"
            "  - name: stg_orders\n    config:\n      tags: [locked]\n")
    path.write_text(text)
    (repo / "models/staging/stg_orders.sql").write_text(
        "{{ config(tags=['locked']) }}\nselect 1 as order_id\n")
    rc, out, err = fix(repo, capsys, "--all-files")
    assert rc == 1 and "Traceback" not in err
    assert path.read_text() == text
    assert not (repo / "models/staging/schema.yml").exists()
    assert f"{STG}:" in out and "BLK320" in out and "stg_orders" in out


def test_suggest_write_says_what_the_tags_require(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hubs = make_repo(tmp_path, "hubs")
    rc, out, err = run(hubs, capsys, "critical", "suggest", "--top", "2", "--write",
                       "--no-cache")
    assert rc == 0, err
    assert ("each needs an enforced contract, an owner (meta.owner or a group), a "
            "description, a tested primary key (critical.require)") in out
    assert "int_customers: missing contract, owner, description, primary key" in out
    assert "--with-protections" in out


def test_suggest_with_protections_leaves_only_what_it_cannot_write(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import yaml
    from test_critical import GIT_ENV

    hubs = make_repo(tmp_path, "hubs", commit=False)
    (hubs / "bulwark.yml").write_text("dialect: duckdb\n")
    from test_critical import git

    git(hubs, "add", "-A")
    git(hubs, "commit", "-q", "--no-verify", "-m", "base")
    author = f"{GIT_ENV['GIT_AUTHOR_NAME']} <{GIT_ENV['GIT_AUTHOR_EMAIL']}>"
    rc, out, err = run(hubs, capsys, "critical", "suggest", "--top", "4", "--write",
                       "--with-protections", "--no-cache")
    assert rc == 0 and "Traceback" not in err, err
    assert f"owner set to '{author}'" in out
    # what it wrote: tags, owner and an enforced contract, where dbt reads them
    marts = yaml.safe_load((hubs / "models/marts/_marts.yml").read_text())
    sales = next(m for m in marts["models"] if m["name"] == "fct_sales")
    assert sales["config"]["tags"] == ["critical"]
    assert sales["config"]["meta"] == {"owner": author}
    assert sales["config"]["contract"] == {"enforced": True}
    assert [c.get("data_type") in ("int", "integer") for c in sales["columns"]] == [True]
    # what it could not write is exactly what the hooks now report
    listed = {tuple(line.split(": ", 1)[0].split(":")[:2]) + (line.split()[1],)
              for line in out.split("still to do by hand")[1].splitlines()[1:] if line.strip()}
    rc, found = check_json(hubs, capsys, "--all-files", "--no-base")
    reported = {(f["path"], str(f["line"]), f["code"]) for f in found}
    rc2, out2, _ = run(hubs, capsys, "check-contracts", "--all-files", "--no-cache",
                       "--format", "json")
    assert rc2 == 0 and json.loads(out2)["findings"] == []
    assert {code for _p, _l, code in reported} == {"BLK302", "BLK304"}
    assert {(p.strip(), ln, code) for p, ln, code in listed} == reported
