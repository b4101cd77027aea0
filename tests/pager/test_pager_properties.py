"""Property test: whatever the interleaving of accesses and backend failures, the pager
never loses a write and gives every pool page back."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from swapio.errors import BackendIOError
from swapio.pager import Pager
from swapio.pool import PagePool
from tests.scheduler.fakes import ControlledBackend, activate, page

PAGES = 24

op = st.one_of(
    st.tuples(st.just("write"), st.integers(0, PAGES - 1), st.integers(0, 255)),
    st.tuples(st.just("read"), st.integers(0, PAGES - 1), st.just(0)),
    st.tuples(st.just("fail_out"), st.booleans(), st.just(0)),
    st.tuples(st.just("fail_in"), st.booleans(), st.just(0)),
    st.tuples(st.just("sync"), st.just(0), st.just(0)),
)


async def run(ops: list[tuple[str, int, int]], resident: int, readahead: int) -> None:
    backend = ControlledBackend(pages=PAGES, reply_pages=1)
    pool = PagePool(64, min_pages=4, low_pages=6, high_pages=8, dirty_ratio=100)
    area = await activate(backend, pool)
    start = pool.accounting()
    model: dict[int, bytes] = {}
    async with Pager(area, resident_pages=resident, reclaim_batch=2, readahead=readahead) as pager:
        for kind, a, b in ops:
            try:
                if kind == "write":
                    await pager.write(a, page(b))
                    model[a] = page(b)
                elif kind == "read":
                    assert await pager.read(a) == model.get(a, bytes(4096))
                elif kind == "fail_out":
                    backend.fail_out = BackendIOError("injected write failure") if a else None
                elif kind == "fail_in":
                    backend.fail_in = BackendIOError("injected read failure") if a else None
                else:
                    await pager.sync()
            except BackendIOError:
                pass  # a failed access changed nothing the model knows about
            assert pager.resident <= resident
            assert pager.dirty == pool.dirty_pages
        backend.fail_out = backend.fail_in = None
        for index in range(PAGES):
            assert await pager.read(index) == model.get(index, bytes(4096))
    await area.deactivate()
    assert pool.accounting() == start


@settings(max_examples=60, deadline=None)
@given(st.lists(op, max_size=60), st.integers(2, 6), st.sampled_from([0, 4]))
def test_no_write_is_lost_under_random_failures(
    ops: list[tuple[str, int, int]], resident: int, readahead: int
) -> None:
    asyncio.run(run(ops, resident, readahead))


async def run_concurrent(seeds: list[int], fail_plan: list[bool], resident: int) -> None:
    backend = ControlledBackend(pages=PAGES * 4, reply_pages=1)
    pool = PagePool(96, min_pages=4, low_pages=6, high_pages=8, dirty_ratio=100)
    area = await activate(backend, pool)
    start = pool.accounting()
    models: list[dict[int, bytes]] = [{} for _ in seeds]
    async with Pager(area, resident_pages=resident, reclaim_batch=3, readahead=4) as pager:

        async def worker(n: int, seed: int) -> None:
            rng = random.Random(seed)
            mine = range(n * PAGES, n * PAGES + PAGES)  # each task owns its pages
            for _ in range(40):
                index = rng.choice(mine)
                try:
                    if rng.random() < 0.5:
                        value = page(rng.randrange(256))
                        await pager.write(index, value)
                        models[n][index] = value
                    else:
                        expected = models[n].get(index, bytes(4096))
                        assert await pager.read(index) == expected
                except BackendIOError:
                    pass

        async def chaos() -> None:
            for fail in fail_plan:
                backend.fail_out = BackendIOError("injected") if fail else None
                await asyncio.sleep(0)
            backend.fail_out = None

        await asyncio.gather(chaos(), *(worker(n, s) for n, s in enumerate(seeds)))
        backend.fail_out = backend.fail_in = None
        for n, model in enumerate(models):
            for index in range(n * PAGES, n * PAGES + PAGES):
                assert await pager.read(index) == model.get(index, bytes(4096))
    await area.deactivate()
    assert pool.accounting() == start


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(0, 1000), min_size=2, max_size=4),
    st.lists(st.booleans(), max_size=50),
    st.integers(3, 8),
)
def test_concurrent_tasks_lose_nothing_under_write_failures(
    seeds: list[int], fail_plan: list[bool], resident: int
) -> None:
    asyncio.run(run_concurrent(seeds, fail_plan, resident))
