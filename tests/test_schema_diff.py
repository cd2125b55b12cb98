"""check-schema-diff on real git repositories built in temp dirs with scripted commits.

Each test writes a small dbt project, commits it (the base), edits it (the working tree, or
a second commit for pre-push) and runs ``bulwark check-schema-diff`` in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from dbt_bulwark.cli import main

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
}


class Repo:
    """A git repository in a temp dir: write files, delete, commit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV}
        for k in ("PRE_COMMIT_FROM_REF", "PRE_COMMIT_TO_REF"):
            env.pop(k, None)
        return subprocess.run(["git", "-C", str(self.root), *args], check=True, env=env,
                              capture_output=True, text=True).stdout.strip()

    def write(self, files: dict[str, str]) -> Repo:
        for rel, text in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))
        return self

    def delete(self, *rels: str) -> Repo:
        for rel in rels:
            (self.root / rel).unlink()
        return self

    def commit(self, msg: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", msg, "--allow-empty")
        return self.git("rev-parse", "HEAD")


PROJECT_YML = """
name: shop
version: '1.0'
config-version: 2
profile: shop
"""


def base_files(**extra: str) -> dict[str, str]:
    files = {
        "dbt_project.yml": PROJECT_YML,
        "models/stg_customers.sql": """
            select 1 as customer_id, 'a@b.c' as email, 'Ann' as first_name
        """,
        "models/customers.sql": """
            select * from {{ ref('stg_customers') }}
        """,
        "models/mart.sql": """
            select
                customer_id,
                email
            from {{ ref('customers') }}
        """,
        "models/schema.yml": """
            version: 2
            models:
              - name: customers
                columns:
                  - name: email
                    data_tests: [not_null]
        """,
    }
    files.update(extra)
    return files


def make(tmp_path: Path, files: dict[str, str]) -> Repo:
    repo = Repo(tmp_path / "repo")
    repo.write(files)
    repo.commit("base")
    return repo


def run(repo: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str, fmt: str = "json") -> tuple[int, dict]:
    monkeypatch.chdir(repo.root)
    monkeypatch.delenv("PRE_COMMIT_FROM_REF", raising=False)
    monkeypatch.delenv("PRE_COMMIT_TO_REF", raising=False)
    capsys.readouterr()
    rc = main(["check-schema-diff", "--no-cache", "--format", fmt, *args])
    out = capsys.readouterr().out
    return rc, (json.loads(out) if fmt == "json" else {"text": out})


def codes(data: dict, severity: str | None = None) -> list[str]:
    return sorted(f["code"] for f in data["findings"]
                  if severity is None or f["severity"] == severity)


def model(data: dict, name: str) -> dict:
    return next(m for m in data["models"] if m["name"] == name)


# --------------------------------------------------------------------------- columns


def test_removed_column_follows_select_star_to_grandchildren(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.write({"models/stg_customers.sql": "select 1 as customer_id, 'Ann' as first_name\n"})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1
    m = model(data, "stg_customers")
    assert m["classification"] == "breaking"
    change = next(c for c in m["changes"] if c["code"] == "BLK401")
    assert change["column"] == "email"
    uses = {(u["name"], u["kind"], u["certain"], u["path"], u["line"]) for u in change["uses"]}
    assert ("customers", "star", False, "models/customers.sql", 1) in uses
    assert ("mart", "select", True, "models/mart.sql", 3) in uses   # the line of `email`
    assert any(u[0] == "not_null" and u[1] == "test" for u in uses)
    errors = [f for f in data["findings"] if f["severity"] == "error"]
    assert {f["path"] for f in errors} >= {"models/stg_customers.sql", "models/mart.sql"}


def test_text_output_points_at_the_downstream_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.write({"models/stg_customers.sql": "select 1 as customer_id, 'Ann' as first_name\n"})
    rc, data = run(repo, monkeypatch, capsys, fmt="text")
    assert rc == 1
    assert "models/mart.sql:3:5: BLK410 model 'mart' uses column 'email'" in data["text"]
    assert "BLK401 [breaking] column 'email' was removed from 'stg_customers'" in data["text"]


def test_rename_is_shown_as_a_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = base_files(**{"models/customers.sql": """
        select customer_id, email, first_name from {{ ref('stg_customers') }}
    """})
    repo = make(tmp_path, files)
    repo.write({"models/customers.sql": """
        select customer_id, email as email_address, first_name from {{ ref('stg_customers') }}
    """})
    rc, data = run(repo, monkeypatch, capsys)
    m = model(data, "customers")
    ch = [c for c in m["changes"] if c["code"] == "BLK402"]
    assert ch and ch[0]["column"] == "email" and "email_address" in ch[0]["message"]
    assert not [c for c in m["changes"] if c["code"] in ("BLK401", "BLK420")]
    assert rc == 1  # mart selects email by name
    assert any(u["name"] == "mart" and u["certain"] for u in ch[0]["uses"])


def test_retyped_column_and_unused_breaking_change_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = base_files(**{"models/mart.sql": "select customer_id from {{ ref('customers') }}\n",
                          "models/schema.yml": "version: 2\n"})
    repo = make(tmp_path, files)
    repo.write({"models/stg_customers.sql": """
        select 1 as customer_id, 42 as email, 'Ann' as first_name
    """})
    rc, data = run(repo, monkeypatch, capsys)
    m = model(data, "stg_customers")
    ch = next(c for c in m["changes"] if c["code"] == "BLK403")
    assert ch["column"] == "email" and ch["severity"] == "warning"
    # customers passes it through `*`; nobody selects it by name
    assert [u["kind"] for u in ch["uses"]] == ["star"]
    # a passthrough through `*` is reported, but it is not a use that breaks: exit 0
    assert rc == 0


def test_added_column_is_additive_and_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.write({"models/mart.sql": """
        select
            customer_id,
            email,
            first_name
        from {{ ref('customers') }}
    """})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0
    m = model(data, "mart")
    assert m["classification"] == "additive"
    assert codes(data) == ["BLK420"]
    f = data["findings"][0]
    assert (f["path"], f["line"], f["severity"]) == ("models/mart.sql", 4, "info")


def test_logic_change_is_not_breaking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.write({"models/mart.sql": """
        select
            customer_id,
            email
        from {{ ref('customers') }}
        where customer_id > 0
    """})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0
    assert codes(data) == ["BLK430"]
    assert model(data, "mart")["classification"] == "none"


def test_description_only_yaml_change_reports_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.write({"models/schema.yml": """
        version: 2
        models:
          - name: customers
            description: now documented
            columns:
              - name: email
                description: the email
                data_tests: [not_null]
    """})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0 and data["models"] == [] and data["findings"] == []


def test_locked_model_fails_on_an_additive_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = base_files(**{"models/mart.sql": """
        {{ config(tags=['locked']) }}
        select customer_id, email from {{ ref('customers') }}
    """})
    repo = make(tmp_path, files)
    repo.write({"models/mart.sql": """
        {{ config(tags=['locked']) }}
        select customer_id, email, first_name from {{ ref('customers') }}
    """})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1
    assert codes(data, "error") == ["BLK420"]
    assert model(data, "mart")["locked"] is True


def test_protected_model_fails_even_without_downstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = base_files(**{"models/mart.sql": """
        {{ config(tags=['critical']) }}
        select customer_id, email from {{ ref('customers') }}
    """})
    repo = make(tmp_path, files)
    repo.write({"models/mart.sql": """
        {{ config(tags=['critical']) }}
        select customer_id from {{ ref('customers') }}
    """})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1
    assert codes(data, "error") == ["BLK401"]
    # the same change with warn_only in bulwark.yml: printed, exit 0
    repo.write({"bulwark.yml": "schema_diff:\n  warn_only: true\n"})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0 and codes(data, "warning") == ["BLK401"]


# --------------------------------------------------------------------------- contracts


CONTRACT_YML = """
version: 2
models:
  - name: dim
    config:
      materialized: table
      contract: {enforced: true}
    columns:
      - name: id
        data_type: integer
        constraints: [{type: not_null}]
      - name: code
        data_type: varchar(3)
      - name: amount
        data_type: double
"""


def contract_files() -> dict[str, str]:
    return {
        "dbt_project.yml": PROJECT_YML,
        "models/dim.sql": "select 1 as id, 'abc' as code, 1.5::double as amount\n",
        "models/dim.yml": CONTRACT_YML,
    }


def test_contract_type_size_change_is_not_a_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, contract_files())
    repo.write({"models/dim.yml": CONTRACT_YML.replace("varchar(3)", "varchar(10)")})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0
    assert codes(data) == ["BLK430"]


def test_contract_breaking_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, contract_files())
    yml = CONTRACT_YML.replace("data_type: double", "data_type: varchar") \
        .replace("        constraints: [{type: not_null}]\n", "") \
        .replace("materialized: table", "materialized: view")
    repo.write({"models/dim.yml": yml,
                "models/dim.sql": "select 1 as id, 'abc' as code, '1.5' as amount\n"})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1  # contracted = protected
    assert set(codes(data, "error")) == {"BLK403", "BLK405", "BLK406"}
    retyped = next(f for f in data["findings"] if f["code"] == "BLK403")
    assert retyped["path"] == "models/dim.yml"
    assert retyped["line"] == yml.lstrip("\n").splitlines().index("      - name: amount") + 1


def test_contract_turned_off_and_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, contract_files())
    repo.write({"models/dim.yml": CONTRACT_YML.replace("enforced: true", "enforced: false")})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1 and "BLK404" in codes(data, "error")
    repo.commit("off")
    repo.write({"models/dim.yml": CONTRACT_YML})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0 and "BLK421" in codes(data)


def test_constraint_and_column_added_is_additive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, contract_files())
    yml = CONTRACT_YML.replace("        data_type: double\n",
                               "        data_type: double\n        constraints: [{type: not_null}]\n"
                               "      - name: extra\n        data_type: integer\n")
    repo.write({"models/dim.yml": yml,
                "models/dim.sql": "select 1 as id, 'abc' as code, 1.5::double as amount, "
                                  "2 as extra\n"})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0
    assert set(codes(data)) == {"BLK420", "BLK422"}
    assert model(data, "dim")["classification"] == "additive"


# --------------------------------------------------------------------------- models gone


def test_deleted_model_with_referrer_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.delete("models/customers.sql")
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1
    assert "BLK407" in codes(data, "error")
    use = next(f for f in data["findings"] if f["code"] == "BLK411")
    assert (use["path"], use["line"]) == ("models/mart.sql", 4)


def test_deleted_model_without_referrer_is_a_cleanup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.delete("models/mart.sql")
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0
    assert codes(data) == ["BLK407"] and codes(data, "info") == ["BLK407"]


def test_deleted_contracted_model_fails_unless_deprecated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, contract_files())
    repo.delete("models/dim.sql", "models/dim.yml")
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1 and codes(data, "error") == ["BLK407"]
    # with a deprecation_date in the past at the base, the deletion is allowed
    repo2 = make(tmp_path / "b", {**contract_files(), "models/dim.yml": CONTRACT_YML.replace(
        "  - name: dim\n", "  - name: dim\n    deprecation_date: 2020-01-01\n")})
    repo2.delete("models/dim.sql", "models/dim.yml")
    rc, data = run(repo2, monkeypatch, capsys)
    assert rc == 0


def test_renamed_model_with_referrer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.git("mv", "models/customers.sql", "models/dim_customers.sql")
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1
    m = model(data, "customers")
    assert m["status"] == "renamed"
    assert "dim_customers" in m["changes"][0]["message"]


def test_disabled_model_with_referrer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.write({"models/customers.sql": "{{ config(enabled=false) }}\nselect * from "
                                        "{{ ref('stg_customers') }}\n"})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1 and "BLK408" in codes(data, "error")
    assert model(data, "customers")["status"] == "disabled"


# --------------------------------------------------------------------------- versions


VERSIONED = """
version: 2
models:
  - name: dim
    latest_version: {latest}
    config:
      materialized: table
      contract: {{enforced: true}}
    columns:
      - name: id
        data_type: integer
      - name: code
        data_type: varchar
    versions:
{versions}
"""


def test_new_version_keeping_the_old_one_is_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = {**contract_files(), "models/child.sql": "select id, code from {{ ref('dim') }}\n"}
    files["models/dim.yml"] = VERSIONED.format(latest=1, versions="      - v: 1\n")
    files["models/dim_v1.sql"] = "select 1 as id, 'abc' as code\n"
    del files["models/dim.sql"]
    repo = make(tmp_path, files)
    # v2 drops `code`; the child pins v1
    repo.write({
        "models/dim.yml": VERSIONED.format(
            latest=2, versions="      - v: 1\n      - v: 2\n        columns:\n"
                               "          - include: all\n            exclude: [code]\n"),
        "models/dim_v2.sql": "select 1 as id\n",
        "models/child.sql": "select id, code from {{ ref('dim', v=1) }}\n",
    })
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0, data
    added = [m for m in data["models"] if m["status"] == "added"]
    assert [str(m["version"]) for m in added] == ["2"]
    assert not codes(data, "error") and not codes(data, "warning")


def test_version_removed_while_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = {
        "dbt_project.yml": PROJECT_YML,
        "models/dim.yml": VERSIONED.format(latest=2, versions="      - v: 1\n      - v: 2\n"),
        "models/dim_v1.sql": "select 1 as id, 'abc' as code\n",
        "models/dim_v2.sql": "select 1 as id, 'abc' as code\n",
        "models/child.sql": "select id from {{ ref('dim', v=1) }}\n",
    }
    repo = make(tmp_path, files)
    repo.write({"models/dim.yml": VERSIONED.format(latest=2, versions="      - v: 2\n")})
    repo.delete("models/dim_v1.sql")
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1
    assert "BLK409" in codes(data, "error")
    use = next(f for f in data["findings"] if f["code"] == "BLK411")
    assert use["path"] == "models/child.sql"


def test_unversioned_model_becoming_versioned_compares_with_the_latest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    files = {**contract_files(), "models/child.sql": "select id, code from {{ ref('dim') }}\n"}
    files["models/dim.yml"] = CONTRACT_YML
    repo = make(tmp_path, files)
    repo.delete("models/dim.sql")
    repo.write({
        "models/dim.yml": VERSIONED.format(
            latest=2, versions="      - v: 1\n      - v: 2\n        columns:\n"
                               "          - include: all\n            exclude: [code]\n"),
        "models/dim_v1.sql": "select 1 as id, 'abc' as code\n",
        "models/dim_v2.sql": "select 1 as id\n",
    })
    rc, data = run(repo, monkeypatch, capsys)
    # the child's unpinned ref('dim') now gets v2, which dropped `code`: a certain break
    assert rc == 1
    m = next(m for m in data["models"] if m["status"] == "modified")
    ch = next(c for c in m["changes"] if c["code"] == "BLK401")
    assert ch["column"] == "code" and any(u["name"] == "child" for u in ch["uses"])


# --------------------------------------------------------------------------- git plumbing


def test_monorepo_checks_each_project_with_its_own_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    files = {}
    for proj in ("analytics", "finance"):
        for rel, text in base_files().items():
            files[f"{proj}/{rel}"] = text.replace("name: shop", f"name: {proj}")
    repo = make(tmp_path, files)
    repo.write({"finance/models/stg_customers.sql": "select 1 as customer_id\n"})
    rc, data = run(repo, monkeypatch, capsys, "finance/models/stg_customers.sql")
    assert rc == 1
    assert {f["path"].split("/")[0] for f in data["findings"]} == {"finance"}
    rc, data = run(repo, monkeypatch, capsys)  # no files: every project; analytics unchanged
    assert {m["unique_id"].split(".")[1] for m in data["models"]} == {"finance"}


def test_pre_push_compares_the_pushed_range_not_the_work_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    first = repo.git("rev-parse", "HEAD")
    repo.write({"models/stg_customers.sql": "select 1 as customer_id, 'Ann' as first_name\n"})
    second = repo.commit("drop email")
    # an unrelated, uncommitted edit in the work tree must not count
    repo.write({"models/mart.sql": "select customer_id from {{ ref('customers') }}\n"})
    monkeypatch.chdir(repo.root)
    monkeypatch.setenv("PRE_COMMIT_FROM_REF", first)
    monkeypatch.setenv("PRE_COMMIT_TO_REF", second)
    capsys.readouterr()
    rc = main(["check-schema-diff", "--no-cache", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert data["base"] == first and data["head"] == second
    m = model(data, "stg_customers")
    assert any(u["name"] == "mart" and u["certain"]
               for c in m["changes"] for u in c["uses"])
    assert not any(d["name"] == "mart" for d in data["models"])


def test_explicit_base_and_merge_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.git("checkout", "-q", "-b", "feature")
    repo.write({"models/stg_customers.sql": "select 1 as customer_id, 'Ann' as first_name\n"})
    repo.commit("drop email")
    rc, data = run(repo, monkeypatch, capsys)          # HEAD: nothing changed
    assert rc == 0 and data["models"] == []
    rc, data = run(repo, monkeypatch, capsys, "--base", "main")
    assert rc == 1
    rc, data = run(repo, monkeypatch, capsys, "--merge-base")
    assert rc == 1
    rc, _ = run(repo, monkeypatch, capsys, "--base", "no-such-rev", fmt="text")
    assert rc == 2


def test_no_commits_yet_everything_is_new(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = Repo(tmp_path / "fresh")
    repo.write(base_files())
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0
    assert {m["status"] for m in data["models"]} == {"added"}


def test_broken_input_never_crashes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.write({
        "models/schema.yml": "version: 2\nmodels:\n  - name: customers\n    columns: [\n",
        "models/mart.sql": "select {{ broken( from {{ ref('customers') }}\n",
        "models/odd.sql": b"select 1 as \xff\xfe".decode("latin-1"),
    })
    rc, data = run(repo, monkeypatch, capsys, fmt="text")
    # nothing blocks: what cannot be compared is said (BLK431 info), not guessed
    assert rc == 0 and "BLK431" in data["text"], data["text"]
    assert "Traceback" not in data["text"]


def test_markdown_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files())
    repo.write({"models/stg_customers.sql": "select 1 as customer_id, 'Ann' as first_name\n"})
    rc, data = run(repo, monkeypatch, capsys, fmt="markdown")
    text = data["text"]
    assert rc == 1
    assert "| column | before | after | kind | downstream uses |" in text
    assert "| email |" in text and "`models/mart.sql:3` mart (select, certain)" in text


@pytest.mark.parametrize("fmt", ["github", "text"])
def test_other_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    repo = make(tmp_path, base_files())
    repo.write({"models/stg_customers.sql": "select 1 as customer_id, 'Ann' as first_name\n"})
    rc, data = run(repo, monkeypatch, capsys, fmt=fmt)
    assert rc == 1
    if fmt == "github":
        assert "::error file=models/mart.sql,line=3" in data["text"]


# --------------------------------------------------------------------------- locked + contract


def _locked_uncontracted(tmp_path: Path) -> Repo:
    files = base_files(**{
        "bulwark.yml": "dialect: duckdb\n",
        "models/mart.sql": """
            {{ config(tags=['locked']) }}
            select cast(customer_id as integer) as customer_id, cast(email as varchar) as email
            from {{ ref('customers') }}
        """})
    return make(tmp_path, files)


def test_locked_model_can_get_the_contract_check_contracts_asks_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """The catch-22: check-contracts requires a contract on a locked model; adding one that
    declares the current output (here written by check-contracts --fix) passes the diff."""
    repo = _locked_uncontracted(tmp_path)
    monkeypatch.chdir(repo.root)
    capsys.readouterr()
    assert main(["check-contracts", "--no-cache", "--all-files", "--all-findings"]) == 1  # BLK201
    assert "BLK201" in capsys.readouterr().out
    assert main(["check-contracts", "--no-cache", "--all-files", "--fix"]) == 1
    capsys.readouterr()
    assert main(["check-contracts", "--no-cache", "--all-files"]) == 0
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0, data["findings"]
    assert [(f["code"], f["severity"]) for f in data["findings"]] == [("BLK421", "info")]
    assert model(data, "mart")["locked"] is True


def test_locked_model_contract_that_changes_the_output_still_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    repo = _locked_uncontracted(tmp_path)
    repo.write({"models/mart.yml": """
        version: 2
        models:
          - name: mart
            config:
              contract: {enforced: true}
            columns:
              - name: customer_id
                data_type: varchar
              - name: email
                data_type: varchar
    """})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 1
    assert "BLK403" in codes(data, "error") and "BLK421" in codes(data, "error")


def test_unlocked_contract_turned_on_stays_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make(tmp_path, base_files(**{"bulwark.yml": "dialect: duckdb\n"}))
    repo.write({"models/extra.yml": """
        version: 2
        models:
          - name: mart
            config:
              contract: {enforced: true}
            columns:
              - name: customer_id
                data_type: integer
              - name: email
                data_type: varchar
    """})
    rc, data = run(repo, monkeypatch, capsys)
    assert rc == 0
    assert ("BLK421", "info") in [(f["code"], f["severity"]) for f in data["findings"]]
