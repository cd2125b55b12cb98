"""The pre-commit hook manifest (.pre-commit-hooks.yaml) and the example config.

Checks that pre-commit accepts the manifest, that every hook's `entry` resolves to
a real `bulwark` command, and that the `files` patterns select what each hook needs.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import skip_or_fail

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST = REPO_ROOT / ".pre-commit-hooks.yaml"
EXAMPLE_CONFIG = REPO_ROOT / "hooks" / "pre-commit-config.example.yaml"

EXPECTED_IDS = {
    "bulwark",
    "fast-compile",
    "check-contracts",
    "check-critical-tags",
    "check-schema-diff",
    "bulwark-ci",
    "check-baselines",
}

# Paths that must (or must not) trigger a hook through its `files` pattern.
ALWAYS_MATCH = ["models/x.sql", "models/staging/stg_orders.sql", "dbt_project.yml"]
YAML_MATCH = ["models/schema.yml", "models/_models.yaml", "dbt_project.yml", "packages.yml"]
NEVER_MATCH = [
    "README.md",
    "models/README.md",
    "docs/img/lineage.png",
    "LICENSE",
    "setup.cfg",
    "models/x.sqlx",
    "target/run_results.json",
]
# Extra paths per hook, beyond ALWAYS_MATCH / YAML_MATCH.
EXTRA_MATCH = {
    "bulwark": ["models/py_model.py", "seeds/country_codes.csv", "macros/docs.md"],
    "fast-compile": ["models/py_model.py", "seeds/country_codes.csv", "macros/docs.md"],
    "check-contracts": ["models/py_model.py", "seeds/country_codes.csv"],
    "check-critical-tags": ["models/py_model.py"],
    "check-schema-diff": ["models/py_model.py", "seeds/country_codes.csv"],
    "check-baselines": ["models/py_model.py", "seeds/country_codes.csv"],
}
EXTRA_NO_MATCH = {
    "check-contracts": ["macros/docs.md"],
    "check-critical-tags": ["seeds/country_codes.csv", "macros/docs.md"],
    "check-schema-diff": ["macros/docs.md"],
    "check-baselines": ["macros/docs.md"],
}
# Installed dbt packages never trigger a hook.
PACKAGE_PATHS = ["dbt_packages/dbt_utils/macros/sql/star.sql", "sub/dbt_packages/p/models/a.sql"]


def _load_manifest() -> list[dict]:
    hooks = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    assert isinstance(hooks, list), "the manifest must be a YAML list of hooks"
    return hooks


def _hooks_by_id() -> dict[str, dict]:
    return {hook["id"]: hook for hook in _load_manifest()}


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _pre_commit() -> list[str]:
    if importlib.util.find_spec("pre_commit") is None:
        skip_or_fail("pre-commit is not installed")
    return [sys.executable, "-m", "pre_commit"]


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(REPO_ROOT / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _subcommand_tokens(hook: dict) -> tuple[str, list[str], list[str]]:
    """entry -> (executable, [command, sub-command...], remaining tokens incl. hook args)."""
    tokens = shlex.split(hook["entry"])
    assert len(tokens) >= 2, f"{hook['id']}: entry {hook['entry']!r} names no command"
    executable, command, rest = tokens[0], tokens[1], tokens[2:]
    words = [command]
    # Leading bare words after the command are sub-commands (`baseline check`).
    while rest and not rest[0].startswith("-"):
        words.append(rest.pop(0))
    return executable, words, rest + list(hook.get("args", []))


# --- (a) pre-commit accepts the files ----------------------------------------


def test_manifest_validates_with_pre_commit() -> None:
    cmd = [*_pre_commit(), "validate-manifest", str(MANIFEST)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_example_config_validates_with_pre_commit() -> None:
    cmd = [*_pre_commit(), "validate-config", str(EXAMPLE_CONFIG)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- (c) the set of hooks ------------------------------------------------------


def test_hook_ids_are_exactly_the_expected_ones() -> None:
    ids = [hook["id"] for hook in _load_manifest()]
    assert len(ids) == len(set(ids)), f"duplicate hook ids: {ids}"
    assert set(ids) == EXPECTED_IDS


def test_example_config_uses_every_hook_once_from_one_repo() -> None:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    repos = config["repos"]
    assert len(repos) == 1, "the example is one `repo:` entry"
    assert repos[0]["rev"] == "v0.1.0"
    ids = [hook["id"] for hook in repos[0]["hooks"]]
    # the combined hook replaces the four static ids (shown there, commented out)
    assert sorted(ids) == ["bulwark", "bulwark-ci", "check-baselines"]
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    for hook_id in ("fast-compile", "check-contracts", "check-critical-tags",
                    "check-schema-diff"):
        assert f"# - id: {hook_id}" in text
    by_id = {hook["id"]: hook for hook in repos[0]["hooks"]}
    # `stages:` in a config replaces the manifest's: keep `manual` reachable
    # and the schema diff at both stages.
    for hook_id, hook in by_id.items():
        assert "manual" in hook.get("stages", ["manual"]), hook_id
    assert {"pre-commit", "pre-push"} <= set(by_id["bulwark"]["stages"])
    for hook_id in ("bulwark-ci", "check-baselines"):
        assert "pre-commit" not in by_id[hook_id]["stages"], hook_id


# --- hook settings -------------------------------------------------------------


@pytest.mark.parametrize("hook_id", sorted(EXPECTED_IDS))
def test_hook_settings(hook_id: str) -> None:
    hook = _hooks_by_id()[hook_id]
    assert hook["language"] == "python"
    assert hook.get("require_serial") is True, "every hook reads the whole project"
    # Stage names `pre-commit`/`pre-push` exist since pre-commit 3.2.0.
    assert str(hook.get("minimum_pre_commit_version")) == "3.2.0"
    assert hook.get("name", "").strip() and hook.get("description", "").strip()
    stages = set(hook.get("stages", []))
    assert stages, "each hook states its stages"
    assert stages <= {"pre-commit", "pre-push", "manual"}
    assert "manual" in stages
    if hook_id in ("bulwark-ci", "check-baselines"):
        assert stages == {"manual", "pre-push"}
        assert hook.get("pass_filenames") is False
    else:
        assert "pre-commit" in stages
        assert hook.get("pass_filenames", True) is True
    if hook_id == "bulwark-ci":
        assert hook.get("always_run") is True
    if hook_id in ("check-schema-diff", "bulwark"):
        assert stages == {"pre-commit", "pre-push", "manual"}


# --- (b) every entry resolves to a real command -------------------------------


@pytest.mark.parametrize("hook_id", sorted(EXPECTED_IDS))
def test_entry_resolves_to_a_bulwark_command(hook_id: str) -> None:
    from dbt_bulwark.cli import COMMANDS

    hook = _hooks_by_id()[hook_id]
    executable, words, rest = _subcommand_tokens(hook)
    scripts = _pyproject()["project"].get("scripts", {})
    assert executable in scripts, (
        f"{executable!r} is not a [project.scripts] name: {sorted(scripts)}"
    )
    # cli.entry: main() and then a quick exit (exit handlers run, no interpreter teardown)
    assert scripts[executable] == "dbt_bulwark.cli:entry"

    command, subcommands = words[0], words[1:]
    assert command in COMMANDS, f"{command!r} is not a bulwark command: {sorted(COMMANDS)}"
    module = importlib.import_module(f"dbt_bulwark.commands.{COMMANDS[command][0]}")
    assert callable(getattr(module, "add_arguments", None)), f"{module.__name__}.add_arguments"
    assert callable(getattr(module, "run", None)), f"{module.__name__}.run"

    # The command's own parser accepts what pre-commit will pass it.
    parser = argparse.ArgumentParser(prog=f"bulwark {command}")
    module.add_arguments(parser)
    sub_actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if subcommands and sub_actions:
        choices = set().union(*(a.choices for a in sub_actions))
        assert subcommands[0] in choices, (
            f"`bulwark {command}` has sub-commands {sorted(choices)}, not {subcommands[0]!r}"
        )
    argv = [*subcommands, *rest]
    if hook.get("pass_filenames", True):
        argv += ["models/x.sql", "models/schema.yml"]
    try:
        parser.parse_args(argv)
    except SystemExit as exc:  # argparse error
        pytest.fail(f"`bulwark {command}` rejects {argv}: exit {exc.code}")


@pytest.mark.parametrize("hook_id", sorted(EXPECTED_IDS))
def test_entry_help_exits_zero(hook_id: str) -> None:
    _, words, _ = _subcommand_tokens(_hooks_by_id()[hook_id])
    cmd = [sys.executable, "-m", "dbt_bulwark.cli", *words, "--help"]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, cwd=REPO_ROOT, env=_subprocess_env(), timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "usage:" in proc.stdout


# --- (d) files patterns ----------------------------------------------------------


def _triggers(hook: dict, path: str) -> bool:
    """Would pre-commit pass `path` to the hook? (files, exclude, types_or.)"""
    files = hook.get("files", "")
    exclude = hook.get("exclude", "^$")
    if not re.search(files, path) or re.search(exclude, path):
        return False
    types_or = hook.get("types_or")
    if types_or:
        identify = pytest.importorskip("identify.identify")
        return bool(identify.tags_from_filename(path) & set(types_or))
    return True


@pytest.mark.parametrize("hook_id", sorted(EXPECTED_IDS - {"bulwark-ci"}))
def test_files_pattern(hook_id: str) -> None:
    hook = _hooks_by_id()[hook_id]
    assert hook.get("files"), f"{hook_id} must restrict the files that trigger it"
    re.compile(hook["files"])
    should = [*ALWAYS_MATCH, *YAML_MATCH, *EXTRA_MATCH.get(hook_id, [])]
    should_not = [*NEVER_MATCH, *PACKAGE_PATHS, *EXTRA_NO_MATCH.get(hook_id, [])]
    # The regex on its own ...
    assert [p for p in should if not re.search(hook["files"], p)] == []
    assert [p for p in NEVER_MATCH if re.search(hook["files"], p)] == []
    # ... and what pre-commit does with files, exclude and types_or together.
    assert [p for p in should if not _triggers(hook, p)] == []
    assert [p for p in should_not if _triggers(hook, p)] == []


def test_bulwark_ci_always_runs_without_file_names() -> None:
    hook = _hooks_by_id()["bulwark-ci"]
    assert hook.get("always_run") is True and hook.get("pass_filenames") is False
