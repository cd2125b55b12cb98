"""Issue 15, "one way to do each thing": one content hash, one git runner, one Markdown
cell escaper, one label of a versioned model; typed policy; the schema-diff hook through
the runner (each project judged by its own policy)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "dbt_bulwark"


def _sources() -> dict[str, str]:
    return {str(p.relative_to(SRC)): p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")}


def test_one_content_hash() -> None:
    from dbt_bulwark.cache import content_hash

    users = sorted(name for name, text in _sources().items() if "hashlib.sha1" in text)
    assert users == ["cache.py"]
    assert content_hash("a\udcff") == content_hash("a\udcff")   # lone surrogates: no error
    assert content_hash("x") != content_hash("y") and len(content_hash("x")) == 40


def test_content_hash_remembers_long_texts_and_stays_exact(monkeypatch: Any) -> None:
    """A file's text is hashed by the head's load, the base's and the checks: the hash of a
    long text is remembered (a bounded memo, emptied when full), and always sha1's."""
    import hashlib

    from dbt_bulwark import cache

    monkeypatch.setattr(cache, "_HASHED", {})
    monkeypatch.setattr(cache, "_HASHED_MAX", 3)
    monkeypatch.setattr(cache, "_HASHED_CHARS", 1000)
    monkeypatch.setattr(cache, "_hashed_chars", 0)
    texts = [f"select {i} as n -- " + "x" * 300 for i in range(7)] + ["short", "a\udcff" * 60,
                                                                    "y" * 2000]
    for _ in range(2):
        for text in texts:
            want = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()
            assert cache.content_hash(text) == want
            assert len(cache._HASHED) <= 3
            assert sum(map(len, cache._HASHED)) <= max(1000, len(text))
    assert "short" not in cache._HASHED


def test_the_base_reuses_what_the_head_worked_out(monkeypatch: Any) -> None:
    """A commit reads the head and its git base, mostly the same files: the scan of a macro
    file, the lines of a model's config() keys and a "did you mean" are worked out once per
    run, and each answer is the one worked out afresh."""
    import difflib

    from dbt_bulwark import spelling
    from dbt_bulwark.project import loader, macros

    scans: list[str] = []
    real_blocks, real_spans = macros.top_level_blocks, macros._top_level_spans
    monkeypatch.setattr(macros, "_top_level_spans", lambda t: scans.append(t) or real_spans(t))
    macros._scan.cache_clear()
    text = "prose {% macro a(x) %}{{ x }}{% endmacro %}\n{% test b(model) %}1{% endtest %}"
    head, base = macros.MacroIndex("p"), macros.MacroIndex("p")
    head.add_file("p", "macros/m.sql", text)
    base.add_file("p", "macros/m.sql", "".join(list(text)))   # equal text, another object
    assert len(scans) == 1
    assert [(m.name, m.line) for m in base.by_package["p"].values()] == \
        [(m.name, m.line) for m in head.by_package["p"].values()] == [("a", 1), ("test_b", 2)]
    assert head.find("a").text == real_blocks(text)

    model = "{{ config(\n  materialized='table',\n  tags=['x']) }}\nselect 1"
    first = loader.config_call_lines(model, ("materialized", "tags"))
    assert loader.config_call_lines("".join(list(model)), ("materialized", "tags")) is first
    assert dict(first) == {"materialized": 2, "tags": 3}

    asked: list[str] = []
    real_close = difflib.get_close_matches
    monkeypatch.setattr(difflib, "get_close_matches",
                        lambda w, *a, **k: asked.append(w) or real_close(w, *a, **k))
    monkeypatch.setattr(spelling, "_CLOSEST", {})
    names = ["customers", "orders", "payments"]
    assert spelling.closest("Order", names) == "orders"
    assert spelling.closest("Order", {n: 1 for n in reversed(names)}) == "orders"
    assert spelling.closest("Order", names + ["order"]) == "order"    # other names: afresh
    assert asked == ["order", "order"]
    monkeypatch.setattr(spelling, "_POOLS", {})
    monkeypatch.setattr(spelling, "_CLOSEST", {})
    for i in range(50):       # many names, one set of candidates: the set is kept once
        spelling.closest(f"x{i}", list(names))
    assert len({id(pool) for _kind, _name, pool in spelling._CLOSEST}) == 1


def test_one_way_to_run_git(tmp_path: Path) -> None:
    from dbt_bulwark.project import gitfs
    from dbt_bulwark.project.workspace import find_repo_root

    users = sorted(name for name, text in _sources().items()
                   if re.search(r"""\[\s*["']git["']""", text))
    assert users == ["project/gitfs.py"]
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert find_repo_root(repo / "sub") == repo.resolve()
    outside = tmp_path / "plain"
    outside.mkdir()
    assert find_repo_root(outside) == outside.resolve()
    with pytest.raises(gitfs.GitError, match="failed"):
        gitfs.run_git(repo, "rev-parse", "--verify", "nope")


def test_one_markdown_cell_escaper() -> None:
    from dbt_bulwark.findings import markdown_cell

    assert markdown_cell("a|b\nc\r\nd") == "a\\|b c d"
    assert markdown_cell(3) == "3"
    copies = sorted(name for name, text in _sources().items() if "def _md(" in text)
    assert copies == []


def test_one_label_of_a_versioned_model() -> None:
    from dbt_bulwark.project.model import Node, versioned_name

    assert versioned_name("orders", None) == "orders"
    assert versioned_name("orders", 2) == "orders.v2"
    node = Node(unique_id="model.p.orders.v2", resource_type="model", package_name="p",
                name="orders", path="orders_v2.sql", original_file_path="models/orders_v2.sql",
                repo_path="models/orders_v2.sql", fqn=["p", "orders", "v2"], version=2)
    assert node.label == "orders.v2"
    for name, text in _sources().items():
        assert not re.search(r'f"[^"]*\{[\w.]*name\} v\{', text), name
        assert not re.search(r'f" v\{[\w.]*version\}"', text), name


# ----------------------------------------------------------------------------- git trees


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _git(root: Path, *args: str) -> None:
    import os

    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})


def _repo(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _write(root, files)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")
    return root


def _git_children() -> list[str]:
    """Live (not zombie) git processes whose parent is this test process."""
    import os

    me = str(os.getpid())
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        if fields[1] == me and comm.startswith("git") and fields[0] != "Z":
            out.append(f"{comm}:{stat.parent.name}")
    return out


PROJECT = "name: shop\nversion: '1.0'\nconfig-version: 2\nprofile: shop\n"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("command", ["check-critical-tags", "check-contracts",
                                     "check-schema-diff", "fast-compile"])
def test_git_trees_are_closed_explicitly(tmp_path: Path, command: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from dbt_bulwark import cli

    assert "weakref" not in (SRC / "project/gitfs.py").read_text()
    root = _repo(tmp_path, {"dbt_project.yml": PROJECT,
                            "models/a.sql": "select 1 as id, 2 as x\n",
                            "models/b.sql": "select id from {{ ref('a') }}\n"})
    (root / "models/a.sql").write_text("select 1 as id\n")
    monkeypatch.chdir(root)
    before = set(_git_children())   # what earlier tests of this process left is not ours
    gc.disable()   # a tree left open must show, not be collected by chance
    try:
        cli.main([command, "--repo-root", str(root), "--no-cache", "--all-files",
                  "--base", "HEAD", "models/a.sql"])
        assert [c for c in _git_children() if c not in before] == []
    finally:
        gc.enable()


# ----------------------------------------------------------------------------- fail_on per project

MONOREPO = {
    "a/dbt_project.yml": PROJECT.replace("shop", "alpha"),
    "a/bulwark.yml": "fail_on: warning\nschema_diff:\n  warn_only: true\n",
    "a/models/m.sql": "select 1 as id, 2 as x\n",
    "b/dbt_project.yml": PROJECT.replace("shop", "beta"),
    "b/bulwark.yml": "schema_diff:\n  warn_only: true\n",
    "b/models/n.sql": "select 1 as id, 2 as x\n",
}


@pytest.mark.parametrize(("warned", "expected"), [("a", 1), ("b", 0), ("ab", 1), ("", 0)])
def test_each_project_is_judged_by_its_own_fail_on(tmp_path: Path, warned: str,
                                                   expected: int,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Through the runner (fast-compile, check-contracts, check-critical-tags): a warning
    fails project a (fail_on: warning), not project b (fail_on: error), whichever comes
    first or last."""
    import argparse

    from dbt_bulwark import runner
    from dbt_bulwark.findings import Finding

    root = _repo(tmp_path, MONOREPO)
    monkeypatch.delenv("PRE_COMMIT", raising=False)

    def check(ctx: runner.HookContext, project: Any, policy: Any,
              targets: set[str] | None) -> list[Finding]:
        if project.root not in warned:
            return []
        path = f"{project.root}/models/{'m' if project.root == 'a' else 'n'}.sql"
        return [Finding(path, 1, 1, "BLK104", "a warning", "warning")]

    args = argparse.Namespace(files=[], all_files=True, repo_root=str(root), project_dir=None,
                              vars=None, no_cache=True, format="text", base_check=False)
    assert runner.run_hook(args, check) == expected
    capsys.readouterr()


@pytest.mark.parametrize(("changed", "expected"), [(["a/models/m.sql"], 1),
                                                   (["b/models/n.sql"], 0),
                                                   (["a/models/m.sql", "b/models/n.sql"], 1)])
def test_schema_diff_judges_each_project_by_its_own_fail_on(
        tmp_path: Path, changed: list[str], expected: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """check-schema-diff goes through the runner: a removed column (a warning under
    warn_only) fails project a (fail_on: warning) only; before, the last project's
    fail_on decided for all."""
    import json

    from dbt_bulwark import cli

    root = _repo(tmp_path, MONOREPO)
    for rel in changed:
        (root / rel).write_text("select 1 as id\n")
    monkeypatch.chdir(root)
    monkeypatch.delenv("PRE_COMMIT", raising=False)
    rc = cli.main(["check-schema-diff", "--repo-root", str(root), "--no-cache", "--base",
                   "HEAD", "--format", "json", *changed])
    out = capsys.readouterr().out
    found = json.loads(out)["findings"]
    assert sorted((f["code"], f["severity"], f["path"]) for f in found) == \
        [("BLK401", "warning", rel) for rel in changed], out
    assert rc == expected


# ----------------------------------------------------------------------------- typed policy


def _schema_of(cls: type) -> dict[str, object]:
    """SCHEMA's shape (key -> nested dict or default) from a policy dataclass."""
    import dataclasses

    out: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.name in ("sources", "explicit"):
            continue
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        out[f.name] = _schema_of(type(value)) if dataclasses.is_dataclass(value) else value
    return out


def test_policy_dataclasses_match_the_schema() -> None:
    from dbt_bulwark.policy import Policy, defaults

    assert _schema_of(Policy) == defaults()
    assert Policy.from_data(defaults()) == Policy()


def test_policy_is_typed_and_frozen(tmp_path: Path) -> None:
    import dataclasses

    from dbt_bulwark.policy import Policy, load_policy
    from dbt_bulwark.project.fs import WorkTree

    _write(tmp_path, {"bulwark.yml": "fail_on: warning\nschema_diff:\n  warn_only: true\n"
                                     "critical:\n  require:\n    owner: false\n",
                      "p/bulwark.yml": "locked:\n  tag: ice\nexclude: ['x/*']\n"})
    policy = load_policy(WorkTree(tmp_path), "p")
    assert policy.schema_diff.warn_only is True and policy.fail_on == "warning"
    assert policy.critical.require.owner is False and policy.critical.require.contract is True
    assert policy.locked.tag == "ice" and policy.exclude == ["x/*"]
    assert policy.sources == ["bulwark.yml", "p/bulwark.yml"]
    assert policy.is_set("schema_diff.warn_only") and not policy.is_set("schema_diff.protected")
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.fail_on = "error"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.schema_diff.warn_only = False  # type: ignore[misc]
    # what the policy says, not where it was read from
    assert load_policy(WorkTree(tmp_path), "") != policy
    assert Policy.from_data(policy.settings()) == policy


def test_no_dotted_policy_lookups_left() -> None:
    for name, text in _sources().items():
        assert not re.search(r'polic\w*\.get\("', text), name


# ----------------------------------------------------------------------------- not analysed


@pytest.mark.parametrize("child", [
    "select x from {{ ref('a') }} where (((\n",                   # SQL that does not parse
    "select x from {{ ref('a') }} {{ exceptions.raise_compiler_error('no') }}\n",  # no render
])
def test_a_child_that_cannot_be_read_is_not_analysed_never_no_use(
        tmp_path: Path, child: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from dbt_bulwark import cli

    root = _repo(tmp_path, {"dbt_project.yml": PROJECT,
                            "models/a.sql": "select 1 as id, 2 as x\n",
                            "models/b.sql": child})
    (root / "models/a.sql").write_text("select 1 as id\n")
    monkeypatch.chdir(root)
    monkeypatch.delenv("PRE_COMMIT", raising=False)
    rc = cli.main(["check-schema-diff", "--repo-root", str(root), "--no-cache", "--base",
                   "HEAD", "--format", "json", "models/a.sql"])
    out = json.loads(capsys.readouterr().out)
    codes = {(f["code"], f["severity"], f["path"]) for f in out["findings"]}
    assert ("BLK432", "info", "models/b.sql") in codes, out["findings"]
    removed = next(f for f in out["findings"] if f["code"] == "BLK401")
    assert "downstream use" not in removed["message"]   # unknown is not counted as a use
    # the not-analysed child is information: the verdict is the removed column's own
    assert rc == (1 if removed["severity"] == "error" else 0)
    assert all(f["severity"] == "info" for f in out["findings"] if f["code"] == "BLK432")


def test_a_check_that_fails_on_the_base_is_not_every_finding_new(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check raising on the base revision is a bug: it reaches the one error path (cli:
    one line, exit 3), never a silent "every finding is new"."""
    import argparse

    from dbt_bulwark import runner
    from dbt_bulwark.findings import Finding

    root = _repo(tmp_path, {"dbt_project.yml": PROJECT, "models/a.sql": "select 1 as id\n"})
    (root / "models/a.sql").write_text("select 2 as id\n")
    monkeypatch.delenv("PRE_COMMIT", raising=False)

    def check(ctx: runner.HookContext, project: Any, policy: Any,
              targets: set[str] | None) -> list[Finding]:
        if ctx.state.get("regression_is_base"):
            raise RuntimeError("bug on the base")
        return [Finding("models/a.sql", 1, 1, "BLK104", "w", "warning")]

    args = argparse.Namespace(files=["models/a.sql"], all_files=False, repo_root=str(root),
                              project_dir=None, vars=None, no_cache=True, format="text",
                              base="HEAD")
    ctx = runner.open_context(args)
    try:
        with pytest.raises(RuntimeError, match="bug on the base"):
            runner.collect(ctx, check)
    finally:
        runner.close(ctx)


def test_an_odd_node_is_reported_with_its_traceback_in_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Per-node isolation (fast-compile BLK199) keeps the hook going and says where the
    traceback went: the same log as the one error path."""
    import json

    from dbt_bulwark import cli
    from dbt_bulwark.checks import fast_compile

    root = _repo(tmp_path, {"dbt_project.yml": PROJECT, "models/a.sql": "select 1 as id\n"})
    monkeypatch.chdir(root)
    monkeypatch.delenv("PRE_COMMIT", raising=False)

    def explode(self: object, node: object) -> None:
        raise RuntimeError("odd node")

    monkeypatch.setattr(fast_compile.FastCompile, "check_node", explode)
    cli.main(["fast-compile", "--repo-root", str(root), "--no-cache", "--all-files",
              "--no-base", "--format", "json"])
    found = json.loads(capsys.readouterr().out)
    found = found["findings"] if isinstance(found, dict) else found
    odd = [f for f in found if f["code"] == "BLK199"]
    log = root / ".bulwark-cache" / "bulwark.log"
    assert odd and str(log) in odd[0]["message"], found
    text = log.read_text()
    assert "fast-compile: model.shop.a" in text and "RuntimeError: odd node" in text


def test_one_atomic_write_and_the_umask_is_never_changed() -> None:
    sources = _sources()
    assert sorted(n for n, t in sources.items() if "os.replace(" in t) == ["project/fs.py"]
    assert not [n for n, t in sources.items() if "umask(" in t]


@pytest.mark.parametrize(("warned", "expected"), [("a", 1), ("b", 0)])
def test_baseline_judges_each_project_by_its_own_fail_on(
        tmp_path: Path, warned: str, expected: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from dbt_bulwark import cli
    from dbt_bulwark.findings import Finding
    from dbt_bulwark.run import baseline, dbt_exec

    root = _repo(tmp_path, MONOREPO)
    monkeypatch.chdir(root)

    class Session:   # no dbt: the command's verdict is what is tested
        def __init__(self, project: object, *args: object, **kwargs: object) -> None:
            self.project = project
            self.engine = type("E", (), {"description": "stub"})()

        def __enter__(self) -> Session:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

    def check(session: Session, policy: object, selector: object) -> baseline.BaselineRun:
        root_of = session.project.root  # type: ignore[attr-defined]
        found = [Finding(f"{root_of}/models/x.sql", 1, 1, "BLK531", "w", "warning")] \
            if root_of in warned else []
        return baseline.BaselineRun("passed", "ok", found)

    monkeypatch.setattr(dbt_exec, "DbtSession", Session)
    monkeypatch.setattr(baseline, "check_baselines", check)
    rc = cli.main(["baseline", "check", "--repo-root", str(root), "--no-cache"])
    capsys.readouterr()
    assert rc == expected
