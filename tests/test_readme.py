"""The README's promises: its `rev:` names the release tag of this version, and its
`.pre-commit-config.yaml` quick start works as written on the sample project."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

# the session fixtures and helpers of the pre-commit end-to-end suite (hook repository =
# a one-commit snapshot of this work tree, a PRE_COMMIT_HOME per session)
from test_pre_commit_e2e import (  # noqa: F401 - fixtures are used by name
    _commit_all,
    _describe,
    _env,
    _git,
    _hook_statuses,
    _pre_commit,
    _run,
    _write_project,
    hook_repo,
    pre_commit_home,
)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def _version() -> str:
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'^version = "([^"]+)"', text, re.M)
    assert m, "no version in pyproject.toml"
    return m.group(1)


def readme_config() -> dict:
    """The README's `.pre-commit-config.yaml` code block, parsed."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if b.startswith("# .pre-commit-config.yaml")]
    return yaml.safe_load(block)


def test_readme_rev_is_the_tag_of_this_version() -> None:
    from dbt_bulwark import __version__

    version = _version()
    assert __version__ == version, "bump pyproject.toml and __init__.py together"
    (entry,) = readme_config()["repos"]
    assert entry["rev"] == f"v{version}"
    # every other place that tells users what to pin says the same
    for path in [REPO / "hooks" / "pre-commit-config.example.yaml",
                 *sorted((REPO / "docs").rglob("*.md"))]:
        for rev in re.findall(r"^\s*rev:\s*(\S+)", path.read_text(encoding="utf-8"), re.M):
            assert rev == f"v{version}", f"{path.relative_to(REPO)}: rev: {rev}"
    for path in sorted((REPO / "hooks" / "github").glob("*.yml")):
        for tag in re.findall(r"dbt-bulwark@(v[\d.]+)", path.read_text(encoding="utf-8")):
            assert tag == f"v{version}", path.name
    release_doc = (REPO / "docs" / "releasing.md").read_text(encoding="utf-8")
    assert "git tag -a vX.Y.Z" in release_doc and "pre-commit autoupdate" in release_doc


@pytest.mark.slow
def test_readme_quick_start_on_a_fresh_repository(hook_repo: tuple[Path, str],  # noqa: F811
                                                  pre_commit_home: Path,  # noqa: F811
                                                  tmp_path: Path) -> None:
    """The README block, with `repo:` pointing at this checkout (as a one-commit snapshot)
    and `rev:` at its commit, in a fresh git repository holding the sample project:
    `pre-commit run --all-files` passes."""
    path, sha = hook_repo
    config = readme_config()
    (entry,) = config["repos"]
    hook_ids = [h["id"] for h in entry["hooks"]]
    entry["repo"], entry["rev"] = str(path), sha
    env = _env(pre_commit_home)
    repo = tmp_path / "analytics"
    repo.mkdir()
    _write_project(repo)
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False),
                                                  encoding="utf-8")
    _git(repo, env, "init", "-q")
    _commit_all(repo, env, "a dbt project with bulwark's hooks")
    proc = _run([*_pre_commit(), "run", "--all-files", "--verbose", "--color", "never"],
                repo, env)
    assert proc.returncode == 0, _describe(proc)
    statuses = _hook_statuses(proc.stdout)
    assert statuses == {h: "Passed" for h in hook_ids}, _describe(proc)
