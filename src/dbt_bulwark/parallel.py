"""Large cold runs on every core: contiguous shares of a list, the first done here, each
other one in a forked child whose cache entries come back to this process.

A child inherits everything loaded so far (the project, the macros, the compiled
templates) for free, does its share, and sends back its result and every entry it put in
the given caches (:attr:`~dbt_bulwark.cache.ParseCache.journal`), so the parent's caches
end as if it had done the whole list itself and save them once. Where ``fork`` is
unavailable, on one core, for a short list, or when a child dies, the work is done here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 4


def map_shares(items: Sequence[T], work: Callable[[Sequence[T]], R], caches: Sequence[Any],
               min_items: int, cost: Callable[[T], float] | None = None) -> list[R]:
    """``work`` over contiguous shares of ``items``, one share per core (at most
    :data:`MAX_WORKERS`), of equal length or (``cost``) of about equal cost; the results in
    share order. One share (``[work(items)]``) when ``items`` has fewer than ``min_items``
    or no fork is possible."""
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if len(items) < min_items or workers < 2:
        return [work(items)]
    import multiprocessing  # (a warm run with little to do never imports it)

    if "fork" not in multiprocessing.get_all_start_methods():
        return [work(items)]
    stores = [c for c in caches if c is not None]
    mp = multiprocessing.get_context("fork")
    shares = _split(items, workers, cost)
    jobs = []
    for share in shares[1:]:
        reader, writer = mp.Pipe(duplex=False)
        proc = mp.Process(target=_child, args=(work, share, stores, writer), daemon=True)
        proc.start()
        writer.close()
        jobs.append((proc, reader, share))
    results = [work(shares[0])]
    import pickle

    for proc, reader, share in jobs:
        try:
            result, journals = pickle.loads(reader.recv_bytes())
        except (EOFError, OSError, pickle.PickleError):
            proc.join()
            results.append(work(share))   # the child died: do its share here
            continue
        proc.join()
        results.append(result)
        for store, journal in zip(stores, journals, strict=True):
            for key, value in journal:
                store.put(key, value)
    return results


def _split(items: Sequence[T], workers: int, cost: Callable[[T], float] | None
           ) -> list[Sequence[T]]:
    """``items`` cut into ``workers`` contiguous shares of equal length, or of about equal
    total ``cost`` (none empty)."""
    if cost is None:
        size = -(-len(items) // workers)
        return [items[i:i + size] for i in range(0, len(items), size)]
    weights = [max(float(cost(item)), 0.0) for item in items]
    n = min(workers, len(items))
    total = sum(weights)
    shares: list[Sequence[T]] = []
    start, acc = 0, 0.0
    for i, w in enumerate(weights):
        # cut before item i when its middle lies past the next share's end
        k = len(shares) + 1
        if k < n and i > start and acc + w / 2 >= total * k / n and len(items) - i >= n - k:
            shares.append(items[start:i])
            start = i
        acc += w
    shares.append(items[start:])
    return [share for share in shares if share]


def _child(work: Callable[[Sequence[T]], Any], share: Sequence[T], stores: list[Any],
           conn: Any) -> None:
    import pickle

    try:
        for store in stores:
            store.journal = []
        result = work(share)
        journals = [store.journal for store in stores]
        conn.send_bytes(pickle.dumps((result, journals), pickle.HIGHEST_PROTOCOL))
    except BaseException:  # noqa: BLE001 - the parent redoes this share
        pass
    finally:
        conn.close()
        os._exit(0)   # no atexit handlers, no cache save: the parent owns the caches
