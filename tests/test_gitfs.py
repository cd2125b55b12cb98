"""GitTree and the git helpers, against real repositories scripted in tmp_path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dbt_bulwark.findings import UsageError
from dbt_bulwark.project.fs import WorkTree
from dbt_bulwark.project.gitfs import (
    GitError,
    GitTree,
    changed_files,
    default_branch,
    has_commits,
    merge_base,
    repo_root,
    resolve_base,
    rev_exists,
)

ZERO = "0" * 40


@pytest.fixture(autouse=True)
def _git_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Hermetic git: no user/system config, fixed identity, never climb above tmp_path."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "PRE_COMMIT_FROM_REF",
                "PRE_COMMIT_TO_REF", "PRE_COMMIT_SOURCE", "PRE_COMMIT_ORIGIN"):
        monkeypatch.delenv(var, raising=False)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def write(repo: Path, rel: str, data: str | bytes) -> None:
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)


def commit(repo: Path, files: dict[str, str | bytes | None], msg: str = "c") -> str:
    """Write (or delete, for None) files, stage everything and commit; returns the sha."""
    for rel, data in files.items():
        if data is None:
            (repo / rel).unlink()
        else:
            write(repo, rel, data)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", msg)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    return r


# --------------------------------------------------------------------------- GitTree


def test_read_head_and_previous_revision(repo: Path) -> None:
    commit(repo, {"dbt_project.yml": "name: a\n", "models/a.sql": "select 1\n"})
    commit(repo, {"models/a.sql": "select 2\n", "models/b.sql": "select 3\n"})
    with GitTree(repo) as head, GitTree(repo, "HEAD~1") as prev:
        assert head.root == prev.root == repo.resolve()
        assert head.read_bytes("models/a.sql") == b"select 2\n"
        assert prev.read_bytes("models/a.sql") == b"select 1\n"
        assert head.is_file("models/b.sql") and not prev.is_file("models/b.sql")
        with pytest.raises(FileNotFoundError):
            prev.read_bytes("models/b.sql")
        assert head.walk() == ["dbt_project.yml", "models/a.sql", "models/b.sql"]
        assert prev.listdir("models") == ["a.sql"]
        assert head.listdir("") == ["dbt_project.yml", "models"]
        assert head.is_dir("models") and head.is_dir("") and not head.is_file("models")
        assert head.listdir("nope") == [] and not head.is_dir("nope")
    # the working tree does not leak into the revision
    write(repo, "models/a.sql", "select 'dirty'\n")
    assert GitTree(repo).read_bytes("models/a.sql") == b"select 2\n"


def test_deleted_and_renamed_files(repo: Path) -> None:
    commit(repo, {"models/old.sql": "select 1\n", "models/gone.sql": "select 2\n"})
    git(repo, "mv", "models/old.sql", "models/new.sql")
    (repo / "models/gone.sql").unlink()
    commit(repo, {})
    head, prev = GitTree(repo), GitTree(repo, "HEAD~1")
    assert head.walk() == ["models/new.sql"]
    assert prev.walk() == ["models/gone.sql", "models/old.sql"]
    assert head.read_bytes("models/new.sql") == prev.read_bytes("models/old.sql")
    for missing in ("models/old.sql", "models/gone.sql"):
        assert not head.is_file(missing)
        with pytest.raises(FileNotFoundError):
            head.read_bytes(missing)
    assert changed_files(repo, "HEAD~1") == ["models/gone.sql", "models/new.sql", "models/old.sql"]


def test_prefix_roots_the_tree_at_a_subdirectory(repo: Path) -> None:
    commit(repo, {
        "README.md": "top\n",
        "analytics/dbt_project.yml": "name: a\n",
        "analytics/models/staging/stg.sql": "select 1\n",
        "analytics2/models/x.sql": "select 2\n",  # shares the name's first letters
    })
    tree = GitTree(repo, "HEAD", prefix="analytics/")
    assert tree.prefix == "analytics" and tree.root == repo.resolve()
    assert tree.walk() == ["dbt_project.yml", "models/staging/stg.sql"]
    assert tree.walk("models") == ["models/staging/stg.sql"]
    assert tree.read_bytes("models/staging/stg.sql") == b"select 1\n"
    assert tree.listdir("") == ["dbt_project.yml", "models"]
    assert tree.is_dir("") and tree.is_dir("models/staging")
    assert not tree.is_file("README.md")
    with pytest.raises(FileNotFoundError):
        tree.read_bytes("../README.md")
    # a project that did not exist at that revision: an empty tree, not an error
    empty = GitTree(repo, "HEAD", prefix="not/there")
    assert empty.walk() == [] and empty.listdir("") == [] and not empty.is_dir("")


def test_binary_crlf_and_non_utf8_bytes_exactly(repo: Path) -> None:
    binary = bytes(range(256)) * 3 + b"\x00\n"  # ends in LF, like the batch delimiter
    crlf = b"select 1\r\nfrom t -- caf\xe9\r\n\xff\xfe no newline"
    commit(repo, {"seeds/blob.bin": binary, "models/crlf.sql": crlf, "empty.txt": b"",
                  "models/caf\u00e9.sql": "select '\u00e9'\n"})
    with GitTree(repo) as tree:
        for _ in range(2):  # the batch process stays in step across reads
            assert tree.read_bytes("seeds/blob.bin") == binary
            assert tree.read_bytes("models/crlf.sql") == crlf
            assert tree.read_bytes("empty.txt") == b""
        assert tree.read_bytes("models/caf\u00e9.sql") == "select '\u00e9'\n".encode()
        assert "caf\u00e9.sql" in tree.listdir("models")


def test_walk_skip_rules_match_worktree(repo: Path) -> None:
    files = {
        "dbt_project.yml": "name: a\n",
        "models/a.sql": "select 1\n",
        "models/.hidden.sql": "select 2\n",
        ".github/workflows/ci.yml": "on: push\n",
        "dbt_packages/pkg/models/p.sql": "select 3\n",
        "target/compiled/a.sql": "select 4\n",
        "logs/dbt.log": "x\n",
        "models/target": "a file named like a skipped dir is kept\n",
        "models/sub/.cache/c.sql": "select 5\n",
    }
    # commit with -f: the repo's .gitignore rules must not matter
    for rel, data in files.items():
        write(repo, rel, data)
    git(repo, "add", "-f", ".")
    git(repo, "commit", "-q", "-m", "c")
    tree, disk = GitTree(repo), WorkTree(repo)
    assert tree.walk() == ["dbt_project.yml", "models/a.sql", "models/target"]
    assert tree.walk("models", skip_hidden=False) == [
        "models/.hidden.sql", "models/a.sql", "models/sub/.cache/c.sql", "models/target"]
    assert tree.walk(skip_dirs=frozenset()) == [
        "dbt_packages/pkg/models/p.sql", "dbt_project.yml", "logs/dbt.log", "models/a.sql",
        "models/target", "target/compiled/a.sql"]
    assert tree.walk("nope") == [] and tree.walk("models/a.sql") == []
    kwargs: dict[str, Any]
    for kwargs in ({}, {"skip_hidden": False}, {"skip_dirs": frozenset()}):
        hidden_git = {p for p in disk.walk(**kwargs) if p.startswith(".git/")}
        assert tree.walk(**kwargs) == sorted(set(disk.walk(**kwargs)) - hidden_git)


def test_symlinks_resolve_inside_the_tree(repo: Path) -> None:
    commit(repo, {"shared/x.sql": "select 1\n", "models/real.sql": "select 2\n"})
    os.symlink("../shared/x.sql", repo / "models/link.sql")
    os.symlink("../shared", repo / "models/shared_dir")
    os.symlink("missing.sql", repo / "models/dangling.sql")
    os.symlink("../../outside.sql", repo / "models/escape.sql")
    os.symlink("/nonexistent/bulwark.sql", repo / "models/absolute.sql")
    commit(repo, {})
    tree = GitTree(repo)
    assert tree.read_bytes("models/link.sql") == b"select 1\n"
    assert tree.is_file("models/link.sql")
    assert tree.is_dir("models/shared_dir") and tree.listdir("models/shared_dir") == ["x.sql"]
    assert tree.read_bytes("models/shared_dir/x.sql") == b"select 1\n"
    for bad in ("models/dangling.sql", "models/escape.sql", "models/absolute.sql"):
        assert not tree.is_file(bad)
        with pytest.raises(FileNotFoundError):
            tree.read_bytes(bad)
    assert "dangling.sql" in tree.listdir("models")  # listed, like os.listdir
    # walk lists links to files (as WorkTree does) and does not descend linked dirs
    assert tree.walk("models") == ["models/link.sql", "models/real.sql"]
    assert tree.walk("models") == WorkTree(repo).walk("models")


def test_submodules_are_skipped(repo: Path) -> None:
    sha = commit(repo, {"models/a.sql": "select 1\n"})
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{sha},vendor/sub")
    git(repo, "commit", "-q", "-m", "submodule")
    tree = GitTree(repo)
    assert tree.walk() == ["models/a.sql"]
    assert not tree.is_file("vendor/sub") and not tree.is_dir("vendor/sub")
    assert tree.listdir("") == ["models"]


def test_bad_revision_and_not_a_repo(repo: Path, tmp_path: Path) -> None:
    commit(repo, {"a.sql": "select 1\n"})
    for rev in ("no-such-branch", "HEAD~5", "-rf", "deadbeef" * 5):
        with pytest.raises(GitError, match="revision") as err:
            GitTree(repo, rev)
        assert repr(rev) in str(err.value)
        assert isinstance(err.value, UsageError)  # the CLI prints one line, exit 2
    with pytest.raises(GitError, match="not inside a git work tree"):
        GitTree(tmp_path / "elsewhere")
    assert repo_root(tmp_path) is None
    assert repo_root(tmp_path / "missing") is None


def test_empty_repository(repo: Path) -> None:
    assert repo_root(repo) == repo.resolve()
    assert not has_commits(repo) and not rev_exists(repo, "HEAD")
    assert resolve_base(repo, None, env={}) is None
    assert default_branch(repo) is None
    with pytest.raises(GitError, match="'HEAD' does not exist"):
        GitTree(repo)
    write(repo, "dbt_project.yml", "name: a\n")
    write(repo, "models/a.sql", "select 1\n")
    git(repo, "add", "dbt_project.yml")
    assert changed_files(repo, None) == ["dbt_project.yml", "models/a.sql"]
    assert changed_files(repo, None, staged_only=True) == ["dbt_project.yml"]


def test_close_stops_the_batch_process_and_reads_restart_it(repo: Path) -> None:
    commit(repo, {"a.sql": "select 1\n"})
    tree = GitTree(repo)
    assert tree._cat.proc is None  # started lazily
    tree.read_bytes("a.sql")
    proc = tree._cat.proc
    assert proc is not None and proc.poll() is None
    tree.close()
    assert proc.returncode is not None and tree._cat.proc is None
    assert tree.read_bytes("a.sql") == b"select 1\n"
    with tree:
        pass
    tree.close()  # idempotent


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_reads_through_its_own_batch_process(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tree read before a fork (:mod:`dbt_bulwark.parallel`) is read by both processes:
    the child starts its own ``git cat-file``, the parent's stays in step."""
    from dbt_bulwark import parallel

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    commit(repo, {f"{c}.sql": f"select '{c}'\n" * 2000 for c in "abcd"})
    tree = GitTree(repo)
    assert tree.read_bytes("a.sql") == b"select 'a'\n" * 2000
    proc = tree._cat.proc

    def in_child() -> list[bytes]:
        got = [tree.read_bytes(f"{c}.sql") for c in "bcd"]
        tree.close()   # the child's own process; the parent's is not touched
        return got

    waiter = parallel.in_child(in_child, [])
    assert waiter is not None
    here = [tree.read_bytes(f"{c}.sql") for c in "dcb"]
    assert waiter() == here[::-1] == [f"select '{c}'\n".encode() * 2000 for c in "bcd"]
    assert tree._cat.proc is proc and proc is not None and proc.poll() is None
    tree.close()


def test_garbage_collection_stops_the_process(repo: Path) -> None:
    commit(repo, {"a.sql": "select 1\n"})
    tree = GitTree(repo)
    tree.read_bytes("a.sql")
    proc = tree._cat.proc
    assert proc is not None
    del tree
    import gc

    gc.collect()
    assert proc.returncode is not None


# --------------------------------------------------------------------------- helpers


def test_repo_root_from_a_subdirectory_and_a_file(repo: Path) -> None:
    commit(repo, {"sub/dir/a.sql": "select 1\n"})
    assert repo_root(repo / "sub" / "dir") == repo.resolve()
    assert repo_root(repo / "sub" / "dir" / "a.sql") == repo.resolve()


def test_resolve_base(repo: Path) -> None:
    first = commit(repo, {"a.sql": "select 1\n"})
    git(repo, "checkout", "-q", "-b", "feature")
    second = commit(repo, {"b.sql": "select 2\n"})
    third = commit(repo, {"c.sql": "select 3\n"})
    assert resolve_base(repo, None, env={}) == "HEAD"
    assert resolve_base(repo, "main", env={"PRE_COMMIT_FROM_REF": second}) == "main"
    with pytest.raises(GitError, match="'nope'"):
        resolve_base(repo, "nope", env={})
    env = {"PRE_COMMIT_FROM_REF": second, "PRE_COMMIT_TO_REF": third}
    assert resolve_base(repo, None, env=env) == second
    assert resolve_base(repo, None, env={"PRE_COMMIT_SOURCE": second,
                                         "PRE_COMMIT_ORIGIN": third}) == second
    # a new branch: from-ref is all zeros -> merge base of to-ref with the default branch
    assert resolve_base(repo, None, env={"PRE_COMMIT_FROM_REF": ZERO,
                                         "PRE_COMMIT_TO_REF": third}) == first
    assert resolve_base(repo, None, env={"PRE_COMMIT_FROM_REF": ZERO}) == first
    # a from-ref or to-ref we do not have locally is an error, never a silent fallback
    with pytest.raises(GitError, match="PRE_COMMIT_FROM_REF"):
        resolve_base(repo, None, env={"PRE_COMMIT_FROM_REF": "ab" * 20,
                                      "PRE_COMMIT_TO_REF": third})
    with pytest.raises(GitError, match="PRE_COMMIT_TO_REF"):
        resolve_base(repo, None, env={"PRE_COMMIT_FROM_REF": second,
                                      "PRE_COMMIT_TO_REF": "cd" * 20})


def test_resolve_base_new_branch_without_a_default_branch(repo: Path) -> None:
    commit(repo, {"a.sql": "select 1\n"})
    git(repo, "branch", "-m", "main", "topic")
    assert default_branch(repo) is None
    assert resolve_base(repo, None, env={"PRE_COMMIT_FROM_REF": ZERO}) is None


def test_default_branch(repo: Path, tmp_path: Path) -> None:
    commit(repo, {"a.sql": "select 1\n"})
    assert default_branch(repo) == "main"
    git(repo, "branch", "-m", "main", "master")
    assert default_branch(repo) == "master"
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    git(clone, "checkout", "-q", "-b", "trunk")
    git(clone, "branch", "-q", "-D", "master")
    assert default_branch(clone) == "origin/master"  # origin/HEAD is set by clone


def test_merge_base(repo: Path) -> None:
    commit(repo, {"a.sql": "select 1\n"})
    fork = commit(repo, {"a.sql": "select 2\n"})
    git(repo, "checkout", "-q", "-b", "feature")
    commit(repo, {"f.sql": "select 3\n"})
    git(repo, "checkout", "-q", "main")
    commit(repo, {"m.sql": "select 4\n"})
    assert merge_base(repo, "feature", "main") == fork
    assert merge_base(repo, "main", "feature") == fork
    git(repo, "checkout", "-q", "--orphan", "unrelated")
    commit(repo, {"u.sql": "select 5\n"})
    assert merge_base(repo, "unrelated", "main") is None
    with pytest.raises(GitError, match="'nope'"):
        merge_base(repo, "nope", "main")


def test_changed_files_staged_untracked_deleted(repo: Path) -> None:
    commit(repo, {".gitignore": "target/\n", "models/a.sql": "select 1\n",
                  "models/b.sql": "select 2\n", "models/c.sql": "select 3\n",
                  "models/d.sql": "select 4\n"})
    write(repo, "models/a.sql", "select 10\n")          # modified, unstaged
    write(repo, "models/b.sql", "select 20\n")          # modified, staged
    git(repo, "add", "models/b.sql")
    git(repo, "rm", "-q", "models/c.sql")               # deleted, staged
    git(repo, "mv", "models/d.sql", "models/e.sql")     # renamed, staged
    write(repo, "models/new.sql", "select 5\n")         # untracked
    write(repo, "target/run.sql", "select 6\n")         # ignored
    assert changed_files(repo, "HEAD") == [
        "models/a.sql", "models/b.sql", "models/c.sql", "models/d.sql", "models/e.sql",
        "models/new.sql"]
    assert changed_files(repo, "HEAD", staged_only=True) == [
        "models/b.sql", "models/c.sql", "models/d.sql", "models/e.sql"]
    # paths stay relative to the repository root when asked from a subdirectory
    assert changed_files(repo / "models", "HEAD") == changed_files(repo, "HEAD")
    with pytest.raises(GitError, match="'nope'"):
        changed_files(repo, "nope")


def test_missing_blob_is_an_unreadable_file_not_a_failure(repo: Path) -> None:
    """A partial clone may lack a blob: that one file raises OSError, the tree still reads."""
    commit(repo, {"big.csv": "a,b\n1,2\n", "small.sql": "select 1\n"})
    oid = git(repo, "rev-parse", "HEAD:big.csv").strip()
    (repo / ".git" / "objects" / oid[:2] / oid[2:]).unlink()
    with GitTree(repo, "HEAD") as tree:
        with pytest.raises(OSError, match="missing"):
            tree.read_bytes("big.csv")
        assert tree.read_bytes("small.sql") == b"select 1\n"


def test_work_tree_reads_a_file_once_until_bulwark_writes(tmp_path: Path) -> None:
    """The head's load and the base's unchanged files read the same files: a WorkTree keeps
    what it read for its run, and forgets it all once bulwark writes a file (a --fix)."""
    from dbt_bulwark.project.fs import atomic_write

    (tmp_path / "models").mkdir()
    model = tmp_path / "models" / "a.sql"
    model.write_text("select 1 as a\n")
    tree = WorkTree(tmp_path)
    assert tree.read_bytes("models/a.sql") == b"select 1 as a\n"
    model.write_text("select 2 as a\n")      # behind bulwark's back, during one run
    assert tree.read_bytes("models/a.sql") == b"select 1 as a\n"
    atomic_write(tmp_path / "models" / "b.yml", b"version: 2\n", tmp_path)
    assert tree.read_bytes("models/a.sql") == b"select 2 as a\n"
    assert tree.read_bytes("models/b.yml") == b"version: 2\n"
    with pytest.raises(FileNotFoundError):
        tree.read_bytes("models/missing.sql")
