"""Issue 15, "one way to do each thing": one content hash, one git runner, one Markdown
cell escaper, one label of a versioned model; typed policy; the schema-diff hook through
the runner (each project judged by its own policy)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

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


def test_one_way_to_run_git(tmp_path: Path) -> None:
    from dbt_bulwark import gitfs
    from dbt_bulwark.workspace import find_repo_root

    users = sorted(name for name, text in _sources().items()
                   if re.search(r"""\[\s*["']git["']""", text))
    assert users == ["gitfs.py"]
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
    from dbt_bulwark.project import Node, versioned_name

    assert versioned_name("orders", None) == "orders"
    assert versioned_name("orders", 2) == "orders.v2"
    node = Node(unique_id="model.p.orders.v2", resource_type="model", package_name="p",
                name="orders", path="orders_v2.sql", original_file_path="models/orders_v2.sql",
                repo_path="models/orders_v2.sql", fqn=["p", "orders", "v2"], version=2)
    assert node.label == "orders.v2"
    for name, text in _sources().items():
        assert not re.search(r'f"[^"]*\{[\w.]*name\} v\{', text), name
        assert not re.search(r'f" v\{[\w.]*version\}"', text), name
