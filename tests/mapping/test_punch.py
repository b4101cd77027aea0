"""Punching evicted pages out of the memfd: one process_madvise per batch, or fallocate."""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
from collections.abc import Iterator

import numpy as np
import pytest

from swapio.mapping import Mapping, _region
from swapio.mapping._region import MAX_RUNS_PER_CALL, HolePuncher

PAGE = 4096
PAGES = 3000


@pytest.fixture
def memfd() -> Iterator[tuple[int, mmap.mmap]]:
    """A memfd of PAGES pages, page k filled with byte k % 251 + 1 (all allocated)."""
    fd = _region.new_memfd(PAGES * PAGE)
    mm = mmap.mmap(fd, PAGES * PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    for k in range(PAGES):
        mm[k * PAGE : (k + 1) * PAGE] = bytes([k % 251 + 1]) * PAGE
    try:
        yield fd, mm
    finally:
        mm.close()
        os.close(fd)


@pytest.fixture
def puncher(memfd: tuple[int, mmap.mmap]) -> Iterator[HolePuncher]:
    """A batched puncher of the memfd (closed after the test)."""
    p = HolePuncher(memfd[0], PAGES * PAGE)
    try:
        yield p
    finally:
        p.close()


def _holes() -> list[tuple[int, int]]:
    """Scattered runs, more than one call takes: every other page of the first 2400 alone,
    runs of 4 pages, one of 10."""
    runs = [(k * PAGE, PAGE) for k in range(0, 2400, 2)]  # 1200 single pages
    runs += [(k * PAGE, 4 * PAGE) for k in range(2401, 2900, 5)]  # 100 runs of 4
    runs.append((2950 * PAGE, 10 * PAGE))
    assert len(runs) > MAX_RUNS_PER_CALL
    return runs


def _check(mm: mmap.mmap, fd: int, holes: list[tuple[int, int]]) -> None:
    gone = np.zeros(PAGES, dtype=bool)
    for offset, length in holes:
        gone[offset // PAGE : (offset + length) // PAGE] = True
    # the pages left the file (st_blocks counts 512-byte blocks), not just the mappings;
    # looked at first: reading a hole of a shared shmem mapping allocates a page again
    assert os.fstat(fd).st_blocks * 512 == int((~gone).sum()) * PAGE
    data = np.frombuffer(mm, dtype=np.uint8).reshape(PAGES, PAGE).copy()
    expect = (np.arange(PAGES) % 251 + 1).astype(np.uint8)
    assert not data[gone].any(), "a punched page still has data"
    assert (data[~gone] == expect[~gone, None]).all(), "a page outside the holes changed"


@pytest.mark.parametrize("batched", [True, False], ids=["process_madvise", "fallocate"])
def test_scattered_runs_are_punched_and_nothing_else(
    memfd: tuple[int, mmap.mmap], batched: bool
) -> None:
    fd, mm = memfd
    holes = _holes()
    puncher = HolePuncher(fd, PAGES * PAGE, batched=batched)
    try:
        puncher.punch(holes)
        _check(mm, fd, holes)
        if batched:
            assert puncher.batched, "this kernel (>= 6.13) takes MADV_REMOVE for itself"
            assert puncher.calls == -(-len(holes) // MAX_RUNS_PER_CALL)
        else:
            assert puncher.calls == len(holes)
    finally:
        puncher.close()


def test_a_kernel_that_refuses_falls_back_to_fallocate_for_good(
    memfd: tuple[int, mmap.mmap], puncher: HolePuncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    fd, mm = memfd
    refusals = []

    def refuse(*args: object) -> int:
        refusals.append(args)
        ctypes.set_errno(errno.EINVAL)  # what a kernel before 6.13 says
        return -1

    monkeypatch.setattr(_region._libc, "syscall", refuse)
    holes = [(k * PAGE, PAGE) for k in range(0, 100, 2)]
    puncher.punch(holes)
    puncher.punch([(200 * PAGE, PAGE)])
    assert len(refusals) == 1
    assert not puncher.batched
    _check(mm, fd, [*holes, (200 * PAGE, PAGE)])


def test_a_short_count_finishes_the_rest_with_fallocate(
    memfd: tuple[int, mmap.mmap], puncher: HolePuncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    fd, mm = memfd
    real = _region._libc.syscall
    holes = [(k * PAGE, 2 * PAGE) for k in range(0, 200, 4)]

    def first_three(nr: object, pidfd: object, vec: ctypes.Array, n: object, *rest: object) -> int:
        # the kernel stopped after three runs (it reports the bytes it advised)
        return int(real(nr, pidfd, vec, ctypes.c_size_t(3), *rest))

    monkeypatch.setattr(_region._libc, "syscall", first_three)
    puncher.punch(holes)
    assert puncher.calls == 1 + len(holes) - 3
    _check(mm, fd, holes)


def test_another_error_is_raised_with_the_call_named(
    puncher: HolePuncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> int:
        ctypes.set_errno(errno.ENOMEM)
        return -1

    monkeypatch.setattr(_region._libc, "syscall", fail)
    with pytest.raises(OSError, match=r"process_madvise\(MADV_REMOVE\)") as info:
        puncher.punch([(0, PAGE)])
    assert info.value.errno == errno.ENOMEM


def test_the_handler_punches_each_batch_with_one_call() -> None:
    pages = 512
    with Mapping("memory://punch", resident=64 * PAGE, create=pages, batch=8) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint8)
        for k in np.random.default_rng(5).permutation(pages).tolist():
            a[k * PAGE] = 1  # scattered evictions: one run per page
        stats = m.stats()
        del a
    assert stats["punch"]["batched"] is True
    # one call per batch: far fewer calls than the runs punched
    assert 0 < stats["punch"]["calls"] < stats["resolver"]["punches"] / 4, stats
