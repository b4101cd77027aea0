"""The event-loop stall watch: names the hook that blocked, and leaves well-behaved hooks be."""

from __future__ import annotations

import asyncio
import time

import pytest

from swapio.testing.stall import StallWatch, parse_steal


async def _blocking_step(seconds: float) -> str:
    time.sleep(seconds)  # blocks the loop on purpose
    return "done"


async def _yielding(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def _blocking_callback(seconds: float) -> None:
    asyncio.get_running_loop().call_soon(time.sleep, seconds)
    await asyncio.sleep(seconds + 0.05)


async def test_a_step_that_blocks_is_named_with_its_time() -> None:
    watch = StallWatch(threshold=0.1)
    async with watch.running():
        assert await watch.watch("swap_out", _blocking_step)(0.2) == "done"
    assert [(s.where, s.step) for s in watch.stalls] == [("swap_out", True)]
    assert 0.19 < watch.stalls[0].seconds < 0.3
    assert "swap_out ran 0.2" in watch.report("Kit.max_loop_stall")
    assert "Kit.max_loop_stall" in watch.report("Kit.max_loop_stall")


async def test_a_hook_that_awaits_is_not_a_stall() -> None:
    watch = StallWatch(threshold=0.1)
    async with watch.running():
        assert await watch.watch("swap_in", _yielding)(0.3) == "done"
    assert watch.stalls == []
    assert watch.report("x") == ""


async def test_a_blocking_callback_is_charged_to_the_hook_in_flight() -> None:
    watch = StallWatch(threshold=0.1)  # the watchdog's stalls count from 0.2 s
    async with watch.running():
        await watch.watch("swap_in", _blocking_callback)(0.3)
    assert [(s.where, s.step) for s in watch.stalls] == [("swap_in", False)]
    # the watchdog wakes every 10 ms: it sees the stall less what it had slept already
    assert 0.28 < watch.stalls[0].seconds < 0.4
    assert "while swap_in was in flight" in watch.report("x")


async def test_a_shorter_callback_stall_is_below_the_watchdogs_limit() -> None:
    watch = StallWatch(threshold=0.1)
    async with watch.running():
        await watch.watch("swap_in", _blocking_callback)(0.15)
    assert watch.stalls == []


async def test_a_stall_outside_any_hook_is_not_charged() -> None:
    watch = StallWatch(threshold=0.1)
    async with watch.running():
        await asyncio.sleep(0.02)
        time.sleep(0.2)  # the test's own code, no hook in flight
        await asyncio.sleep(0.02)
    assert watch.stalls == []


async def test_exceptions_and_cancellation_pass_through() -> None:
    async def failing() -> None:
        await asyncio.sleep(0)
        raise KeyError("from the hook")

    watch = StallWatch(threshold=0.1)
    with pytest.raises(KeyError, match="from the hook"):
        await watch.watch("swap_out", failing)()
    cancelled = False

    async def waits() -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled = True
            raise

    task = asyncio.ensure_future(watch.watch("swap_in", waits)())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled


def test_steal_is_read_per_cpu_from_proc_stat_lines() -> None:
    stat = (
        "cpu  10 0 5 100 1 0 2 30 0 0\n"
        "cpu0 5 0 2 50 1 0 1 12 0 0\n"
        "cpu1 5 0 3 50 0 0 1 18 0 0\n"
        "intr 1 2 3\n"
    )
    assert parse_steal(stat) == [12, 18]
    assert parse_steal("cpu0 1 2 3\n") == [0]  # a kernel without the field


async def test_a_step_the_hypervisor_took_is_not_charged(monkeypatch: pytest.MonkeyPatch) -> None:
    # the step sleeps 0.2 s in the kernel (like a thread start waiting for a vCPU the host
    # did not run); the second CPU's steal grows by 0.2 s meanwhile: not the backend's doing
    watch = StallWatch(threshold=0.1)
    tick = watch._steal._tick
    readings = iter([[0, 0], [0, int(0.2 * tick)]] + [[0, int(0.2 * tick)]] * 1000)
    monkeypatch.setattr(watch._steal, "snapshot", lambda: next(readings))
    async with watch.running():
        assert await watch.watch("swapfile", _blocking_step)(0.2) == "done"
    assert [s for s in watch.stalls if s.step] == []


async def test_steal_on_another_cpu_excuses_only_what_it_took(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch = StallWatch(threshold=0.1)
    tick = watch._steal._tick
    readings = iter([[0, 0], [0, int(0.05 * tick)]] + [[0, int(0.05 * tick)]] * 1000)
    monkeypatch.setattr(watch._steal, "snapshot", lambda: next(readings))
    async with watch.running():
        await watch.watch("swap_out", _blocking_step)(0.3)
    steps = [s for s in watch.stalls if s.step]
    assert len(steps) == 1
    assert 0.2 < steps[0].seconds < 0.3  # 0.3 s held, 0.05 s of it stolen
