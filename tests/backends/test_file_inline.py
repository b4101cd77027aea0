"""The file backend runs small requests on the event loop when they cannot block it (or,
for writes on filesystems without RWF_NOWAIT, until one is seen to) — swapio_file.inline."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import swapio_file.inline as inline_mod
from swapio_file.inline import INLINE_MAX_BYTES, InlinePath

from swapio import CreateRequest, PluginHost
from swapio.area import SwapArea
from swapio.owner import OwnerThread
from swapio.testing import page_pattern

PAGE = 4096
SMALL = INLINE_MAX_BYTES // PAGE


@pytest.fixture
async def area(tmp_path: Path) -> AsyncIterator[SwapArea]:
    area = await PluginHost().activate(f"file://{tmp_path}/s", create=CreateRequest(pages=512))
    yield area
    await area.deactivate()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the functions handed to an owner thread, in order."""
    names: list[str] = []
    real = OwnerThread.submit

    def counting(self: OwnerThread, fn: object, *args: object) -> object:
        names.append(getattr(fn, "__name__", "?"))
        return real(self, fn, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(OwnerThread, "submit", counting)
    return names


def pattern(first: int, count: int) -> bytes:
    return b"".join(page_pattern(first + i, 0, PAGE) for i in range(count))


async def test_a_small_write_and_a_cached_read_run_on_the_loop(
    area: SwapArea, hops: list[str]
) -> None:
    data = pattern(0, SMALL)
    await area.write(0, data)
    assert bytes(await area.read(0, SMALL)) == data
    assert hops == []
    with open(area.location.path, "rb") as f:
        assert f.read(len(data)) == data


async def test_a_request_above_the_inline_limit_goes_to_the_owner_thread(
    area: SwapArea, hops: list[str]
) -> None:
    data = pattern(0, SMALL + 1)
    await area.write(0, data)
    assert bytes(await area.read(0, SMALL + 1)) == data
    assert hops == ["pwritev", "preadv"]


async def test_nothing_runs_on_the_loop_while_the_owner_thread_is_busy(
    area: SwapArea, hops: list[str]
) -> None:
    gate = threading.Event()
    blocker = area.private.owner.submit(gate.wait, 10.0)
    write = asyncio.ensure_future(area.write(0, pattern(0, 1)))
    read = asyncio.ensure_future(area.read(8, 1))
    await asyncio.sleep(0.01)  # both have reached the backend while the owner is busy
    gate.set()
    await blocker
    await write
    await read
    assert hops == ["wait", "pwritev", "preadv"]


async def test_a_durable_area_never_writes_on_the_loop(tmp_path: Path, hops: list[str]) -> None:
    url = f"file://{tmp_path}/d?durable=1"
    area = await PluginHost().activate(url, create=CreateRequest(pages=8))
    hops.clear()  # the store was created on the owner thread
    await area.write(0, pattern(0, 1))
    await area.deactivate()
    assert hops[:1] == ["pwritev"]


@pytest.mark.slow  # FADV_DONTNEED is advice: on a busy machine the pages often stay cached;
# the layer test below covers the logic with the kernel's EAGAIN on every run
async def test_a_read_the_kernel_would_wait_for_goes_to_the_owner_thread(
    area: SwapArea, hops: list[str]
) -> None:
    data = pattern(0, 2)
    await area.write(0, data)
    fd = area.private.store.fd
    os.fsync(fd)
    hops.clear()
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # out of the cache: needs the disk
    assert bytes(await area.read(0, 2)) == data
    assert hops == ["preadv"]


async def test_a_nowait_read_refused_by_the_kernel_is_retried_on_the_owner_thread(
    area: SwapArea, hops: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the layer under the real-kernel test above: EAGAIN from preadv2(RWF_NOWAIT) (which
    # FADV_DONTNEED, being advice, does not always provoke on a busy machine)
    data = pattern(0, 2)
    await area.write(0, data)
    real = os.preadv

    def refuse(fd: int, views: object, offset: int, flags: int = 0) -> int:
        if flags & inline_mod._NOWAIT:
            raise BlockingIOError(11, "Resource temporarily unavailable")
        return real(fd, views, offset, flags)  # type: ignore[arg-type]

    monkeypatch.setattr(inline_mod.os, "preadv", refuse)
    hops.clear()
    assert bytes(await area.read(0, 2)) == data
    assert hops == ["preadv"]


async def test_a_slow_inline_write_stops_inline_writes_for_a_doubling_back_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    area = await PluginHost().activate(f"file://{tmp_path}/s", create=CreateRequest(pages=8))
    state = area.private
    now = [1000.0]
    path = InlinePath(state.store, state.owner, clock=lambda: now[0])
    monkeypatch.setattr(inline_mod, "_NOWAIT", 0)  # the guarded path, as on ext4 today
    path._nowait_write = False
    real = state.store.pwritev
    slow = [True]

    def throttled(offset: int, pages: list[bytes]) -> None:
        if slow[0]:
            time.sleep(inline_mod.STALL_S * 2)  # as balance_dirty_pages would
        real(offset, pages)

    monkeypatch.setattr(state.store, "pwritev", throttled)
    page = [pattern(0, 1)]
    assert path.write(0, page)  # ran on the loop, too slowly
    assert path.stalls == 1
    assert not path.write(0, page)  # backing off: the owner thread gets it
    now[0] += inline_mod.FIRST_BACKOFF_S + 1
    assert path.write(0, page)  # back on the loop, slow again: the back-off doubles
    now[0] += inline_mod.FIRST_BACKOFF_S + 1
    assert not path.write(0, page)
    now[0] += inline_mod.FIRST_BACKOFF_S
    slow[0] = False
    assert path.write(0, page)
    assert path.stalls == 2
    await area.deactivate()


async def test_a_slow_inline_write_that_never_slept_is_not_a_stall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    area = await PluginHost().activate(f"file://{tmp_path}/s", create=CreateRequest(pages=8))
    state = area.private
    path = InlinePath(state.store, state.owner)
    path._nowait_write = False
    real = state.store.pwritev

    def busy(offset: int, pages: list[bytes]) -> None:
        end = time.perf_counter() + inline_mod.STALL_S * 5
        while time.perf_counter() < end:  # on the CPU all along (preempted at worst)
            pass
        real(offset, pages)

    monkeypatch.setattr(state.store, "pwritev", busy)
    assert path.write(0, [pattern(0, 1)])
    assert path.stalls == 0
    assert path.write(0, [pattern(0, 1)])  # still on the loop
    await area.deactivate()
