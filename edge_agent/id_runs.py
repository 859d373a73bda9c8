"""Sets of outbox row ids held as sorted runs of consecutive ids, ``(first, last)`` inclusive.

The broker acknowledges envelopes nearly in id order, so a flush's worth of acknowledged
ids is a handful of runs instead of one Python object per id: the outbox's memory then does
not grow with how many envelopes it delivers or stores.
"""

from __future__ import annotations

import bisect
from typing import Iterable, Iterator

Run = tuple[int, int]
LAST_ID = 2**63 - 1          # SQLite's largest rowid


def runs_of(sorted_ids: Iterable[int]) -> list[Run]:
    """``[3, 4, 5, 9, 10]`` -> ``[(3, 5), (9, 10)]``; the ids must be ascending."""
    runs: list[Run] = []
    first = last = None
    for row_id in sorted_ids:
        if last is not None and row_id <= last + 1:
            last = max(last, row_id)
            continue
        if last is not None:
            runs.append((first, last))
        first = last = row_id
    if last is not None:
        runs.append((first, last))
    return runs


def merged(runs: Iterable[Run]) -> list[Run]:
    """Runs in any order, possibly overlapping -> ascending, disjoint, adjacent ones joined."""
    out: list[Run] = []
    for first, last in sorted(runs):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def contains(runs: list[Run], row_id: int) -> bool:
    """``row_id`` lies in one of ``runs`` (ascending and disjoint, as ``merged`` returns them)."""
    index = bisect.bisect_right(runs, (row_id, LAST_ID)) - 1
    return index >= 0 and runs[index][0] <= row_id <= runs[index][1]


def size(runs: Iterable[Run]) -> int:
    return sum(last - first + 1 for first, last in runs)


def gaps(runs: list[Run], after: int, upto: int = LAST_ID) -> Iterator[Run]:
    """The id ranges in ``(after, upto]`` that ``runs`` (merged) do not cover, ascending, as
    ``(after_exclusive, last_inclusive)`` pairs, ready for ``WHERE id > ? AND id <= ?``."""
    position = after
    start = max(0, bisect.bisect_right(runs, (after, LAST_ID)) - 1)
    for first, last in runs[start:]:
        if last <= position:
            continue
        if first > upto:
            break
        if first - 1 > position:
            yield position, first - 1
        position = last
        if position >= upto:
            return
    if position < upto:
        yield position, upto
