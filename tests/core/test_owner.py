"""swapio.owner: one thread owns a blocking resource; calls cross to it in batches."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import swapio.owner
from swapio.owner import OwnerStoppedError, OwnerThread


async def test_calls_run_in_one_named_thread_in_submission_order() -> None:
    owner = OwnerThread("owner-test")
    seen: list[tuple[int, str]] = []

    def record(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 10

    results = await asyncio.gather(*(owner.submit(record, i) for i in range(20)))
    await owner.stop()
    assert results == [i * 10 for i in range(20)]
    assert [i for i, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"owner-test"}


async def test_an_exception_reaches_the_awaiting_coroutine() -> None:
    owner = OwnerThread("owner-test")

    def fail() -> None:
        raise OSError(5, "EIO")

    with pytest.raises(OSError, match="EIO"):
        await owner.submit(fail)
    assert await owner.submit(int, "7") == 7  # the thread survives a failed call
    await owner.stop()


async def test_calls_queued_while_the_thread_works_cross_back_in_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches: list[int] = []
    real = swapio.owner._complete

    def counting(results: list[Any]) -> None:
        batches.append(len(results))
        real(results)

    monkeypatch.setattr(swapio.owner, "_complete", counting)
    owner = OwnerThread("owner-test")
    gate = threading.Event()
    first = owner.submit(gate.wait, 10.0)
    await asyncio.sleep(0.05)  # the thread has taken the first call and blocks in it
    rest = [owner.submit(int, str(i)) for i in range(5)]
    gate.set()
    assert await first is True
    assert await asyncio.gather(*rest) == [0, 1, 2, 3, 4]
    await owner.stop()
    assert batches == [1, 5]


async def test_stop_runs_queued_calls_then_final_then_ends_the_thread() -> None:
    owner = OwnerThread("owner-test")
    order: list[str] = []
    pending = owner.submit(order.append, "queued")
    await owner.stop(lambda: order.append("final"))
    assert await pending is None
    assert order == ["queued", "final"]
    assert not owner.alive
    assert "owner-test" not in {t.name for t in threading.enumerate()}


async def test_submit_after_stop_is_refused() -> None:
    owner = OwnerThread("owner-test")
    await owner.stop()
    with pytest.raises(OwnerStoppedError, match="owner-test"):
        owner.submit(int, "1")
    await owner.stop()  # idempotent


async def test_a_failing_final_still_ends_the_thread() -> None:
    owner = OwnerThread("owner-test")

    def close() -> None:
        raise OSError(28, "ENOSPC")

    with pytest.raises(OSError, match="ENOSPC"):
        await owner.stop(close)
    assert not owner.alive


async def test_a_cancelled_awaiter_does_not_withdraw_a_taken_call() -> None:
    owner = OwnerThread("owner-test")
    gate = threading.Event()
    ran = threading.Event()

    def slow() -> None:
        gate.wait(10.0)
        ran.set()

    task = asyncio.ensure_future(owner.submit(slow))
    await asyncio.sleep(0.05)
    task.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    await owner.stop()
    assert ran.is_set()


async def test_idle_until_a_call_is_submitted_and_again_once_it_is_settled() -> None:
    owner = OwnerThread("owner-test")
    assert owner.idle
    gate = threading.Event()
    pending = owner.submit(gate.wait, 10.0)
    assert not owner.idle
    gate.set()
    await pending
    assert owner.idle
    await owner.stop()


async def test_start_and_stop_use_no_thread_but_the_owner() -> None:
    before = {t.ident for t in threading.enumerate()}
    owner = OwnerThread("owner-test")
    await owner.submit(int, "1")
    await owner.stop(lambda: None)
    assert {t.ident for t in threading.enumerate()} == before
    assert not any(t.name.startswith("asyncio_") for t in threading.enumerate())
