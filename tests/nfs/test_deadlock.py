"""The deadlock demonstration over real NFS (DESIGN idea 3): every resident page dirty, the
pool drained to *min*, and each eviction is an NFS swap-out whose WRITE and COMMIT replies
need pool buffers.  With the reserve the swap-outs complete on reserve-backed reply buffers;
without it the first eviction waits for memory only it could free, and the watchdog sees the
stall."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from swapio.area import CreateRequest
from swapio.pager.pager import Pager
from swapio.plugins import PluginHost
from swapio.pool import PagePool
from swapio.scheduler import IOScheduler

from .conftest import GaneshaServer

PAGE = 4096
BASE_MIN = 2


@dataclass
class Outcome:
    completed: bool
    writes_done: int
    reserve_dips: int
    reserve_pages: int
    peak_reserve_used: int
    verified: bool
    balanced: bool


async def run_nfs_pressure(
    ganesha: GaneshaServer,
    name: str,
    *,
    reserve: bool,
    resident: int = 32,
    pages: int = 256,
    writes: int = 192,
    stall_timeout: float = 2.0,
) -> Outcome:
    url = ganesha.url(name, timeo=30, retrans=2)
    setup = await PluginHost().activate(url, create=CreateRequest(pages, PAGE))
    need = setup.capabilities.reserve_need
    await setup.deactivate()

    budget = resident + BASE_MIN + need
    pool = PagePool(
        budget,
        PAGE,
        min_pages=BASE_MIN,
        low_pages=BASE_MIN,
        high_pages=BASE_MIN + 3,
        reserve_enabled=reserve,
        dirty_ratio=100,
        dirty_background_ratio=100,
        wait_timeout=60.0,
    )
    start = pool.accounting()
    area = await PluginHost().activate(url, pool=pool)
    sched = IOScheduler(request_timeout=None)
    pager = Pager(area, resident_pages=resident, scheduler=sched, reclaim_batch=8)
    rng = random.Random(7)
    plan = [(i, i) for i in range(resident)]
    plan += [(rng.randrange(pages), n) for n in range(resident, resident + writes)]
    model: dict[int, int] = {}
    done = 0

    async def workload() -> None:
        nonlocal done
        for index, value in plan:
            await pager.write(index, value.to_bytes(8, "little") * (PAGE // 8))
            model[index] = value
            done += 1

    task = asyncio.create_task(workload())
    last, since = -1, asyncio.get_running_loop().time()
    while not task.done():
        await asyncio.wait([task], timeout=stall_timeout / 5)
        now = asyncio.get_running_loop().time()
        if done != last:
            last, since = done, now
        elif now - since >= stall_timeout:
            task.cancel()
            break
    completed = task.done() and not task.cancelled() and task.exception() is None
    if not completed:
        await asyncio.gather(task, return_exceptions=True)
    verified = False
    if completed:
        verified = True
        for index, value in model.items():
            data = await asyncio.wait_for(pager.read(index), 30)
            verified &= data[:8] == value.to_bytes(8, "little")
    snap = pool.snapshot()
    if completed:  # the pager first: it waits for its page I/O, which the scheduler runs
        await pager.close()
        await sched.aclose()
    else:  # stalled I/O waits on the pool; closing the scheduler settles it first
        await sched.aclose()
        await pager.close()
    await area.deactivate()
    return Outcome(
        completed=completed,
        writes_done=done,
        reserve_dips=snap.reserve_dips,
        reserve_pages=snap.reserve_pages,
        peak_reserve_used=snap.peak_reserve_used_pages,
        verified=verified,
        balanced=pool.accounting() == start,
    )


async def test_with_the_reserve_swap_out_over_nfs_completes_on_reserve_buffers(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    out = await run_nfs_pressure(ganesha, nfs_name, reserve=True)
    assert out.completed
    assert out.reserve_dips > 0  # reply buffers came from the reserve
    assert 0 < out.peak_reserve_used <= out.reserve_pages  # and it never went negative
    assert out.verified  # every page reads back what was last written
    assert out.balanced


async def test_without_the_reserve_the_first_eviction_deadlocks(
    ganesha: GaneshaServer, nfs_name: str
) -> None:
    out = await run_nfs_pressure(ganesha, nfs_name, reserve=False, stall_timeout=1.0)
    assert not out.completed
    assert out.writes_done <= 32 + 1  # stuck at the first eviction after the resident fill
    assert out.reserve_dips == 0
    assert out.balanced  # tearing the stuck requests down leaked nothing
