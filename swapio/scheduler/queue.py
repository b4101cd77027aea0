"""One area's pending requests: priority classes with aging, and merging of adjacent slots.

Sans-I/O: the queue only decides *which* requests go out together next; the scheduler runs
them.  Merging follows the elevator's back merge and front merge: a request whose first slot
is another pending request's end (same direction, same memalloc-ness) joins it, up to the
area's ``max_pages_per_request``.  Requests that overlap are never merged and the queue does
not order them: like the block layer, swapio leaves ordering of overlapping I/O to the
caller (the pager never has two requests for one page in flight).
"""

from __future__ import annotations

from collections import deque

from swapio.scheduler.request import Direction, IORequest, Priority, RequestState

_CLASSES = tuple(Priority)


class AreaQueue:
    """Pending requests of one area, by priority class, indexed by first and end slot."""

    __slots__ = (
        "_by_end",
        "_by_start",
        "_classes",
        "aging_ns",
        "class_pending",
        "max_pages",
        "pending",
    )

    def __init__(self, max_pages: int, aging_ns: int) -> None:
        self.max_pages = max_pages
        self.aging_ns = max(aging_ns, 1)
        self.pending = 0
        self.class_pending = [0] * len(_CLASSES)
        self._classes: tuple[deque[IORequest], ...] = tuple(deque() for _ in _CLASSES)
        self._by_start: dict[Direction, dict[int, IORequest]] = {d: {} for d in Direction}
        self._by_end: dict[Direction, dict[int, IORequest]] = {d: {} for d in Direction}

    def push(self, req: IORequest) -> None:
        """Queue ``req`` at the tail of its class."""
        self._classes[req.priority].append(req)
        self._by_start[req.direction].setdefault(req.slot, req)
        self._by_end[req.direction].setdefault(req.end, req)
        self.pending += 1
        self.class_pending[req.priority] += 1

    def remove(self, req: IORequest) -> None:
        """Take a pending request out (cancellation); it is skipped lazily in its class."""
        if req.state is not RequestState.PENDING:
            return
        self._unindex(req)
        req.state = RequestState.CANCELLED

    def _unindex(self, req: IORequest) -> None:
        starts = self._by_start[req.direction]
        if starts.get(req.slot) is req:
            del starts[req.slot]
        ends = self._by_end[req.direction]
        if ends.get(req.end) is req:
            del ends[req.end]
        self.pending -= 1
        self.class_pending[req.priority] -= 1

    def pending_at_or_above(self, priority: int) -> bool:
        """True when a request of class ``priority`` or more urgent is queued."""
        if not self.pending:
            return False
        counts = self.class_pending
        return any(counts[: priority + 1])

    def _head(self, cls: int) -> IORequest | None:
        queue = self._classes[cls]
        while queue and queue[0].state is not RequestState.PENDING:
            queue.popleft()
        return queue[0] if queue else None

    def pick(
        self,
        now_ns: int,
        *,
        memalloc_allowed: bool = True,
        lowest_class: int = Priority.BACKGROUND,
    ) -> IORequest | None:
        """The request to dispatch next: least effective class (class minus age in
        ``aging_ns`` steps), ties to the older request.

        ``memalloc_allowed=False`` skips memalloc requests (their in-flight limit is
        reached); classes numerically above ``lowest_class`` are not considered (they may not
        take the remaining queue slots).
        """
        best: IORequest | None = None
        best_key: tuple[float, int] = (float("inf"), 0)
        for cls in _CLASSES:
            queue = self._classes[cls]
            head = self._head(cls)
            if head is None:
                continue
            candidate = head
            if not memalloc_allowed and head.memalloc:
                other = next(
                    (r for r in queue if r.state is RequestState.PENDING and not r.memalloc),
                    None,
                )
                if other is None:
                    continue
                candidate = other
            age_classes = max(0, now_ns - candidate.submitted_ns) // self.aging_ns
            effective = cls - age_classes
            if effective > lowest_class:
                continue
            key = (float(effective), candidate.seq)
            if key < best_key:
                best, best_key = candidate, key
        return best

    def take_merged(self, head: IORequest) -> list[IORequest]:
        """Remove ``head`` and the adjacent pending requests that merge with it, in slot
        order, up to ``max_pages`` slots in total."""
        self._unindex(head)
        head.state = RequestState.INFLIGHT
        merged: deque[IORequest] = deque((head,))
        total = head.count
        direction = head.direction
        starts = self._by_start[direction]
        ends = self._by_end[direction]
        end = head.end
        inflight = RequestState.INFLIGHT
        memalloc = head.memalloc
        limit = self.max_pages
        class_pending = self.class_pending
        merged_count = 0
        while total < limit:  # back merge (the hot path of a sequential stream, inlined)
            nxt = starts.get(end)
            if nxt is None or nxt.memalloc != memalloc or total + nxt.count > limit:
                break
            del starts[end]
            nxt_end = end + nxt.count
            if ends.get(nxt_end) is nxt:
                del ends[nxt_end]
            class_pending[nxt.priority] -= 1
            merged_count += 1
            nxt.state = inflight
            merged.append(nxt)
            total += nxt.count
            end = nxt_end
        self.pending -= merged_count
        start = head.slot
        while total < self.max_pages:  # front merge
            prv = ends.get(start)
            if prv is None or prv.memalloc != head.memalloc or total + prv.count > self.max_pages:
                break
            self._unindex(prv)
            prv.state = RequestState.INFLIGHT
            merged.appendleft(prv)
            total += prv.count
            start = prv.slot
        return list(merged)

    def drain(self) -> list[IORequest]:
        """Remove and return every pending request (scheduler shutdown)."""
        out: list[IORequest] = []
        for queue in self._classes:
            while queue:
                req = queue.popleft()
                if req.state is RequestState.PENDING:
                    self._unindex(req)
                    req.state = RequestState.CANCELLED
                    out.append(req)
        return out
