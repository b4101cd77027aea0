"""Which chunks have mirror writes in flight, and which are held off writes.

raid1 keeps writes off the region a resync is copying (``raise_barrier`` /
``wait_barrier`` in ``drivers/md/raid1.c``), and the copy waits for writes already in
flight there.  :class:`ChunkGate` is that barrier per bitmap chunk, for the online resync
and for a leg flush (which re-writes slot 0 with the bytes it read):

* a write *enters* its chunks (counted, so a holder knows to wait) and *leaves* them —
  or, where the writes are counted already (the write-intent counters of the mirror's
  chunks: a count above 2 is a write in flight, ``WriteIntent.writing``), the gate asks
  ``busy(chunk)`` instead and the writer only calls :meth:`ChunkGate.wake` when it ends
  and someone waits;
* :meth:`ChunkGate.hold` waits until no write is in flight on the chunks and no other
  holder has them, then keeps new writes off them for its body.

Only the event loop touches the table, so the common case — nothing held, nobody waiting —
is two dictionary updates per chunk and no lock; waiters sleep on futures that
:meth:`ChunkGate.leave` and the end of a hold wake (no lock is needed to wake them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable


class ChunkGate:
    """In-flight writes and holds, per chunk (the loop's own table; no lock)."""

    def __init__(self, busy: Callable[[int], bool] | None = None) -> None:
        #: chunk -> writes in flight on it (those that :meth:`enter`)
        self.writing: dict[int, int] = {}
        #: other writes in flight on a chunk, counted elsewhere
        self._busy = busy
        #: chunk -> holders keeping writes off it (resync copy, leg flush)
        self.held: dict[int, int] = {}
        #: futures of those waiting for the table (or the writes counted elsewhere) to
        #: change; a writer that ends calls :meth:`wake` only if this is not empty
        self.waiting: list[asyncio.Future[None]] = []

    def is_held(self, chunks: range) -> bool:
        held = self.held
        return bool(held) and any(c in held for c in chunks)

    def enter(self, chunks: range) -> None:
        """A write starts on ``chunks`` (the caller waited for :meth:`wait_until` first if
        some chunk was held)."""
        writing = self.writing
        for chunk in chunks:
            writing[chunk] = writing.get(chunk, 0) + 1

    def leave(self, chunks: range) -> None:
        """The write on ``chunks`` ended; wake whoever waits for the table to change."""
        writing = self.writing
        for chunk in chunks:
            left = writing[chunk] - 1
            if left:
                writing[chunk] = left
            else:
                del writing[chunk]
        if self.waiting:
            self._wake()

    async def wait_until(self, ready: Callable[[], bool]) -> None:
        """Sleep until ``ready()`` is true; it is re-checked each time the table changes
        (a write left, a hold ended) or :meth:`wake` is called."""
        loop = asyncio.get_running_loop()
        while not ready():
            future: asyncio.Future[None] = loop.create_future()
            self.waiting.append(future)
            try:
                await future
            finally:
                with contextlib.suppress(ValueError):
                    self.waiting.remove(future)

    def wake(self) -> None:
        """Something a waiter's predicate reads changed (a write counter went down)."""
        if self.waiting:
            self._wake()

    def _wake(self) -> None:
        wakeups, self.waiting = self.waiting, []
        for future in wakeups:
            if not future.done():
                future.set_result(None)

    @contextlib.asynccontextmanager
    async def hold(self, chunks: range) -> AsyncIterator[None]:
        """Keep writes off ``chunks`` (after those in flight finished) for the body.

        Holders exclude each other too: a leg flush re-writes slot 0 with the bytes it read,
        so it must not overlap the online resync's copy of chunk 0 (or another flush).
        """
        writing, held, busy = self.writing, self.held, self._busy

        def free() -> bool:
            return not any(
                c in writing or c in held or (busy is not None and busy(c)) for c in chunks
            )

        await self.wait_until(free)
        for chunk in chunks:
            held[chunk] = held.get(chunk, 0) + 1
        try:
            yield
        finally:
            for chunk in chunks:
                left = held[chunk] - 1
                if left:
                    held[chunk] = left
                else:
                    del held[chunk]
            self.wake()
