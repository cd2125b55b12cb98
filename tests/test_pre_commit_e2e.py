"""End to end through pre-commit: install the hook environment from this checkout
and run the hooks on a small dbt project in a fresh git repository.

Why a snapshot of the work tree rather than `pre-commit try-repo <this checkout>`:
try-repo on a local path resolves the checkout's HEAD (`git ls-remote <path> HEAD`,
so a checkout without any commit fails outright) and, when there are uncommitted
changes, builds a shadow repo from HEAD plus the *staged* files plus `git add -u`
(tracked, modified files). Untracked files -- a new command module, a new
`.pre-commit-hooks.yaml` -- are silently left out, and the hooks tested would not be
the ones in the work tree. So the session fixture below copies the work tree
(tracked + untracked, minus ignored files) into a new repository with one commit,
and every pre-commit call uses that.

try-repo also ignores PRE_COMMIT_HOME: it makes a throw-away store in a temporary
directory, so every try-repo call builds the hook environment again (a few seconds
with a warm pip cache). The per-hook tests therefore use `pre-commit run` with the
example config pointing at the snapshot and a session-scoped PRE_COMMIT_HOME, so
that environment is built once per session.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import skip_or_fail

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
# the bundled sample project: clean under every hook (the oracle fixtures carry
# deliberate policy violations, so they are not "a clean project")
FIXTURE_PROJECT = REPO_ROOT / "examples" / "jaffle_bulwark"
EXAMPLE_CONFIG = REPO_ROOT / "hooks" / "pre-commit-config.example.yaml"
STATIC_HOOKS = ("fast-compile", "check-contracts", "check-critical-tags", "check-schema-diff")
PUSH_ONLY_HOOKS = ("bulwark-ci", "check-baselines")
# the example config runs the static checks through the combined hook
EXAMPLE_COMMIT_HOOKS = ("bulwark",)
TIMEOUT = 600  # seconds per pre-commit call: a cold pip cache must still fit

# Copied from neither the work tree nor the fixture project.
_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    "*.pyc",
    "*.egg-info",
    "build",
    "dist",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".bulwark-cache",
    "target",
    "logs",
    "dbt_packages",
    "*.duckdb",
    "*.duckdb.wal",
    ".user.yml",
)

INLINE_PROJECT = {
    "dbt_project.yml": (
        "name: tiny\nversion: '1.0.0'\nconfig-version: 2\nprofile: tiny\nmodel-paths: ['models']\n"
    ),
    "models/stg_orders.sql": ("select 1 as order_id, 10 as customer_id, 9.5 as amount\n"),
    "models/orders.sql": ("select order_id, customer_id, amount\nfrom {{ ref('stg_orders') }}\n"),
    "models/schema.yml": (
        "version: 2\n"
        "models:\n"
        "  - name: stg_orders\n"
        "    columns:\n"
        "      - name: order_id\n"
        "  - name: orders\n"
        "    description: One row per order.\n"
        "    columns:\n"
        "      - name: order_id\n"
        "        data_tests: [unique, not_null]\n"
    ),
}


# --- helpers ---------------------------------------------------------------------


def _pre_commit() -> list[str]:
    if importlib.util.find_spec("pre_commit") is None:
        skip_or_fail("pre-commit is not installed")
    if shutil.which("git") is None:
        skip_or_fail("git is not installed")
    return [sys.executable, "-m", "pre_commit"]


def _env(pre_commit_home: Path) -> dict[str, str]:
    """The caller's environment without anything that steers git or pre-commit."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GIT_", "PRE_COMMIT")) and k not in ("SKIP", "VIRTUAL_ENV")
    }
    env.update(
        GIT_AUTHOR_NAME="bulwark-test",
        GIT_AUTHOR_EMAIL="bulwark-test@example.invalid",
        GIT_COMMITTER_NAME="bulwark-test",
        GIT_COMMITTER_EMAIL="bulwark-test@example.invalid",
        PRE_COMMIT_HOME=str(pre_commit_home),
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_NO_INPUT="1",
        NO_COLOR="1",
        TERM="dumb",
    )
    return env


def _git(cwd: Path, env: dict[str, str], *args: str) -> str:
    cmd = [
        "git",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "init.defaultBranch=main",
        "-c",
        "core.hooksPath=/dev/null",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def _commit_all(repo: Path, env: dict[str, str], message: str) -> str:
    _git(repo, env, "add", "-A")
    _git(repo, env, "commit", "-q", "--no-verify", "-m", message)
    return _git(repo, env, "rev-parse", "HEAD").strip()


def _work_tree_files() -> list[Path]:
    """Tracked and untracked-but-not-ignored files of the checkout, relative paths."""
    proc: subprocess.CompletedProcess[bytes] | None
    top: subprocess.CompletedProcess[str] | None
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=60,
        )
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError:
        proc = top = None
    if proc and top and proc.returncode == 0 and Path(top.stdout.strip()).resolve() == REPO_ROOT:
        names = [n for n in proc.stdout.decode().split("\0") if n]
        return [Path(n) for n in names if (REPO_ROOT / n).is_file()]
    # Not a git checkout (an unpacked sdist, say): copy what is there.
    files = []
    for dirpath, dirnames, filenames in os.walk(REPO_ROOT):
        here = Path(dirpath)
        keep = set(dirnames) - set(_IGNORE(dirpath, dirnames))
        dirnames[:] = sorted(keep)
        for name in set(filenames) - set(_IGNORE(dirpath, filenames)):
            files.append((here / name).relative_to(REPO_ROOT))
    return files


def _write_project(dest: Path) -> None:
    if (FIXTURE_PROJECT / "dbt_project.yml").is_file():
        shutil.copytree(FIXTURE_PROJECT, dest, ignore=_IGNORE, dirs_exist_ok=True)
    else:
        for rel, text in INLINE_PROJECT.items():
            path = dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    (dest / ".gitignore").write_text("target/\nlogs/\ndbt_packages/\n.bulwark-cache/\n")


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


_RESULT_LINE = re.compile(r"\.{3,}(?:\(no files to check\))?\s*(Passed|Failed|Skipped)$")


def _hook_statuses(output: str) -> dict[str, str]:
    """hook id -> Passed/Failed/Skipped, from `pre-commit run --verbose` output.

    With --verbose every hook's result line is followed by `- hook id: <id>`.
    """
    statuses: dict[str, str] = {}
    last_result = ""
    for line in output.splitlines():
        stripped = line.strip()
        result = _RESULT_LINE.search(stripped)
        if result:
            last_result = result.group(1)
        elif stripped.startswith("- hook id: "):
            statuses[stripped[len("- hook id: ") :]] = last_result
    return statuses


def _describe(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"


# --- fixtures --------------------------------------------------------------------


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory: pytest.TempPathFactory, pre_commit_home: Path) -> tuple[Path, str]:
    """A one-commit repository holding the work tree as it is now: (path, sha)."""
    _pre_commit()
    env = _env(pre_commit_home)
    snap = tmp_path_factory.mktemp("hook-repo")
    for rel in _work_tree_files():
        dest = snap / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, dest)
    assert (snap / ".pre-commit-hooks.yaml").is_file()
    _git(snap, env, "init", "-q")
    return snap, _commit_all(snap, env, "snapshot of the work tree")


@pytest.fixture(scope="module")
def clean_project(tmp_path_factory: pytest.TempPathFactory, pre_commit_home: Path) -> Path:
    """A committed, clean dbt project in its own git repository."""
    env = _env(pre_commit_home)
    repo = tmp_path_factory.mktemp("dbt-repo")
    _write_project(repo)
    _git(repo, env, "init", "-q")
    _commit_all(repo, env, "a dbt project")
    return repo


@pytest.fixture(scope="module")
def example_config(tmp_path_factory: pytest.TempPathFactory, hook_repo: tuple[Path, str]) -> Path:
    """hooks/pre-commit-config.example.yaml, pointed at the snapshot repository."""
    path, sha = hook_repo
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    (entry,) = config["repos"]
    entry["repo"], entry["rev"] = str(path), sha
    out = tmp_path_factory.mktemp("config") / "pre-commit-config.yaml"
    out.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return out


# --- tests -----------------------------------------------------------------------


def test_try_repo_runs_every_commit_hook_on_a_clean_project(
    hook_repo: tuple[Path, str], clean_project: Path, pre_commit_home: Path
) -> None:
    """One try-repo call without a hook id: the four static hooks and the combined one
    run and pass."""
    path, _ = hook_repo
    cmd = [*_pre_commit(), "try-repo", str(path), "--all-files", "--verbose", "--color", "never"]
    proc = _run(cmd, clean_project, _env(pre_commit_home))
    assert proc.returncode == 0, _describe(proc)
    statuses = _hook_statuses(proc.stdout)
    for hook_id in (*STATIC_HOOKS, "bulwark"):
        assert hook_id in proc.stdout
        assert statuses.get(hook_id) == "Passed", f"{hook_id}: {statuses}\n{_describe(proc)}"
    # The dbt-running hooks are not in the pre-commit stage.
    for hook_id in PUSH_ONLY_HOOKS:
        assert hook_id not in statuses, _describe(proc)


@pytest.mark.parametrize("hook_id", EXAMPLE_COMMIT_HOOKS)
def test_each_hook_passes_through_the_example_config(
    hook_id: str, example_config: Path, clean_project: Path, pre_commit_home: Path
) -> None:
    """`pre-commit run <id>` with the user-facing example config (env built once)."""
    cmd = [
        *_pre_commit(),
        "run",
        hook_id,
        "--config",
        str(example_config),
        "--all-files",
        "--verbose",
        "--color",
        "never",
    ]
    proc = _run(cmd, clean_project, _env(pre_commit_home))
    assert proc.returncode == 0, _describe(proc)
    assert _hook_statuses(proc.stdout) == {hook_id: "Passed"}, _describe(proc)


@pytest.mark.parametrize("via", ["try-repo", "example-config"])
def test_schema_diff_runs_at_pre_push(via: str, hook_repo: tuple[Path, str], example_config: Path, tmp_path: Path, pre_commit_home: Path) -> None:
    """check-schema-diff at the pre-push stage over HEAD~1..HEAD.

    Through try-repo (as a developer of bulwark would) and through the example
    config, whose `stages:` replace the manifest's.
    """
    env = _env(pre_commit_home)
    repo = tmp_path / "dbt-repo"
    repo.mkdir()
    _write_project(repo)
    _git(repo, env, "init", "-q")
    _commit_all(repo, env, "a dbt project")
    # Second commit: touch a model without changing its output schema.
    model = next(p for p in sorted((repo / "models").rglob("*.sql")))
    model.write_text(model.read_text(encoding="utf-8") + "\n-- reviewed\n", encoding="utf-8")
    _commit_all(repo, env, "touch a model")

    if via == "try-repo":
        path, _ = hook_repo
        cmd = [*_pre_commit(), "try-repo", str(path), "check-schema-diff"]
    else:
        cmd = [*_pre_commit(), "run", "bulwark", "--config", str(example_config)]
    cmd += [
        "--hook-stage",
        "pre-push",
        "--from-ref",
        "HEAD~1",
        "--to-ref",
        "HEAD",
        "--verbose",
        "--color",
        "never",
    ]
    proc = _run(cmd, repo, env)
    assert proc.returncode == 0, _describe(proc)
    hook_id = "check-schema-diff" if via == "try-repo" else "bulwark"
    assert _hook_statuses(proc.stdout) == {hook_id: "Passed"}, _describe(proc)


def test_deleting_a_referenced_model_fails_the_commit(hook_repo: tuple[Path, str], tmp_path: Path, pre_commit_home: Path) -> None:
    """A staged deletion matches no hook's `files:`: the hooks are `always_run` and read
    the change from git, so the model's users are checked (issue 10, item 4)."""
    env = _env(pre_commit_home)
    repo = tmp_path / "dbt-repo"
    repo.mkdir()
    _write_project(repo)
    _git(repo, env, "init", "-q")
    _commit_all(repo, env, "a dbt project")
    used = {"stg_orders": "models/stg_orders.sql"}
    if (repo / "models/staging/stg_customers.sql").is_file():
        used = {"stg_customers": "models/staging/stg_customers.sql"}
    (name, rel), = used.items()
    _git(repo, env, "rm", "-q", rel)
    path, _ = hook_repo
    cmd = [*_pre_commit(), "try-repo", str(path), "fast-compile", "--verbose", "--color",
           "never"]
    proc = _run(cmd, repo, env)
    assert proc.returncode == 1, _describe(proc)
    assert _hook_statuses(proc.stdout) == {"fast-compile": "Failed"}, _describe(proc)
    assert "BLK118" in proc.stdout and f"'{name}'" in proc.stdout, _describe(proc)
    # a commit touching no dbt file: the hook runs (always_run) and passes at once
    _git(repo, env, "reset", "-q", "--hard")
    (repo / "NOTES.txt").write_text("notes\n")
    _git(repo, env, "add", "NOTES.txt")
    proc = _run(cmd, repo, env)
    assert proc.returncode == 0, _describe(proc)
    assert _hook_statuses(proc.stdout) == {"fast-compile": "Passed"}, _describe(proc)
