"""AreaQueue (sans-I/O): aging and merge decisions on synthetic requests."""

from __future__ import annotations

import asyncio

from swapio.scheduler.queue import AreaQueue
from swapio.scheduler.request import Direction, IORequest, Priority, RequestState

AGING_NS = 1_000


def make(
    loop: asyncio.AbstractEventLoop,
    slot: int,
    priority: Priority,
    submitted_ns: int,
    *,
    seq: int,
    count: int = 1,
    direction: Direction = Direction.SWAP_OUT,
    memalloc: bool = False,
) -> IORequest:
    return IORequest(
        None,
        direction,
        slot,
        count,
        [bytes(1)] * count,
        priority,
        memalloc,
        loop,
        seq,
        submitted_ns,
    )


async def test_old_background_request_is_promoted_past_a_fresh_demand_one() -> None:
    loop = asyncio.get_running_loop()
    queue = AreaQueue(max_pages=8, aging_ns=AGING_NS)
    old = make(loop, 0, Priority.BACKGROUND, submitted_ns=0, seq=1)
    fresh = make(loop, 10, Priority.DEMAND, submitted_ns=10_000, seq=2)
    queue.push(old)
    queue.push(fresh)
    assert queue.pick(now_ns=10_000) is old  # waited 10 aging steps: effective class -7


async def test_without_age_class_order_decides() -> None:
    loop = asyncio.get_running_loop()
    queue = AreaQueue(max_pages=8, aging_ns=AGING_NS)
    background = make(loop, 0, Priority.BACKGROUND, submitted_ns=0, seq=1)
    demand = make(loop, 10, Priority.DEMAND, submitted_ns=0, seq=2)
    queue.push(background)
    queue.push(demand)
    assert queue.pick(now_ns=AGING_NS - 1) is demand


async def test_ties_go_to_the_older_request() -> None:
    loop = asyncio.get_running_loop()
    queue = AreaQueue(max_pages=8, aging_ns=AGING_NS)
    a = make(loop, 0, Priority.READAHEAD, submitted_ns=0, seq=1)
    b = make(loop, 10, Priority.DEMAND, submitted_ns=AGING_NS, seq=2)
    queue.push(a)
    queue.push(b)
    # at now = AGING_NS: a is 2 - 1 = 1, b is 1 - 0 = 1; a is older
    assert queue.pick(now_ns=AGING_NS) is a


async def test_memalloc_requests_are_skipped_when_their_limit_is_reached() -> None:
    loop = asyncio.get_running_loop()
    queue = AreaQueue(max_pages=8, aging_ns=AGING_NS)
    reclaim = make(loop, 0, Priority.RECLAIM, 0, seq=1, memalloc=True)
    demand = make(loop, 5, Priority.DEMAND, 0, seq=2, direction=Direction.SWAP_IN)
    queue.push(reclaim)
    queue.push(demand)
    assert queue.pick(0, memalloc_allowed=False) is demand
    assert queue.pick(0) is reclaim


async def test_lowest_class_keeps_background_out() -> None:
    loop = asyncio.get_running_loop()
    queue = AreaQueue(max_pages=8, aging_ns=AGING_NS)
    queue.push(make(loop, 0, Priority.BACKGROUND, 0, seq=1))
    assert queue.pick(0, lowest_class=Priority.DEMAND) is None


async def test_merge_takes_neighbours_both_ways_and_respects_memalloc() -> None:
    loop = asyncio.get_running_loop()
    queue = AreaQueue(max_pages=8, aging_ns=AGING_NS)
    reqs = [make(loop, s, Priority.RECLAIM, 0, seq=s) for s in (4, 2, 3, 5)]
    other = make(loop, 6, Priority.RECLAIM, 0, seq=9, memalloc=True)
    for r in [*reqs, other]:
        queue.push(r)
    merged = queue.take_merged(reqs[0])
    assert [r.slot for r in merged] == [2, 3, 4, 5]
    assert all(r.state is RequestState.INFLIGHT for r in merged)
    assert queue.pending == 1
    assert queue.pick(0) is other


async def test_removed_request_is_neither_picked_nor_merged() -> None:
    loop = asyncio.get_running_loop()
    queue = AreaQueue(max_pages=8, aging_ns=AGING_NS)
    a = make(loop, 0, Priority.DEMAND, 0, seq=1)
    b = make(loop, 1, Priority.DEMAND, 0, seq=2)
    queue.push(a)
    queue.push(b)
    queue.remove(b)
    assert b.state is RequestState.CANCELLED
    assert [r.slot for r in queue.take_merged(a)] == [0]
    assert queue.pending == 0
    assert queue.pick(0) is None
