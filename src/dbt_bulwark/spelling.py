"""Near-miss names: bounded edit distance and "did you mean" for refs, macros, keys and
codes."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

_CLOSEST: dict[tuple[str, str, frozenset[str]], str | None] = {}
# one object per set of candidates, with its content hash (the persistent cache's key)
_POOLS: dict[frozenset[str], tuple[frozenset[str], str]] = {}


def closest(name: str, candidates: Iterable[str], cache: Any = None) -> str | None:
    """The candidate most like ``name`` (case-insensitive, difflib ratio >= 0.6), or None.

    Remembered for the run (bounded): a commit asks the same of the head and of its git
    base; with ``cache`` (a :class:`~dbt_bulwark.cache.ParseCache`) across runs too: a
    few thousand candidates cost milliseconds a name, and a project's existing findings
    ask again on every commit."""
    def find(low: str, pool: frozenset[str]) -> str | None:
        by_low = {c.lower(): c for c in sorted(pool)}
        match = difflib.get_close_matches(low, list(by_low), n=1, cutoff=0.6)
        return by_low[match[0]] if match else None

    return _remembered("closest", name, candidates, cache, find)


def _remembered(kind: str, name: str, candidates: Iterable[str], cache: Any,
                find: Callable[[str, frozenset[str]], str | None]) -> str | None:
    """``find(name.lower(), candidates)``, remembered for the run and, with ``cache``,
    across runs (by the candidates' content hash)."""
    pool = frozenset(c for c in candidates if c)
    key = (kind, name.lower(), pool)
    if key in _CLOSEST:
        return _CLOSEST[key]
    if len(_CLOSEST) >= 4096 or len(_POOLS) >= 64:
        _CLOSEST.clear()
        _POOLS.clear()
    known = _POOLS.get(pool)
    if known is None:
        from dbt_bulwark.cache import content_hash

        known = _POOLS[pool] = (pool, content_hash("\n".join(sorted(pool))))
    pool, digest = known
    stored_key = (kind, key[1], digest)
    stored = cache.get(stored_key) if cache is not None else None
    if isinstance(stored, tuple) and len(stored) == 1 and (stored[0] is None or stored[0] in pool):
        found: str | None = stored[0]
    else:
        found = find(key[1], pool)
        if cache is not None:
            cache.put(stored_key, (found,))
    _CLOSEST[(kind, key[1], pool)] = found   # the pool kept once (not this call's copy)
    return found


def did_you_mean(name: str, candidates: Iterable[str], cache: Any = None) -> str:
    match = closest(name, candidates, cache)
    return f"did you mean '{match}'?" if match else ""


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of ``a`` and ``b``, or ``limit + 1`` once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if min(cur) > limit:
            return limit + 1
        prev = cur
    return prev[-1]


def close_match(name: str, candidates: Iterable[str], cache: Any = None) -> str | None:
    """The one candidate within a small edit distance of ``name`` (a typo: 1 edit for
    short names, 2 from 8 characters), or None (none, or several equally close);
    remembered like :func:`closest`."""
    return _remembered("close-match", name, candidates, cache, _close_match)


def _close_match(low: str, candidates: frozenset[str]) -> str | None:
    limit = 1 if len(low) < 8 else 2
    best: list[tuple[int, str]] = []
    for c in sorted(candidates):
        if c.lower() == low:
            continue
        d = edit_distance(low, c.lower(), limit)
        if d <= limit:
            best.append((d, c))
    if not best:
        return None
    best.sort()
    if len(best) > 1 and best[0][0] == best[1][0]:
        return None
    return best[0][1]
