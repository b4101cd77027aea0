"""Which write units of each erase block were programmed since its last erase (sans-I/O).

NOR flash lets a write unit be programmed once between erases (littlefs's ``lfs_emubd``
asserts the same).  A log programs each block front to back, so the programmed units of a
block are almost always one run from its start: they are kept per block as sorted,
non-overlapping runs ``[start, end)`` of unit indices, and a program that begins at or after
the last run — every program of the log — is checked and recorded in a few integer
operations, however large it is (a flag per unit would cost two copies of up to one erase
block's worth of flags per program).  A program anywhere else is checked against the runs
by bisection.
"""

from __future__ import annotations

from bisect import bisect_right


class ProgrammedUnits:
    """Programmed write units, per erase block, as runs of unit indices within the block."""

    __slots__ = ("_runs",)

    def __init__(self, blocks: int) -> None:
        #: Per block, flat ``[start0, end0, start1, end1, ...]``, sorted, runs not touching.
        self._runs: list[list[int]] = [[] for _ in range(blocks)]

    def first_used(self, block: int, start: int, end: int) -> int:
        """The first programmed unit in ``[start, end)`` of ``block``, or -1 if none is."""
        runs = self._runs[block]
        if not runs or start >= runs[-1]:
            return -1
        i = bisect_right(runs, start)
        if i % 2:  # inside the run [runs[i - 1], runs[i])
            return start
        if i < len(runs) and runs[i] < end:
            return runs[i]
        return -1

    def mark(self, block: int, start: int, end: int) -> None:
        """Record ``[start, end)`` as programmed (the caller checked it was not)."""
        runs = self._runs[block]
        if not runs or start > runs[-1]:
            runs += (start, end)
        elif start == runs[-1]:
            runs[-1] = end
        else:
            i = bisect_right(runs, start)
            runs[i:i] = (start, end)
            if i + 2 < len(runs) and runs[i + 1] == runs[i + 2]:
                del runs[i + 1 : i + 3]
            if i > 0 and runs[i - 1] == runs[i]:
                del runs[i - 1 : i + 1]

    def erase(self, block: int, marker: int = 0) -> None:
        """The block was erased; its first ``marker`` units were programmed again since."""
        self._runs[block] = [0, marker] if marker else []

    def runs(self, block: int) -> tuple[int, ...]:
        """The block's programmed runs, flat (for tests and diagnostics)."""
        return tuple(self._runs[block])
