"""I/O requests as the scheduler queues them: direction, priority class, slots, buffers.

A request is one caller's ask (``submit_bio`` for swapio); a :class:`Batch` is what the
scheduler hands the area after merging adjacent requests of the same direction
(``blk_attempt_plug_merge`` / the elevator's back and front merges).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from swapio.area import PageBuffer

if TYPE_CHECKING:
    from collections.abc import Generator


class Direction(enum.StrEnum):
    """What a request does to its slots (a str enum: cheap to hash on the hot path)."""

    SWAP_OUT = "swap_out"
    SWAP_IN = "swap_in"
    DISCARD = "discard"


class Priority(enum.IntEnum):
    """Priority classes, most urgent first.  Aging promotes a waiting request one class per
    ``aging_interval`` seconds, so nothing starves."""

    RECLAIM = 0  #: swap-out that frees memory (runs in memalloc context)
    DEMAND = 1  #: swap-in a program is blocked on
    READAHEAD = 2  #: speculative swap-in of neighbouring slots
    BACKGROUND = 3  #: writeback, resync, discard


class RequestState(enum.Enum):
    """Where a request is in its life."""

    PENDING = "pending"
    INFLIGHT = "inflight"
    DONE = "done"
    CANCELLED = "cancelled"


class IORequest:
    """One submitted request; await it (or its :attr:`future`) for the outcome.

    ``buffers`` are page buffers for ``SWAP_OUT`` and writable page views for ``SWAP_IN``;
    for ``DISCARD`` the request covers ``count`` slots and has no buffers.
    """

    __slots__ = (
        "_error",
        "_future",
        "_loop",
        "_settled",
        "batch",
        "buffers",
        "count",
        "direction",
        "memalloc",
        "owner",
        "priority",
        "seq",
        "slot",
        "state",
        "submitted_ns",
    )

    def __init__(
        self,
        owner: Any,
        direction: Direction,
        slot: int,
        count: int,
        buffers: Sequence[Any],
        priority: Priority,
        memalloc: bool,
        loop: asyncio.AbstractEventLoop,
        seq: int,
        submitted_ns: int,
    ) -> None:
        self.owner = owner
        self.direction = direction
        self.slot = slot
        self.count = count
        self.buffers = buffers
        self.priority = priority
        self.memalloc = memalloc
        self._loop = loop
        self._future: asyncio.Future[None] | None = None  # created when someone waits
        self._error: BaseException | None = None
        self._settled = False
        self.seq = seq
        self.submitted_ns = submitted_ns
        self.state = RequestState.PENDING
        self.batch: Batch | None = None

    @property
    def end(self) -> int:
        """One past the last slot."""
        return self.slot + self.count

    def done(self) -> bool:
        """True once the request settled (completed, failed or was cancelled while queued)."""
        return self.state in (RequestState.DONE, RequestState.CANCELLED)

    @property
    def future(self) -> asyncio.Future[None]:
        """The outcome as an asyncio future (created on first use; most requests that are
        awaited after completing never need one)."""
        fut = self._future
        if fut is None:
            fut = self._future = self._loop.create_future()
            if self._settled:
                if self._error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(self._error)
        return fut

    def settle(self, error: BaseException | None) -> None:
        """Complete the request with ``error`` (None: success) and wake its waiters; the
        scheduler calls this once, when the batch carrying the request finished."""
        self.state = RequestState.DONE
        self._settled = True
        self._error = error
        fut = self._future
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    def abandon(self, error: BaseException) -> None:
        """Fail a request that never left the queue (scheduler shutdown)."""
        self.settle(error)
        self.state = RequestState.CANCELLED

    def __await__(self) -> Generator[Any, None, None]:
        if self._future is not None or not self._settled:
            return (yield from self.future.__await__())
        if self._error is not None:
            raise self._error
        return None

    def __repr__(self) -> str:
        return (
            f"IORequest({self.direction.value}, slots {self.slot}..{self.end - 1}, "
            f"{self.priority.name}, {self.state.value})"
        )


class Batch:
    """Adjacent requests merged into one call of the area (sorted by slot)."""

    __slots__ = (
        "count",
        "demand",
        "direction",
        "done",
        "finished",
        "memalloc",
        "requests",
        "slot",
        "started_ns",
    )

    def __init__(self, requests: list[IORequest], started_ns: int) -> None:
        first = requests[0]
        if len(requests) == 1:  # a direct issue, or a request nothing merged with
            first.batch = self
            first.state = RequestState.INFLIGHT
            self.count = first.count  #: slots covered
            self.demand = first.priority is Priority.DEMAND  #: a member is a DEMAND request
        else:
            inflight = RequestState.INFLIGHT
            demand = Priority.DEMAND
            has_demand = False
            for req in requests:  # the batch takes its members in flight
                req.batch = self
                req.state = inflight
                if req.priority is demand:
                    has_demand = True
            last = requests[-1]
            self.count = last.slot + last.count - first.slot
            self.demand = has_demand
        self.requests = requests
        self.direction = first.direction
        self.memalloc = first.memalloc
        self.slot = first.slot  #: first slot of the batch
        self.started_ns = started_ns
        self.done: asyncio.Future[None] | None = None  # created when someone waits to settle
        self.finished = False

    @property
    def priority(self) -> Priority:
        """The most urgent class among the members."""
        return min(r.priority for r in self.requests)

    def page_buffers(self) -> Sequence[PageBuffer]:
        """The members' buffers in slot order (a lone request's own sequence, not a copy)."""
        requests = self.requests
        if len(requests) == 1:
            return requests[0].buffers
        out: list[PageBuffer] = []
        for req in requests:
            out.extend(req.buffers)
        return out

    def describe(self) -> str:
        """``"<direction> of slots a..b"`` for error messages."""
        return f"{self.direction.value} of slots {self.slot}..{self.slot + self.count - 1}"

    def finish(self) -> None:
        """Mark the area call over; wakes cancelled waiters that wait for it to settle."""
        self.finished = True
        done = self.done
        if done is not None and not done.done():
            done.set_result(None)

    async def settled(self) -> None:
        """Wait until :meth:`finish` ran (shielded: the waiter's own cancellation does not
        cancel the wait of others)."""
        if self.finished:
            return
        if self.done is None:
            self.done = asyncio.get_running_loop().create_future()
        await asyncio.shield(self.done)
