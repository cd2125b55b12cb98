"""Large cold runs on every core: a list cut into contiguous chunks that this process
and forked children take one after another until none is left, each child's cache entries
coming back to this process.

A child inherits everything loaded so far (the project, the macros, the compiled
templates) for free, takes chunks as it finishes them (so a core that drew costly items
does fewer, and no core waits for another), and sends back its results and every entry it
put in the given caches (:attr:`~dbt_bulwark.cache.ParseCache.journal`), so the parent's
caches end as if it had done the whole list itself and save them once. Where ``fork`` is
unavailable, on one core, or for a short list, the work is done here; the chunks of a
child that dies are done here too.

:func:`map_graph` is the same for items that depend on one another (models on their
upstream): this process hands each forked child the next ready item, the most costly
chain first, with the cache entries the other children made since, so an item's work
finds its parents' results and nothing is done twice.

:func:`in_child` starts one piece of work in a forked child while this process goes on
(``bulwark check``'s schema-diff of a change beside the other static layers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 4
# the smallest chunk is 1/(SMALLEST_CHUNK * cores) of the whole: the last chunks are that
# short, so no process is left long alone at the end; the first ones are long runs of
# neighbouring items (the models of a folder share their upstream)
SMALLEST_CHUNK = 64
MAX_BATCH = 16   # the most ready items map_graph sends a child at once
_INDEX = 4   # bytes of one chunk number in the queue pipe


def map_shares(items: Sequence[T], work: Callable[[Sequence[T]], R], caches: Sequence[Any],
               min_items: int, cost: Callable[[T], float] | None = None) -> list[R]:
    """``work`` over contiguous chunks of ``items`` (:func:`_chunks`: shrinking, by
    ``cost`` or by number of items), taken in turn by this process and one forked child
    per other core (at most :data:`MAX_WORKERS`); the results in chunk order. One call
    (``[work(items)]``) when ``items`` has fewer than ``min_items`` or no fork is
    possible."""
    workers = worker_count()
    if len(items) < min_items or workers < 2:
        return [work(items)]
    import multiprocessing  # (a warm run with little to do never imports it)

    if "fork" not in multiprocessing.get_all_start_methods():
        return [work(items)]
    stores = [c for c in caches if c is not None]
    mp = multiprocessing.get_context("fork")
    chunks = _chunks(items, workers, cost)
    # the queue: a pipe holding every chunk number; a read of one number is atomic, so
    # the processes share it without a lock (a child that dies holds nothing)
    queue, fill = os.pipe()
    os.write(fill, b"".join(i.to_bytes(_INDEX, "little") for i in range(len(chunks))))
    os.close(fill)

    def take_chunks() -> list[tuple[int, R]]:
        done: list[tuple[int, R]] = []
        while len(number := os.read(queue, _INDEX)) == _INDEX:
            i = int.from_bytes(number, "little")
            done.append((i, work(chunks[i])))
        return done

    jobs = []
    try:
        for _ in range(workers - 1):
            reader, writer = mp.Pipe(duplex=False)
            proc = mp.Process(target=_child, args=(take_chunks, stores, writer), daemon=True)
            proc.start()
            writer.close()
            jobs.append((proc, reader))
        results = dict(take_chunks())
    finally:
        os.close(queue)
    import pickle

    for proc, reader in jobs:
        try:
            done, journals = pickle.loads(reader.recv_bytes())
        except (EOFError, OSError, pickle.PickleError):
            proc.join()
            continue          # the child died: its chunks are done below
        proc.join()
        results.update(done)
        for store, journal in zip(stores, journals, strict=True):
            for key, value in journal:
                store.put(key, value)
    return [results[i] if i in results else work(chunk) for i, chunk in enumerate(chunks)]


def map_graph(items: Sequence[T], parents: Sequence[Sequence[int]],
              work: Callable[[Sequence[T]], R], caches: Sequence[Any], min_items: int,
              cost: Callable[[T], float]) -> list[R] | None:
    """``work([item])`` for each item of an acyclic graph (``parents[i]``: the indexes of
    the items ``items[i]`` needs done first), on every core. One forked child per core
    takes ready items from this process (a few at once while many are ready), with the
    cache entries the other children put since, and sends back the results and its own
    entries (into the given caches, as pickles: unpickled only where asked for). Ready
    items go out by the cost of the longest chain they start (by ``cost``), the longest
    first. The results in item order; None (nothing done) when there are fewer than
    ``min_items``, no fork, one core or a cycle: the caller does the work itself then."""
    workers = worker_count()
    n = len(items)
    if n < min_items or workers < 2:
        return None
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    children: list[list[int]] = [[] for _ in range(n)]
    waiting = [0] * n
    for i, ps in enumerate(parents):
        for p in set(ps):
            children[p].append(i)
            waiting[i] += 1
    order = [i for i in range(n) if not waiting[i]]   # topological (Kahn)
    left = list(waiting)
    for i in order:
        for c in children[i]:
            left[c] -= 1
            if not left[c]:
                order.append(c)
    if len(order) < n:
        return None                                      # a cycle
    chain = [0.0] * n
    for i in reversed(order):
        chain[i] = float(cost(items[i])) + max((chain[c] for c in children[i]), default=0.0)
    import heapq
    import pickle
    from multiprocessing.connection import wait

    stores = [c for c in caches if c is not None]
    ready = [(-chain[i], i) for i in range(n) if not waiting[i]]
    heapq.heapify(ready)
    log: list[tuple[int, int, Any, bytes]] = []     # (child, store, key, pickled value)
    seen: dict[Any, int] = {}                          # child connection -> log read
    busy: dict[Any, list[int]] = {}                    # child connection -> its items
    results: dict[int, R] = {}
    mp = multiprocessing.get_context("fork")
    conns = []
    for _ in range(workers):
        ours, theirs = mp.Pipe(duplex=True)
        proc = mp.Process(target=_graph_child, args=(items, work, stores, theirs),
                          daemon=True)
        proc.start()
        theirs.close()
        conns.append((ours, proc))
        seen[ours] = 0
    alive = {c for c, _p in conns}
    finished = False

    def send(conn: Any) -> None:
        # several ready items at once while many are ready (a warm run: a message each
        # would cost more than the items), one at a time towards the end
        take = max(1, min(MAX_BATCH, len(ready) // (4 * workers)))
        batch = [heapq.heappop(ready)[1] for _ in range(take)]
        me = id(conn)
        news: list[list[tuple[Any, bytes]]] = [[] for _ in stores]
        for who, s, key, value in log[seen[conn]:]:
            if who != me:
                news[s].append((key, value))
        seen[conn] = len(log)
        try:
            conn.send_bytes(pickle.dumps((batch, news), pickle.HIGHEST_PROTOCOL))
        except OSError:
            for i in batch:
                heapq.heappush(ready, (-chain[i], i))
            alive.discard(conn)
            return
        busy[conn] = batch

    try:
        for conn in list(alive):
            if ready:
                send(conn)
        while len(results) < n and busy:
            for answered in wait(list(busy)):
                conn = cast(Any, answered)
                batch = busy.pop(conn)
                try:
                    done, journals = pickle.loads(conn.recv_bytes())
                except (EOFError, OSError, pickle.PickleError):
                    alive.discard(conn)           # a child died: its items go back
                    for i in batch:
                        heapq.heappush(ready, (-chain[i], i))
                    continue
                results.update(done)
                for s, journal in enumerate(journals):
                    for key, blob in journal:
                        stores[s].put_pickled(key, blob)
                        log.append((id(conn), s, key, blob))
                for i in batch:
                    for c in children[i]:
                        waiting[c] -= 1
                        if not waiting[c]:
                            heapq.heappush(ready, (-chain[c], c))
            for conn in [c for c in alive if c not in busy]:
                if ready:
                    send(conn)
        finished = True
    finally:
        for conn, proc in conns:
            with _suppressed():
                conn.send_bytes(pickle.dumps(None))
            conn.close()
            if not finished:
                proc.kill()       # (interrupted: a child may be mid-item)
            proc.join(timeout=5)
    for i in order:                                     # what dead children left
        if i not in results:
            results[i] = work([items[i]])
    return [results[i] for i in range(n)]


def _graph_child(items: Sequence[Any], work: Callable[[Sequence[Any]], Any],
                 stores: list[Any], conn: Any) -> None:
    import pickle

    try:
        for store in stores:
            store.journal = []
        while True:
            message = pickle.loads(conn.recv_bytes())
            if message is None:
                break
            batch, news = message
            for store, entries in zip(stores, news, strict=True):
                for key, blob in entries:
                    store.put_pickled(key, blob)
            done = [(i, work([items[i]])) for i in batch]
            # each entry pickled once, here: the parent keeps and forwards the pickle, a
            # process unpickles only what it asks for
            journals = [[(key, pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
                         for key, value in store.journal] for store in stores]
            for store in stores:
                store.journal = []
            conn.send_bytes(pickle.dumps((done, journals), pickle.HIGHEST_PROTOCOL))
    except BaseException:  # noqa: BLE001 - the parent hands this child's items on
        pass
    finally:
        conn.close()
        os._exit(0)   # no atexit handlers, no cache save: the parent owns the caches


def in_child(work: Callable[[], R], caches: Sequence[Any]) -> Callable[[], R | None] | None:
    """``work()`` started in a forked child while this process goes on (the child inherits
    everything loaded so far). Returns a function that waits for the child, puts every
    entry it made into ``caches`` and returns its result, or None when the child died
    (the caller then does the work itself). None, and nothing started, on one core or
    where ``fork`` is unavailable."""
    if worker_count() < 2:
        return None
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    stores = [c for c in caches if c is not None]
    reader, writer = multiprocessing.get_context("fork").Pipe(duplex=False)
    proc = multiprocessing.get_context("fork").Process(
        target=_child, args=(work, stores, writer), daemon=True)
    proc.start()
    writer.close()

    def result() -> R | None:
        import pickle

        try:
            done, journals = pickle.loads(reader.recv_bytes())
        except Exception:  # noqa: BLE001 - died, or sent what cannot be read: redo it here
            return None
        finally:
            reader.close()
            proc.join()
        for store, journal in zip(stores, journals, strict=True):
            for key, value in journal:
                store.put(key, value)
        return cast(R, done)

    return result


def _suppressed() -> Any:
    import contextlib

    return contextlib.suppress(OSError, ValueError)


def worker_count() -> int:
    """How many processes :func:`map_shares` runs: one per core, at most :data:`MAX_WORKERS`."""
    return min(os.cpu_count() or 1, MAX_WORKERS)


def _chunks(items: Sequence[T], workers: int, cost: Callable[[T], float] | None
            ) -> list[Sequence[T]]:
    """``items`` cut into contiguous chunks of shrinking size, by ``cost`` (else one per
    item): each holds about 1/(2·workers) of what is left, and none less than
    1/(:data:`SMALLEST_CHUNK`·workers) of the whole, nor nothing. The first ones are long
    runs of neighbouring items; the last ones are short, so that when the queue runs dry
    every process is about done, however badly ``cost`` guessed (guided self-scheduling)."""
    weights = [max(float(cost(item)), 0.0) for item in items] if cost is not None else []
    left = sum(weights)
    if not left:              # no cost, or none known: by number of items
        weights, left = [1.0] * len(items), float(len(items))
    smallest = left / (SMALLEST_CHUNK * workers)
    chunks: list[Sequence[T]] = []
    start = 0
    while start < len(items):
        target = max(left / (2 * workers), smallest)
        end, acc = start + 1, weights[start]
        # take the next item while its middle stays within the target
        while end < len(items) and acc + weights[end] / 2 <= target:
            acc += weights[end]
            end += 1
        chunks.append(items[start:end])
        left -= acc
        start = end
    return chunks


def _child(take_chunks: Callable[[], Any], stores: list[Any], conn: Any) -> None:
    import pickle

    try:
        for store in stores:
            store.journal = []
        done = take_chunks()
        journals = [store.journal for store in stores]
        conn.send_bytes(pickle.dumps((done, journals), pickle.HIGHEST_PROTOCOL))
    except BaseException:  # noqa: BLE001 - the parent redoes this child's chunks
        pass
    finally:
        conn.close()
        os._exit(0)   # no atexit handlers, no cache save: the parent owns the caches
