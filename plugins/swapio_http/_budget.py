"""The page server's buffer pool, shared fairly between tokens.

Every request body and every response body of ``POST /areas/NAME/io`` lives in a buffer of
the server's :class:`~swapio.pool.PagePool` (bounded, watermarks derived from its budget), so
what the server holds for clients is bounded by the pool's budget.  Per token, two limits:

* **in-flight bytes** (``max_inflight_bytes``): the buffers one token's requests hold at once.
  A request that would go over it is answered ``429 too-much-in-flight`` at once, so 32
  stalled maximal uploads of one token cannot take the server's memory (issue 15, item 4).
* **memalloc share** (``memalloc_share_bytes``): a frame flagged ``MEMALLOC`` asks for the
  treatment the kernel gives a ``SOCK_MEMALLOC`` socket — its buffers may come from the
  pool's reserve and the store runs in memalloc context.  The server grants it only while the
  token's memalloc buffers stay within its share of the reserve; beyond the share the request
  is served as ordinary work (it waits for memory above *low*), so one client cannot drain
  the reserve every other client's reclaim depends on.  The default share is the reserve
  divided by the number of tokens.

An allocation that cannot be granted within ``timeout`` seconds is a
:class:`~swapio.errors.AllocationTimeout` (the server answers ``503 busy``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from swapio.memalloc import in_memalloc, memalloc
from swapio.pool import PagePool, PoolBuffer


class InflightLimitError(Exception):
    """A token's request would hold more than its in-flight bytes (answered 429)."""


@dataclass
class TokenBudget:
    """The pool, the per-token limits, and what each token holds now."""

    pool: PagePool
    max_inflight_bytes: int
    memalloc_share_bytes: int
    timeout: float
    inflight: Counter[str] = field(default_factory=Counter)
    memalloc_held: Counter[str] = field(default_factory=Counter)

    def grant(self, owner: str, wants_memalloc: bool) -> Grant:
        """Buffers of one request of ``owner``; release them with :meth:`Grant.release`."""
        return Grant(self, owner, wants_memalloc)


class Grant:
    """The buffers one request holds, and whether it gets memalloc treatment."""

    def __init__(self, budget: TokenBudget, owner: str, wants_memalloc: bool) -> None:
        self._budget = budget
        self._owner = owner
        #: True while every buffer of this request was allocated with memalloc treatment.
        self.memalloc = wants_memalloc
        self._buffers: list[tuple[PoolBuffer, bool]] = []

    async def alloc(self, nbytes: int, *, zero: bool = True) -> PoolBuffer:
        """A buffer of ``nbytes``, charged to the owner (429 over its in-flight limit);
        ``zero=False`` for a buffer the caller overwrites whole (:meth:`PagePool.alloc`)."""
        budget, owner = self._budget, self._owner
        held = budget.inflight.get(owner, 0)  # .get: no Counter.__missing__ call
        if held + nbytes > budget.max_inflight_bytes:
            raise InflightLimitError(
                f"this token's requests already hold {held} bytes; "
                f"{nbytes} more would exceed the server's limit of "
                f"{budget.max_inflight_bytes} bytes in flight per token"
            )
        if self.memalloc:
            within = budget.memalloc_held.get(owner, 0) + nbytes <= budget.memalloc_share_bytes
            self.memalloc = within
        budget.inflight[owner] = held + nbytes
        try:
            if in_memalloc() is self.memalloc:  # the context says so already: no switch
                buf = await budget.pool.alloc(nbytes, timeout=budget.timeout, zero=zero)
            else:
                with memalloc(self.memalloc):
                    buf = await budget.pool.alloc(nbytes, timeout=budget.timeout, zero=zero)
        except BaseException:
            budget.inflight[owner] -= nbytes
            raise
        if self.memalloc:
            budget.memalloc_held[owner] += nbytes
        self._buffers.append((buf, self.memalloc))
        return buf

    def release(self) -> None:
        """Give every buffer back and uncharge the owner."""
        budget, owner = self._budget, self._owner
        for buf, charged in self._buffers:
            budget.inflight[owner] -= buf.nbytes
            if charged:
                budget.memalloc_held[owner] -= buf.nbytes
            buf.release()
        self._buffers.clear()
        for counter in (budget.inflight, budget.memalloc_held):
            if counter[owner] == 0:
                del counter[owner]
