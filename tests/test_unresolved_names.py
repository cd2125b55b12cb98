"""Unresolved names on a fresh clone (packages declared, not installed; issue 10 item 3):
a ref() typo is an error with "did you mean" even then; a name an uninstalled package
could really provide stays info; package names come from package-lock.yml, packages.yml,
installed dbt_project.yml files and the well-known packages data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fast_compile_cases import Case, apply

from dbt_bulwark.cli import main
from dbt_bulwark.project.fs import WorkTree
from dbt_bulwark.project.loader import load_project

M = "models/marts/"
UTILS = "packages:\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n"


def run_fc(capsys: pytest.CaptureFixture[str], root: Path) -> tuple[int, list[dict]]:
    capsys.readouterr()
    rc = main(["fast-compile", "--project-dir", str(root), "--repo-root", str(root),
               "--format", "json", "--no-cache", "--all-files"])
    return rc, json.loads(capsys.readouterr().out)["findings"]


def refs_in(findings: list[dict], path: str) -> list[tuple[str, str, str]]:
    return [(f["code"], f["severity"], f["hint"]) for f in findings if f["path"] == path
            and f["code"] in ("BLK103", "BLK110")]


def shop(tmp_path: Path, edits: dict[str, tuple[str | None, str | None]]) -> Path:
    return apply(Case("names", edits), tmp_path / "shop")


def test_ref_typo_with_uninstalled_package_is_an_error(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    root = shop(tmp_path, {
        "packages.yml": (None, UTILS),
        M + "fct_orders.sql": ("ref('stg_orders')", "ref('stg_ordrs')"),
    })
    rc, findings = run_fc(capsys, root)
    got = refs_in(findings, M + "fct_orders.sql")
    assert got == [("BLK110", "error", "did you mean 'stg_orders'?")], findings
    assert rc == 1


def test_jaffle_shop_style_stg_prducts(capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    root = shop(tmp_path, {
        "packages.yml": (None, UTILS + "  - package: calogica/dbt_date\n    version: 0.10.0\n"),
        "models/staging/stg_products.sql": (None, "select 1 as product_id\n"),
        M + "products.sql": (None, "select * from {{ ref('stg_prducts') }}\n"),
    })
    rc, findings = run_fc(capsys, root)
    assert refs_in(findings, M + "products.sql") == [
        ("BLK110", "error", "did you mean 'stg_products'?")]
    assert rc == 1


def test_macro_only_packages_cannot_provide_a_ref(capsys: pytest.CaptureFixture[str],
                                                  tmp_path: Path) -> None:
    # dbt_utils and audit_helper ship no models: a ref to a name nowhere is an error
    root = shop(tmp_path, {
        "packages.yml": (None, UTILS + "  - git: https://github.com/dbt-labs/dbt-audit-helper.git\n"
                               "    revision: 0.12.0\n"),
        M + "other.sql": (None, "select * from {{ ref('completely_unrelated') }}\n"),
    })
    rc, findings = run_fc(capsys, root)
    assert [c for c, _s, _h in refs_in(findings, M + "other.sql")] == ["BLK110"]
    assert rc == 1


def test_name_a_package_could_provide_stays_info(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    root = shop(tmp_path, {
        "packages.yml": (None, UTILS + "  - package: fivetran/stripe\n    version: 0.15.0\n"
                               "  - package: someone/unknown_pkg\n    version: 1.0.0\n"),
        M + "pay.sql": (None, "select * from {{ ref('stripe__balance_transactions') }}\n"
                              "union all select * from {{ ref('unknown_pkg_model') }}\n"),
    })
    rc, findings = run_fc(capsys, root)
    got = refs_in(findings, M + "pay.sql")
    assert [c for c, s, _h in got] == ["BLK103", "BLK103"] and \
        all(s == "info" for _c, s, _h in got), findings
    assert rc == 0


def test_exact_package_model_beats_close_project_name(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    # a project model one edit away from a model the uninstalled package ships: not a typo
    root = shop(tmp_path, {
        "packages.yml": (None, "packages:\n  - package: fivetran/stripe\n    version: 0.15.0\n"),
        "models/staging/stripe__balance_transaction.sql": (None, "select 1 as id\n"),
        M + "pay.sql": (None, "select * from {{ ref('stripe__balance_transactions') }}\n"),
    })
    rc, findings = run_fc(capsys, root)
    assert [s for _c, s, _h in refs_in(findings, M + "pay.sql")] == ["info"] and rc == 0


def test_package_names(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: p\nversion: '1.0'\nconfig-version: 2\n")
    (root / "packages.yml").write_text(
        "packages:\n  - git: https://github.com/dbt-labs/dbt-audit-helper.git\n"
        "    revision: 0.12.0\n  - git: https://github.com/acme/dbt-our-helpers.git\n"
        "    revision: main\n  - package: dbt-labs/dbt_utils\n    version: 1.3.0\n"
        "  - local: ../shared\n")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "dbt_project.yml").write_text("name: shared\nversion: '1.0'\n"
                                            "config-version: 2\n")
    (shared / "packages.yml").write_text("packages:\n  - package: calogica/dbt_date\n"
                                         "    version: 0.10.0\n")
    fs = WorkTree(tmp_path)
    project = load_project(fs, "p")
    assert sorted(project.declared_packages) == [
        "audit_helper", "dbt_date", "dbt_our_helpers", "dbt_utils"]
    # package-lock.yml names win (dbt writes each package's real name)
    (root / "package-lock.yml").write_text(
        "packages:\n  - git: https://github.com/acme/dbt-our-helpers.git\n    name: helpers\n"
        "    revision: abc\n  - package: dbt-labs/dbt_utils\n    name: dbt_utils\n"
        "    version: 1.3.0\nsha1_hash: x\n")
    project = load_project(WorkTree(tmp_path), "p")
    assert sorted(project.declared_packages) == [
        "audit_helper", "dbt_date", "dbt_utils", "helpers"]
    # after dbt deps: an unknown git package sits under its own dbt_project.yml name
    (root / "package-lock.yml").unlink()
    inst = root / "dbt_packages" / "our_helpers"
    inst.mkdir(parents=True)
    (inst / "dbt_project.yml").write_text("name: our_helpers\nversion: '1.0'\n"
                                          "config-version: 2\n")
    project = load_project(WorkTree(tmp_path), "p")
    assert "dbt_our_helpers" not in project.declared_packages
    assert "our_helpers" in project.packages


def test_typo_next_to_a_package_with_models_is_still_an_error(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # stripe ships models, but not this name: a one-letter slip of a project model is a typo
    root = shop(tmp_path, {
        "packages.yml": (None, "packages:\n  - package: fivetran/stripe\n    version: 0.15.0\n"),
        M + "fct_orders.sql": ("ref('stg_orders')", "ref('stg_ordrs')"),
        M + "pay.sql": (None, "select * from {{ ref('stripe__some_older_model') }}\n"),
    })
    rc, findings = run_fc(capsys, root)
    assert refs_in(findings, M + "fct_orders.sql") == [
        ("BLK110", "error", "did you mean 'stg_orders'?")]
    # a name the package may ship in another version: not checked
    assert [s for _c, s, _h in refs_in(findings, M + "pay.sql")] == ["info"]
    assert rc == 1


def test_macro_typo_with_uninstalled_package(capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    root = shop(tmp_path, {
        "packages.yml": (None, UTILS),
        "models/staging/stg_orders.sql": ("cents_to_dollars(", "cents_to_dolars("),
        M + "other.sql": (None, "select {{ some_package_macro() }} as x\n"),
    })
    rc, findings = run_fc(capsys, root)
    got = [(f["code"], f["severity"], f["hint"]) for f in findings
           if f["path"] == "models/staging/stg_orders.sql" and f["code"] == "BLK102"]
    assert got == [("BLK102", "error", "did you mean 'cents_to_dollars'?")], findings
    assert [f["severity"] for f in findings if f["path"] == M + "other.sql"] == ["info"]
    assert rc == 1
