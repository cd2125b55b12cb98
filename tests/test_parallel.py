"""Cold runs on every core (dbt_bulwark.parallel): the same project, the same findings, and
the children's cache entries back in the parent."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_regression import _write as write_files

from dbt_bulwark import parallel
from dbt_bulwark.cache import ParseCache
from dbt_bulwark.project import loader
from dbt_bulwark.project.fs import WorkTree
from dbt_bulwark.project.loader import load_project

fork_only = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@fork_only
def test_shares_run_in_children_and_their_cache_entries_come_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 3)
    cache = ParseCache(None)
    pids: list[int] = []

    def work(items: Sequence[int]) -> list[tuple[int, int]]:
        for i in items:
            cache.put(("square", i), i * i)
            time.sleep(0.02)
        pids.append(os.getpid())   # the parent's list only sees the parent's chunks
        return [(i, os.getpid()) for i in items]

    results = parallel.map_shares(list(range(9)), work, [cache], min_items=2)
    assert [i for chunk in results for i, _pid in chunk] == list(range(9))
    assert set(pids) == {os.getpid()}
    assert {pid for chunk in results for _i, pid in chunk} - {os.getpid()}, \
        "other chunks ran in children"
    assert all(cache.get(("square", i)) == i * i for i in range(9))


def test_a_short_list_is_done_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert parallel.map_shares([1, 2], lambda xs: [os.getpid()] * len(xs), [], 3) == \
        [[os.getpid()] * 2]


@fork_only
def test_a_dead_child_share_is_redone_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    parent = os.getpid()

    def work(items: Sequence[int]) -> list[int]:
        if os.getpid() != parent:
            os._exit(1)   # a child that dies without an answer
        return list(items)

    assert parallel.map_shares([1, 2, 3, 4], work, [], 2) == [[1], [2], [3], [4]]


@fork_only
def test_work_beside_runs_in_a_child_and_its_cache_entries_come_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    cache = ParseCache(None)

    def work() -> int:
        time.sleep(0.05)
        cache.put(("made by",), os.getpid())
        return os.getpid()

    waiter = parallel.in_child(work, [cache])
    assert waiter is not None
    assert cache.get(("made by",)) is None   # this process went on meanwhile
    child = waiter()
    assert child is not None and child != os.getpid()
    assert cache.get(("made by",)) == child


@fork_only
def test_a_dead_child_beside_gives_none_and_one_core_starts_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    waiter = parallel.in_child(lambda: os._exit(1), [])
    assert waiter is not None and waiter() is None
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert parallel.in_child(lambda: 1, []) is None


@fork_only
def test_a_graph_is_done_in_children_each_item_after_its_parents_with_their_entries(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """map_graph: every item in a child, once its parents are done and with the cache
    entries they put (made in another child or not), each item once; the results in
    item order and every entry back here."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    cache = ParseCache(None)
    # 0, 1 -> 2 -> 4; 3 -> 4; 5 alone; 2, 5 -> 6
    parents = [[], [], [0, 1], [], [2, 3], [], [2, 5]]

    def work(items: Sequence[int]) -> tuple[int, int, list[int]]:
        (i,) = items
        seen = [p for p in parents[i] if cache.get(("done", p)) == p]
        time.sleep(0.02)
        cache.put(("done", i), i)
        return i, os.getpid(), seen

    results = parallel.map_graph(list(range(7)), parents, work, [cache], 2,
                                 cost=lambda i: 1.0)
    assert results is not None
    assert [r[0] for r in results] == list(range(7))
    assert all(r[2] == parents[r[0]] for r in results), "a parent's entry was missing"
    assert os.getpid() not in {r[1] for r in results}
    assert len({r[1] for r in results}) == 2, "both children took items"
    assert all(cache.get(("done", i)) == i for i in range(7))


@fork_only
def test_a_graph_item_of_a_dead_child_is_done_by_another_or_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    parent = os.getpid()

    def work(items: Sequence[int]) -> int:
        if os.getpid() != parent:
            os._exit(1)   # every child dies without an answer
        return items[0] * 10

    assert parallel.map_graph([1, 2, 3], [[], [0], [1]], work, [], 2,
                              cost=lambda i: 1.0) == [10, 20, 30]


def test_a_graph_with_a_cycle_or_few_items_is_left_to_the_caller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert parallel.map_graph([1, 2], [[1], [0]], lambda xs: xs, [], 2,
                              cost=lambda i: 1.0) is None
    assert parallel.map_graph([1], [[]], lambda xs: xs, [], 2, cost=lambda i: 1.0) is None


@fork_only
def test_a_core_that_drew_costly_chunks_does_fewer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks are taken in turn as each process finishes one: the parent, slowed down,
    does fewer of them than a static half, and the results stay in chunk order."""
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    parent = os.getpid()

    def work(items: Sequence[int]) -> list[tuple[int, bool]]:
        time.sleep(0.2 if os.getpid() == parent else 0.01)
        return [(i, os.getpid() == parent) for i in items]

    results = parallel.map_shares(list(range(8)), work, [], 2)
    assert [i for chunk in results for i, _here in chunk] == list(range(8))
    assert sum(here for chunk in results for _i, here in chunk) < 4


def test_chunks_are_contiguous_and_shrink_to_a_floor() -> None:
    """Each chunk holds about 1/(2 x cores) of the cost left, never less than the floor
    (1/(SMALLEST_CHUNK x cores) of the whole) nor nothing: long runs first, short ones
    last; a costly item is a chunk of its own."""
    chunks = parallel._chunks
    items = list(range(613))
    sizes = [len(c) for c in chunks(items, 2, None)]
    assert [i for c in chunks(items, 2, None) for i in c] == items
    assert sizes[:4] == [153, 115, 86, 65]
    floor = 613 / (parallel.SMALLEST_CHUNK * 2)
    assert all(s >= int(floor) for s in sizes[:-1]) and sizes == sorted(sizes, reverse=True)
    assert [list(c) for c in chunks([1, 1, 1], 4, lambda i: 1)] == [[1], [1], [1]]
    costly = [list(c) for c in chunks([1, 1, 100, 1, 1], 2, lambda i: i)]
    assert [100] in costly and [i for c in costly for i in c] == [1, 1, 100, 1, 1]
    for workers in (2, 3, 4):
        assert [i for c in chunks(items, workers, lambda i: (i * 7) % 5) for i in c] == items


# ------------------------------------------------------------------ the loader's prerender

MACROS = "{% macro shout(x) %}{% set y = x | upper %}{{ y }}{% endmacro %}\n"


def _project(root: Path, n: int) -> Path:
    files = {
        "dbt_project.yml": "name: wide\nversion: '1.0'\nprofile: p\n",
        "macros/shout.sql": MACROS,
        "models/base.sql": "select 1 as id\n",
        "models/src.yml": "version: 2\nsources:\n  - name: raw\n    tables:\n      - name: t\n",
    }
    for i in range(n):
        # a loop and a macro with a statement: dbt-extractor cannot read these, so they
        # are rendered (what the prerender does on every core)
        files[f"models/m{i:03}.sql"] = (
            "{{ config(tags=['t" + str(i % 3) + "']) }}\n"
            "{% for c in ['a', 'b'] %}select '{{ shout(c) }}' as {{ c }}, " + str(i) + " as n from "
            + ("{{ ref('base') }}" if i % 2 else "{{ source('raw', 't') }}")
            + "{% if not loop.last %} union all {% endif %}{% endfor %}\n")
    files["models/static.sql"] = "select * from {{ ref('m000') }}\n"
    write_files(root, files)
    return root


def _signature(root: Path, cache: ParseCache | None) -> Any:
    project = load_project(WorkTree(root), "", {}, cache)
    return ({uid: (n.refs, sorted(n.sources), n.calls, n.jinja_error, n.config, n.tags)
             for uid, n in project.nodes.items()}, sorted(repr(f) for f in project.findings))


@fork_only
def test_prerender_on_every_core_loads_the_same_project(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path / "p", loader.PRERENDER_MIN + 6)
    serial = _signature(root, None)          # no cache: no prerender
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    shares: list[int] = []
    real = parallel.map_shares

    def spy(items: Sequence[Any], work: Any, caches: Sequence[Any], min_items: int,
            **kw: Any) -> Any:
        shares.append(len(items))
        return real(items, work, caches, min_items, **kw)

    monkeypatch.setattr(parallel, "map_shares", spy)
    cache = ParseCache(None)
    assert _signature(root, cache) == serial
    assert shares == [loader.PRERENDER_MIN + 6], "every rendered model went to the prerender"
    renders = [k for k in cache._data if k[0] == "render"]
    assert len(renders) == loader.PRERENDER_MIN + 6, "the children's renders came back"


@fork_only
def test_dbt_extractor_is_never_called_in_a_forked_child(tmp_path: Path) -> None:
    """Its thread pool is not in a forked child: a call there could wait forever."""
    assert loader.extract_static("select * from {{ ref('a') }}", None) is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:   # pragma: no cover - the child
        out = loader.extract_static("select * from {{ ref('b') }}", None)
        os.write(write, b"none" if out is None else b"static")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 16)
    os.waitpid(pid, 0)
    assert answer == b"none"
    assert loader.extract_static("select * from {{ ref('c') }}", None) is not None


@fork_only
def test_if_blocks_are_compiled_in_the_shares_and_read_as_the_render_takes_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold load reads a model whose only statements are if blocks by the branch the
    render takes; its template is compiled in a share (dbt-extractor, which reads the
    branch, cannot run there), and one that does not compile is rendered, as serially."""
    files = {"dbt_project.yml": "name: br\nversion: '1.0'\nprofile: p\n",
             "models/base.sql": "select 1 as id\n"}
    for i in range(loader.PRERENDER_MIN + 4):
        files[f"models/m{i:03}.sql"] = (
            "{% if target.type == 'duckdb' %}{{ config(tags=['d']) }}select " + str(i)
            + " as n from {{ ref('base') }}\n{% else %}select 1 from {{ ref('m000') }}"
            "{% endif %}\n")
    files["models/broken.sql"] = ("{% if target.type == 'duckdb' %}select 1\n"
                                  "{% else %}{{ ref('base' }}{% endif %}\n")
    root = tmp_path / "br"
    write_files(root, files)
    serial = _signature(root, None)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    compiled: list[str] = []
    real = loader._compiles
    monkeypatch.setattr(loader, "_compiles", lambda t: compiled.append(t) or real(t))
    cache = ParseCache(None)
    assert _signature(root, cache) == serial
    nodes = serial[0]
    assert nodes["model.br.m001"][0][0].name == "base" and nodes["model.br.m001"][5] == ["d"]
    assert nodes["model.br.broken"][3] is not None          # the render's error
    # this process compiled its own share (and the broken one again, before rendering it)
    assert 0 < len(compiled) < loader.PRERENDER_MIN, "the other share was compiled there"
    renders = {k for k in cache._data if k[0] == "render"}
    assert len(renders) == loader.PRERENDER_MIN + 5


@fork_only
def test_inert_calls_are_probed_in_the_shares_and_read_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cold load probes the calls of a model whose only other Jinja is ref/config in the
    chunks (a child probes its own); what they leave is read by dbt-extractor in this
    process (it cannot run in a forked child) and cached, as a serial load reads it."""
    files = {"dbt_project.yml": "name: pr\nversion: '1.0'\nprofile: p\n",
             "macros/shout.sql": MACROS,
             "models/base.sql": "select 1 as id\n"}
    for i in range(loader.PRERENDER_MIN + 4):
        files[f"models/m{i:03}.sql"] = (
            "{{ config(tags=['t" + str(i % 2) + "']) }}\nselect '{{ shout('a" + str(i)
            + "') }}' as x from {{ ref('base') }}\n")
    root = tmp_path / "pr"
    write_files(root, files)
    serial = _signature(root, None)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    parent = os.getpid()
    probed_here: list[str] = []
    real_probe = loader._ProjectBuilder._probe

    def probe(self: Any, pkg: Any, template: str) -> Any:
        if os.getpid() == parent:
            probed_here.append(template)
            time.sleep(0.01)    # (the child takes chunks meanwhile)
        return real_probe(self, pkg, template)

    monkeypatch.setattr(loader._ProjectBuilder, "_probe", probe)
    cache = ParseCache(None)
    assert _signature(root, cache) == serial
    assert serial[0]["model.pr.m001"][0][0].name == "base"
    assert serial[0]["model.pr.m001"][5] == ["t1"]
    assert 0 < len(probed_here) < loader.PRERENDER_MIN + 4, "a child probed the rest"
    renders = [k for k in cache._data if k[0] == "render"]
    assert len(renders) == loader.PRERENDER_MIN + 4, "every reading was cached here"


# a fresh interpreter: dbt-extractor has not run in it, so forked children may run it
_FRESH_LOAD = r"""
import json, os, sys, time
from dbt_bulwark import parallel
from dbt_bulwark.cache import ParseCache
from dbt_bulwark.project import loader
from dbt_bulwark.project.fs import WorkTree
from dbt_bulwark.project.loader import load_project

os.cpu_count = lambda: 2
root, cache_dir, calls_log = sys.argv[1:4]
parent = os.getpid()

def logged(name, real):
    def call(*args, **kw):
        with open(calls_log, "a") as fh:
            fh.write(f"{name} {'parent' if os.getpid() == parent else 'child'}\n")
        return real(*args, **kw)
    return call

loader.extract_static = logged("extract", loader.extract_static)
loader._Loader.parse_yaml = logged("yaml", loader._Loader.parse_yaml)
shares = []
real_map = parallel.map_shares
def spy(items, work, caches, min_items, **kw):
    shares.append(len(items))
    def slow_here(chunk):
        if os.getpid() == parent and len(shares) == 1:
            time.sleep(2)   # the child takes the other chunks meanwhile (the YAML is last)
        return work(chunk)
    return real_map(items, slow_here, caches, min_items, **kw)
parallel.map_shares = spy
cache = ParseCache(cache_dir)
project = load_project(WorkTree(root), "", {}, cache)
kinds = sorted({k[0] for k in cache._data})
cache.save()
print(json.dumps({
    "fresh_after": loader.extractor_fresh(), "shares": shares, "kinds": kinds,
    "nodes": {uid: repr((n.refs, sorted(n.sources), n.calls, n.jinja_error, n.config, n.tags))
              for uid, n in project.nodes.items()},
    "findings": sorted(repr(f) for f in project.findings)}))
"""


@fork_only
def test_a_fresh_process_reads_whole_files_and_yaml_in_the_children(tmp_path: Path) -> None:
    """In a process that has not run dbt-extractor, the forked children run it too: each
    chunk reads its templates whole (static, if blocks and inert calls, render) and parses
    the properties files; the project is the one a serial load reads, the parse cache
    holds every reading, and a second fresh load over that cache forks nothing."""
    import json
    import subprocess
    import sys

    root = _project(tmp_path / "p", loader.PRERENDER_MIN + 6)
    write_files(root, {
        "models/static_more.sql": "select * from {{ ref('static') }}\n",
        "models/props.yml": "version: 2\nmodels:\n  - name: static\n    description: d\n",
        "models/broken.yml": "version: 2\nmodels: [\n",
    })
    serial = _signature(root, None)
    log = tmp_path / "calls.log"

    def fresh_load() -> Any:
        done = subprocess.run(
            [sys.executable, "-c", _FRESH_LOAD, str(root), str(tmp_path / "cache"), str(log)],
            capture_output=True, text=True, timeout=120, check=True)
        return json.loads(done.stdout)

    first = fresh_load()
    expected = {uid: repr(sig) for uid, sig in serial[0].items()}
    assert first["nodes"] == expected
    assert first["findings"] == serial[1]
    assert any("BLK001" in f and "broken.yml" in f for f in first["findings"])
    assert first["shares"] and first["shares"][0] > loader.PRERENDER_MIN + 6, \
        "the templates and the properties files went to the chunks"
    assert {"extract", "render", "yaml"} <= set(first["kinds"])
    calls = log.read_text().split("\n")
    assert "extract child" in calls and "yaml child" in calls, "a child read files too"
    log.write_text("")
    second = fresh_load()
    assert second["nodes"] == expected and second["findings"] == serial[1]
    assert second["shares"] == [], "a warm cache: nothing to fork for"
