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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 4
# the smallest chunk is 1/(SMALLEST_CHUNK * cores) of the whole: the last chunks are that
# short, so no process is left long alone at the end; the first ones are long runs of
# neighbouring items (the models of a folder share their upstream)
SMALLEST_CHUNK = 64
_INDEX = 4   # bytes of one chunk number in the queue pipe


def map_shares(items: Sequence[T], work: Callable[[Sequence[T]], R], caches: Sequence[Any],
               min_items: int, cost: Callable[[T], float] | None = None) -> list[R]:
    """``work`` over contiguous chunks of ``items`` (:func:`_chunks`: shrinking, by
    ``cost`` or by number of items), taken in turn by this process and one forked child
    per other core (at most :data:`MAX_WORKERS`); the results in chunk order. One call
    (``[work(items)]``) when ``items`` has fewer than ``min_items`` or no fork is
    possible."""
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
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
