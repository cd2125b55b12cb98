"""Oracle: what check-critical-tags reads about a model is what real `dbt parse` says.

On the ``tagged`` fixture (tags from dbt_project.yml, SQL config(), YAML, a model
version) dbt's manifest must give the same tags, owners, groups, descriptions and
generic tests per model, so the critical set and the protections are evaluated on
dbt's own view of the project. On ``hubs`` the downstream reach used by
``critical suggest`` must match the manifest's ``child_map``.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import dbt_oracle
import pytest

from dbt_bulwark.checks.critical import classify, critical_policy, generic_test_keys, reach_all
from dbt_bulwark.policy import load_policy
from dbt_bulwark.project.fs import WorkTree
from dbt_bulwark.project.loader import load_project

pytestmark = pytest.mark.oracle

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "critical"


def parse(tmp_path: Path, fixture: str) -> tuple[dict, Path]:
    dbt_oracle.require_dbt()
    root = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, root)
    if fixture == "tagged":
        shutil.copytree(FIXTURES / "packages" / "dbt_utils", root / "dbt_packages" / "dbt_utils")
    profiles = tmp_path / "profiles"
    dbt_oracle.write_profiles(root, profiles)
    p = dbt_oracle.PreparedProject(key=fixture, root=root, project_dir=root,
                                   profiles_dir=profiles, target_path=tmp_path / "target")
    return dbt_oracle.dbt_parse(p), root


def test_tags_owners_and_tests_match_dbt(tmp_path: Path) -> None:
    manifest, root = parse(tmp_path, "tagged")
    fs = WorkTree(root)
    project = load_project(fs, "")
    models = {uid: n for uid, n in manifest["nodes"].items()
              if n["resource_type"] == "model" and n["package_name"] == "crit"}
    assert set(models) == {n.unique_id for n in project.models(include_packages=False)}
    dbt_tests: dict[str, Counter] = {uid: Counter() for uid in models}
    for node in manifest["nodes"].values():
        meta = node.get("test_metadata")
        if node["resource_type"] != "test" or not meta or node.get("attached_node") not in models:
            continue
        name = f"{meta['namespace']}.{meta['name']}" if meta.get("namespace") else meta["name"]
        dbt_tests[node["attached_node"]][(name, (node.get("column_name") or "").lower())] += 1
    for uid, m in models.items():
        ours = project.nodes[uid]
        assert sorted(ours.tags) == sorted(m["config"]["tags"]), uid
        assert ours.meta.get("owner") == m["config"]["meta"].get("owner"), uid
        assert ours.config.get("group") == m["config"].get("group"), uid
        assert ours.description == m["description"], uid
        assert generic_test_keys(ours) == dbt_tests[uid], uid
        cons = {c["type"] for col in m["columns"].values() for c in col.get("constraints", [])}
        ours_cons = {c["type"] for col in ours.columns for c in col.constraints}
        assert ours_cons == cons, uid
    critical = classify(project, critical_policy(load_policy(fs, "")))
    dbt_critical = {uid for uid, m in models.items()
                    if {"critical", "locked"} & set(m["config"]["tags"])}
    assert set(critical) == dbt_critical
    assert "model.crit.dim_accounts.v2" in dbt_critical
    assert "model.crit.dim_accounts.v1" not in dbt_critical


def test_reach_matches_dbt_child_map(tmp_path: Path) -> None:
    manifest, root = parse(tmp_path, "hubs")
    project = load_project(WorkTree(root), "")
    child_map: dict[str, list[str]] = manifest["child_map"]
    counted = {uid for uid, n in manifest["nodes"].items()
               if n["resource_type"] in ("model", "seed", "snapshot")}

    def walk(uid: str) -> set[str]:
        seen: set[str] = set()
        todo = list(child_map.get(uid, []))
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.add(c)
                todo.extend(child_map.get(c, []))
        return seen

    reach = reach_all(project)
    for uid in (u for u in manifest["nodes"] if u.startswith("model.")):
        below = walk(uid)
        r = reach[uid]
        assert r.direct == len([c for c in child_map[uid] if c in counted]), uid
        assert r.downstream == len(below & counted), uid
        assert r.exposures == sorted(manifest["exposures"][e]["name"] for e in below
                                     if e.startswith("exposure.")), uid


def test_tags_written_by_fix_are_tags_dbt_reads(tmp_path: Path) -> None:
    """``check-critical-tags --fix`` (existing config tags, a top-level ``tags:`` dbt
    ignores, a new entry, a new file, a model version): real ``dbt parse`` then shows
    every required tag, and the re-check is clean."""
    import contextlib
    import io
    import os
    import subprocess

    from dbt_bulwark import cli

    dbt_oracle.require_dbt()
    root = tmp_path / "tagged"
    shutil.copytree(FIXTURES / "tagged", root)
    shutil.copytree(FIXTURES / "packages" / "dbt_utils", root / "dbt_packages" / "dbt_utils")
    (root / "bulwark.yml").write_text(
        "critical:\n  select: 'path:models/marts/finance path:models/marts/misc dim_accounts "
        "stg_customers'\n  require: {description: false, owner: false, primary_key: false}\n")
    stg = root / "models/staging/_staging.yml"
    stg.write_text(stg.read_text().replace(
        "  - name: stg_customers\n", "  - name: stg_customers\n    tags: [critical]\n"))
    (root / "models/marts/finance/forecast.sql").write_text("select 1 as id\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)

    def hook(*extra: str) -> int:
        cwd = os.getcwd()
        os.chdir(root)
        try:
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                return cli.main(["check-critical-tags", "--all-files", "--no-base", "--no-cache",
                                 *extra])
        finally:
            os.chdir(cwd)

    assert hook("--fix") == 1
    assert hook() == 0
    profiles = tmp_path / "profiles"
    dbt_oracle.write_profiles(root, profiles)
    p = dbt_oracle.PreparedProject(key="tagged-fixed", root=root, project_dir=root,
                                   profiles_dir=profiles, target_path=tmp_path / "target")
    manifest = dbt_oracle.dbt_parse(p)
    models = {uid: n for uid, n in manifest["nodes"].items()
              if n["resource_type"] == "model" and n["package_name"] == "crit"}
    project = load_project(WorkTree(root), "")
    critical = classify(project, critical_policy(load_policy(WorkTree(root), "")))
    assert {"model.crit.forecast", "model.crit.stg_customers", "model.crit.scratch",
            "model.crit.dim_accounts.v1"} <= set(critical)
    for uid in critical:
        assert "critical" in models[uid]["config"]["tags"], uid
        assert sorted(models[uid]["config"]["tags"]) == sorted(project.nodes[uid].tags), uid
