"""A fix writes only regular files inside the repository, and says why when it will not.

Real temporary directories, real symlinks, hard links, modes and owners: the one
atomic writer (:func:`dbt_bulwark.project.fs.atomic_write`) and the two ``--fix`` hooks that
use it through :class:`dbt_bulwark.yaml_edit.PropertiesEditor`.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from test_critical import make_repo, run

from dbt_bulwark.project.fs import UnsafeWrite, atomic_write, check_writable
from dbt_bulwark.yaml_edit import PropertiesEditor, YamlEditError

STG = "models/staging/_staging.yml"


def tree_of(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


# --------------------------------------------------------------------------- the writer


def test_dangling_symlink_leaving_the_root_is_refused_and_nothing_is_created(tmp_path: Path) -> None:
    root = tmp_path / "a" / "repo"
    (root / "models").mkdir(parents=True)
    link = root / "models" / "schema.yml"
    link.symlink_to("../../../outside/deep/x.yml")
    with pytest.raises(UnsafeWrite, match="outside the repository"):
        atomic_write(link, b"models: []\n", root)
    assert not (tmp_path / "outside").exists()
    assert os.readlink(link) == "../../../outside/deep/x.yml"


def test_symlink_to_an_existing_file_outside_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    outside = tmp_path / "elsewhere.yml"
    outside.write_text("keep\n")
    (root / "schema.yml").symlink_to(outside)
    with pytest.raises(UnsafeWrite, match="outside the repository"):
        atomic_write(root / "schema.yml", b"new\n", root)
    assert outside.read_text() == "keep\n"


def test_dangling_symlink_inside_the_root_is_refused(tmp_path: Path) -> None:
    (tmp_path / "schema.yml").symlink_to("missing/x.yml")
    with pytest.raises(UnsafeWrite, match="dangling symlink"):
        atomic_write(tmp_path / "schema.yml", b"x\n", tmp_path)
    assert not (tmp_path / "missing").exists()


def test_symlinked_directory_leaving_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "models").symlink_to("../out/deep")  # dangling directory link
    with pytest.raises(UnsafeWrite, match="outside the repository"):
        atomic_write(root / "models" / "schema.yml", b"x\n", root)
    assert not (tmp_path / "out").exists()


def test_symlink_inside_the_root_writes_its_target_and_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "shared.yml"
    real.write_text("old\n")
    os.chmod(real, 0o640)
    (tmp_path / "schema.yml").symlink_to("shared.yml")
    atomic_write(tmp_path / "schema.yml", b"new\n", tmp_path)
    assert (tmp_path / "schema.yml").is_symlink()
    assert real.read_text() == "new\n"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640


def test_read_only_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "schema.yml"
    path.write_text("old\n")
    os.chmod(path, 0o444)
    with pytest.raises(UnsafeWrite, match="read-only"):
        atomic_write(path, b"new\n", tmp_path)
    assert path.read_text() == "old\n" and stat.S_IMODE(path.stat().st_mode) == 0o444


def test_hard_linked_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "schema.yml"
    path.write_text("old\n")
    os.link(path, tmp_path / "twin.yml")
    with pytest.raises(UnsafeWrite, match="2 hard links"):
        atomic_write(path, b"new\n", tmp_path)
    assert (tmp_path / "twin.yml").read_text() == "old\n"
    assert path.stat().st_ino == (tmp_path / "twin.yml").stat().st_ino


def test_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "schema.yml").mkdir()
    with pytest.raises(UnsafeWrite, match="not a regular file"):
        check_writable(tmp_path / "schema.yml", tmp_path)


def test_mode_and_owner_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "schema.yml"
    path.write_text("old\n")
    os.chmod(path, 0o604)
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    before = path.stat()
    atomic_write(path, b"new\n", tmp_path)
    after = path.stat()
    assert path.read_text() == "new\n"
    assert stat.S_IMODE(after.st_mode) == 0o604
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_new_file_follows_the_umask_which_is_left_unchanged(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        atomic_write(tmp_path / "sub" / "new.yml", b"x\n", tmp_path)
        now = os.umask(0o027)
    finally:
        os.umask(old)
    assert now == 0o027
    assert stat.S_IMODE((tmp_path / "sub" / "new.yml").stat().st_mode) == 0o640


def test_editor_refuses_before_planning(tmp_path: Path) -> None:
    root = tmp_path / "a" / "repo"
    (root / "models").mkdir(parents=True)
    (root / "models" / "schema.yml").symlink_to("../../../outside/deep/x.yml")
    with pytest.raises(YamlEditError, match="outside the repository"):
        PropertiesEditor(root / "models" / "schema.yml", root)
    assert not (tmp_path / "outside").exists()


# --------------------------------------------------------------------------- the hooks


def critical_fix(repo: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, list[dict], str]:
    rc, out, err = run(repo, capsys, "check-critical-tags", "--fix", "--no-base", "--no-cache",
                       "--format", "json", *extra)
    assert "Traceback" not in err
    return rc, json.loads(out)["findings"], err


def test_critical_fix_does_not_follow_a_dangling_symlink_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path / "a", "tagged")
    (repo / "models" / "loose.sql").write_text("select 1 as id\n")
    (repo / "bulwark.yml").write_text(
        "critical:\n  select: loose\n  require: {description: false, owner: false, "
        "primary_key: false}\n")
    link = repo / "models" / "schema.yml"
    link.symlink_to("../../../outside/deep/x.yml")  # leaves tmp_path/a/repo
    before = tree_of(tmp_path)
    rc, findings, _ = critical_fix(repo, capsys, "--all-files")
    assert rc == 1
    assert not (tmp_path / "outside").exists()
    assert tree_of(tmp_path) == before
    refused = [f for f in findings if f["code"] == "BLK320"]
    assert len(refused) == 1 and refused[0]["path"] == "models/schema.yml"
    assert "outside the repository" in refused[0]["message"]
    assert any(f["code"] == "BLK301" and f["node"] == "model.crit.loose" for f in findings)


def test_critical_fix_refuses_a_read_only_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, "tagged")
    path = repo / STG
    text = path.read_text()
    os.chmod(path, 0o444)
    rc, findings, _ = critical_fix(repo, capsys, STG)
    assert rc == 1 and path.read_text() == text
    assert stat.S_IMODE(path.stat().st_mode) == 0o444
    refused = [f for f in findings if f["code"] == "BLK320"]
    assert refused and refused[0]["path"] == STG and "read-only" in refused[0]["message"]


def test_critical_fix_refuses_a_hard_linked_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(tmp_path, "tagged")
    path = repo / STG
    text = path.read_text()
    os.link(path, tmp_path / "twin.yml")
    rc, findings, _ = critical_fix(repo, capsys, STG)
    assert rc == 1 and path.read_text() == text
    assert path.stat().st_nlink == 2
    assert any(f["code"] == "BLK320" and "hard links" in f["message"] for f in findings)


def contracts_fix(project: Path) -> tuple[int, list[dict]]:
    from test_contracts_fix import run as contracts_run

    return contracts_run(project, "--fix")


def test_contracts_fix_refuses_a_symlink_to_a_file_outside(tmp_path: Path) -> None:
    from test_contracts_fix import VARIANTS, make_project

    project = make_project(tmp_path / "w", None)
    outside = tmp_path / "outside.yml"
    outside.write_text(VARIANTS["comments"])
    (project / "models" / "schema.yml").symlink_to(outside)
    code, findings = contracts_fix(project)
    assert code == 1
    assert outside.read_text() == VARIANTS["comments"]
    refused = [f for f in findings if f["code"] == "BLK220"]
    assert refused and refused[0]["path"] == "models/schema.yml"
    assert "outside the repository" in refused[0]["message"]


def test_contracts_fix_refuses_a_dangling_symlink_out(tmp_path: Path) -> None:
    from test_contracts_fix import make_project

    project = make_project(tmp_path / "w", None, "{{ config(tags=['critical']) }}\n"
                           "select cast(1 as integer) as id\n")
    # the fix would create models/_m.yml: a dangling link leaving the repository
    (project / "models" / "_m.yml").symlink_to("../../../outside/deep/x.yml")
    code, findings = contracts_fix(project)
    assert code == 1
    assert not (tmp_path / "outside").exists()
    assert any(f["code"] == "BLK220" and f["path"] == "models/_m.yml" for f in findings)


def test_baseline_writer_refuses_a_read_only_snapshot_with_a_usage_error(tmp_path: Path) -> None:
    from dbt_bulwark.findings import UsageError
    from dbt_bulwark.run.baseline import write_atomic

    path = tmp_path / "m.json"
    path.write_text("{}\n")
    os.chmod(path, 0o444)
    with pytest.raises(UsageError, match="read-only"):
        write_atomic(path, '{"rows": 1}\n')
    assert path.read_text() == "{}\n"
    assert write_atomic(tmp_path / "new" / "n.json", "{}\n") is True
