"""check-critical-tags through `pre-commit try-repo`, on a real commit in a real repo.

The hook repository is a one-commit snapshot of this work tree (try-repo on the
checkout itself would leave out untracked files, see test_pre_commit_e2e.py); the
dbt repository is the ``tagged`` fixture, committed. A staged change that removes
the `critical` tag of a model must fail the commit with BLK310; restaging the tag
with the tag kept passes.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import skip_or_fail
from test_critical import GIT_ENV, edit, git, make_repo

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "PRE_COMMIT")) and k not in ("SKIP", "VIRTUAL_ENV")}
    env.update(GIT_ENV, PRE_COMMIT_HOME=str(home), PIP_DISABLE_PIP_VERSION_CHECK="1",
               NO_COLOR="1", TERM="dumb")
    return env


def _snapshot(dest: Path) -> Path:
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                          cwd=REPO_ROOT, capture_output=True, check=True)
    for name in filter(None, proc.stdout.decode().split("\0")):
        src = REPO_ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "--no-verify", "-m", "snapshot")
    return dest


def test_try_repo_blocks_removing_a_critical_tag(tmp_path: Path) -> None:
    if importlib.util.find_spec("pre_commit") is None or shutil.which("git") is None:
        skip_or_fail("pre-commit or git missing")
    hook_repo = _snapshot(tmp_path / "hook")
    repo = make_repo(tmp_path, "tagged")
    env = _env(tmp_path / "pc-home")
    sql = repo / "models/marts/finance/revenue.sql"
    original = sql.read_text()
    edit(sql, "{{ config(tags=['critical']) }}\n", "")
    git(repo, "add", "-A")
    cmd = [sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "check-critical-tags",
           "--verbose", "--color", "never"]
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "Failed" in out
    assert "models/marts/finance/_finance.yml:10:1: BLK310 model 'revenue' lost tag 'critical'" \
        in out
    sql.write_text(original + "-- reviewed: the tag stays\n")  # a change that keeps the tag
    git(repo, "add", "-A")
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Passed" in proc.stdout
