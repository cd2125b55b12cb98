"""check-schema-diff against real dbt (dbt-core 1.11 + dbt-duckdb) as the oracle.

1. Contracts: for every contracted model of ``fixtures/schema_diff/contracts`` (base) and
   ``contracts_head`` (head), bulwark's verdict is "breaking" iff dbt's own
   ``dbt ls --select state:modified.contract --state <base manifest>`` reports a breaking
   change for it (UnversionedBreakingChange in its log).
2. Inference: ``fixtures/schema_diff/shop`` is built with ``dbt build`` on DuckDB at both
   revisions; every model's inferred column list is compared with the real relation
   (DuckDB ``DESCRIBE``). The agreement rate is printed and written to
   ``bench/out/schema_diff_agreement.json`` (docs/hooks/check-schema-diff.md quotes it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dbt_oracle
import pytest
from conftest import expected_exit
from test_schema_diff import Repo

pytestmark = pytest.mark.oracle

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "schema_diff"


def _apply_head(dest: Path, head: Path) -> None:
    for f in head.rglob("*"):
        if f.is_file() and f.name != "DELETED":
            target = dest / f.relative_to(head)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
    deleted = head / "DELETED"
    for rel in deleted.read_text().split() if deleted.exists() else []:
        (dest / rel).unlink()


def _profiles(project: Path, profiles_dir: Path) -> None:
    name = dbt_oracle.read_project_yml(project)["name"]
    profiles_dir.mkdir(parents=True, exist_ok=True)
    (profiles_dir / "profiles.yml").write_text(
        f"{name}:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {profiles_dir / (name + '.duckdb')}\n      threads: 1\n")


def _dbt(project: Path, profiles: Path, *args: str, check: bool = True
         ) -> subprocess.CompletedProcess:
    cmd = [*dbt_oracle.dbt_command(), "--no-use-colors", *args, "--project-dir", str(project),
           "--profiles-dir", str(profiles)]
    proc = subprocess.run(cmd, cwd=project, env=dbt_oracle.dbt_env(), capture_output=True,
                          text=True, timeout=dbt_oracle.DBT_TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _two_revisions(tmp_path: Path, fixture: str) -> tuple[Path, Path, Repo]:
    """(base copy, head copy, git repo whose HEAD is base and work tree is head)."""
    base_dir = tmp_path / "base"
    head_dir = tmp_path / "head"
    shutil.copytree(FIXTURES / fixture, base_dir)
    shutil.copytree(FIXTURES / fixture, head_dir)
    _apply_head(head_dir, FIXTURES / f"{fixture}_head")
    repo = Repo(tmp_path / "repo")
    shutil.copytree(FIXTURES / fixture, repo.root, dirs_exist_ok=True)
    repo.commit("base")
    _apply_head(repo.root, FIXTURES / f"{fixture}_head")
    return base_dir, head_dir, repo


def _bulwark_json(repo: Repo) -> dict:
    proc = subprocess.run(
        [str(Path(dbt_oracle.dbt_command()[0]).parent / "bulwark"), "check-schema-diff",
         "--no-cache", "--format", "json"],
        cwd=repo.root, capture_output=True, text=True, timeout=120)
    data = json.loads(proc.stdout)
    assert proc.returncode == expected_exit(data["findings"]), proc.stderr
    return data


def test_contract_verdicts_agree_with_dbt_state_modified_contract(tmp_path: Path) -> None:
    dbt_oracle.require_dbt()
    base_dir, head_dir, repo = _two_revisions(tmp_path, "contracts")
    _profiles(base_dir, tmp_path / "pb")
    _profiles(head_dir, tmp_path / "ph")
    _dbt(base_dir, tmp_path / "pb", "parse", "--no-partial-parse")
    proc = _dbt(head_dir, tmp_path / "ph", "ls", "--select", "state:modified.contract",
                "--state", str(base_dir / "target"), "--resource-type", "model",
                "--output", "name")
    log = proc.stdout + proc.stderr
    dbt_breaking = set(re.findall(r"Breaking change to contracted, unversioned model (\w+)", log))
    dbt_modified = {ln.strip().split(".")[-1] for ln in proc.stdout.splitlines()
                    if re.fullmatch(r"[\w.]+", ln.strip())}

    data = _bulwark_json(repo)
    ours = {m["name"]: m for m in data["models"]}
    contracted = {p.stem for p in (base_dir / "models").glob("m_*.sql")} - {"m_on"}
    ours_breaking = {n for n in contracted if n in ours and ours[n]["classification"] == "breaking"}
    assert dbt_breaking == {"m_con", "m_del", "m_mat", "m_modcon", "m_off", "m_remove",
                            "m_rename", "m_type"}, log
    assert ours_breaking == dbt_breaking, (ours_breaking, dbt_breaking, log)
    print("dbt breaking:", sorted(dbt_breaking), "contract-modified:", sorted(dbt_modified))
    # and the models dbt lists as contract-modified but not breaking are changed for us too
    for name in dbt_modified - dbt_breaking:
        if name in contracted:
            assert name in ours, name


def _describe(db: Path, relation: str) -> list[tuple[str, str]] | None:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(f'describe "main"."{relation}"').fetchall()
    except duckdb.Error:
        return None
    finally:
        con.close()
    return [(r[0], str(r[1])) for r in rows]


def _duckdb_canonical(data_type: str) -> str | None:
    """DuckDB's own name for a type text (INT -> INTEGER), or None when DuckDB rejects it:
    an oracle for type agreement that owes nothing to bulwark's types_compatible."""
    import duckdb

    try:
        row = duckdb.connect(":memory:").execute(
            f"select typeof(cast(null as {data_type}))").fetchone()
    except duckdb.Error:
        return None
    return None if row is None else str(row[0])


def _inferred(project_dir: Path) -> dict[str, dict[str, str | None] | None]:
    from dbt_bulwark.project.fs import WorkTree
    from dbt_bulwark.project.loader import load_project
    from dbt_bulwark.sql.schema import SchemaResolver

    project = load_project(WorkTree(project_dir), "")
    resolver = SchemaResolver(project, "duckdb")
    return {n.name: resolver.schema(n.unique_id).columns for n in project.models()}


def test_inferred_columns_match_the_built_relations(tmp_path: Path) -> None:
    dbt_oracle.require_dbt()
    from dbt_bulwark.sql.columns import types_compatible

    base_dir, head_dir, _repo = _two_revisions(tmp_path, "shop")
    totals = {"models": 0, "known": 0, "names_equal": 0, "typed_columns": 0, "types_equal": 0,
              "types_equal_by_duckdb": 0}
    mismatches: list[tuple[Any, ...]] = []
    for label, d in (("base", base_dir), ("head", head_dir)):
        prof = tmp_path / f"prof_{label}"
        _profiles(d, prof)
        _dbt(d, prof, "build")
        db = prof / "shop.duckdb"
        for name, cols in sorted(_inferred(d).items()):
            real = _describe(db, name)
            assert real is not None, name
            totals["models"] += 1
            if cols is None:
                mismatches.append((label, name, "unknown"))
                continue
            totals["known"] += 1
            if [c.lower() for c in cols] == [r[0].lower() for r in real]:
                totals["names_equal"] += 1
            else:
                mismatches.append((label, name, list(cols), [r[0] for r in real]))
            real_types = {r[0].lower(): r[1] for r in real}
            for c, t in cols.items():
                if t and c.lower() in real_types:
                    totals["typed_columns"] += 1
                    real_type = real_types[c.lower()]
                    if types_compatible(t, real_type, "duckdb"):
                        totals["types_equal"] += 1
                    else:
                        mismatches.append((label, name, c, t, real_type))
                    if _duckdb_canonical(t) == _duckdb_canonical(real_type):
                        totals["types_equal_by_duckdb"] += 1
                    else:
                        mismatches.append((label, name, c, t, real_type, "duckdb"))
    rate = totals["names_equal"] / totals["models"]
    out = Path(__file__).resolve().parents[1] / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "schema_diff_agreement.json").write_text(json.dumps(
        {**totals, "name_agreement": rate, "mismatches": mismatches}, indent=2, default=str))
    print("schema-diff inference agreement:", totals, mismatches)
    assert totals["known"] == totals["models"], mismatches
    assert rate == 1.0, mismatches
    # the type figure: every inferred type agrees with the built relation, by bulwark's own
    # comparison and by DuckDB's canonical names; and enough columns are typed for the
    # figure to mean something (the fixture has 19 today)
    assert totals["typed_columns"] >= 15, totals
    assert totals["types_equal"] == totals["typed_columns"], mismatches
    assert totals["types_equal_by_duckdb"] == totals["typed_columns"], mismatches
