"""swapio.mapping on real areas: numpy through the mapping behaves like an in-RAM array."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest
from swapio_nfs.ganesha import GaneshaServer

from swapio.errors import AreaError, UsageError
from swapio.mapping import HandlerDiedError, Mapping
from swapio.mapping._resolver import MAX_REQUEST, MAX_WINDOW
from swapio.mapping.mapping import DEFAULT_BATCH

PAGE = 4096
PAGES = 512  # 2 MiB areas
BUDGET = 32  # resident pages: 1/16 of the area
BATCH = 8


@pytest.fixture(params=["memory", "file", "flashlog", "nfs"])
def area_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    kind = request.param
    if kind == "memory":
        return "memory://mapping-test"
    if kind == "file":
        return f"file://{tmp_path}/area.swap"
    if kind == "flashlog":
        return f"flashlog://{tmp_path}/flash.img?name=/swapfile"
    server: GaneshaServer = request.getfixturevalue("ganesha")
    return server.url(f"mapping-{uuid.uuid4().hex[:12]}")


def _open(url: str, create: bool = True, **kw: object) -> Mapping:
    return Mapping(url, resident=BUDGET * PAGE, create=PAGES if create else None, batch=BATCH, **kw)  # type: ignore[arg-type]


def _check_rss(m: Mapping, peak: list[int]) -> None:
    rss = m.region_rss()
    peak[0] = max(peak[0], rss)
    assert rss <= (BUDGET + BATCH) * PAGE, f"region RSS {rss} over budget + one batch"


def test_random_reads_and_writes_match_an_in_ram_copy(area_url: str) -> None:
    rng = np.random.default_rng(7)
    peak = [0]
    with _open(area_url) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint32)
        ref = np.zeros_like(a)
        per_page = PAGE // 4
        for _ in range(400):
            page = int(rng.integers(PAGES))
            lo = page * per_page + int(rng.integers(per_page - 16))
            if rng.random() < 0.5:
                vals = rng.integers(1, 2**32, 16, dtype=np.uint32)
                a[lo : lo + 16] = vals
                ref[lo : lo + 16] = vals
            else:
                assert np.array_equal(a[lo : lo + 16], ref[lo : lo + 16])
            _check_rss(m, peak)
        assert np.array_equal(a, ref)
        _check_rss(m, peak)
        assert m.stats()["resolver"]["dirty_evictions"] > 0  # pages really went to the area
        del a


def test_sequential_writes_then_a_scan_match_an_in_ram_copy(area_url: str) -> None:
    peak = [0]
    with _open(area_url) as m:
        a = np.frombuffer(m.buffer, dtype=np.float64)
        ref = np.arange(a.size, dtype=np.float64) * 0.5
        chunk = 3 * PAGE // 8  # 3 pages at a time, not page-aligned across steps
        for lo in range(0, a.size, chunk):
            a[lo : lo + chunk] = ref[lo : lo + chunk]
            _check_rss(m, peak)
        for lo in range(0, a.size, chunk):
            assert np.array_equal(a[lo : lo + chunk], ref[lo : lo + chunk])
            _check_rss(m, peak)
        assert float(a.sum()) == float(ref.sum())
        del a


def test_a_sequential_scan_is_read_ahead_of_its_faults(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/area.swap"
    ref = np.arange(PAGES * PAGE // 8, dtype=np.float64)
    with _open(url) as m:
        np.frombuffer(m.buffer, dtype=np.float64)[:] = ref
    with _open(url, create=False) as m:
        a = np.frombuffer(m.buffer, dtype=np.float64)
        assert float(a.sum()) == float(ref.sum())
        stats = m.stats()["resolver"]
        assert m.region_rss() <= (BUDGET + BATCH) * PAGE
        del a
    # windows of budget/4 pages, each but the first read ahead: the program faults once per
    # window, on its marker page, served from the bytes the read-ahead kept
    window = BUDGET // 4
    assert stats["readahead_pages"] >= PAGES - 4 * window
    assert stats["marker_hits"] >= PAGES // window - 4
    assert stats["missing_faults"] <= PAGES // window + 4


def test_windows_larger_than_one_area_request_go_in_pieces(tmp_path: Path) -> None:
    """A budget of 1,024 pages lets windows reach MAX_WINDOW (256 pages), more than one area
    request carries (MAX_REQUEST): each window is several reads, installed as one, and a
    dirty window evicted is several writes."""
    url = f"file://{tmp_path}/area.swap"
    pages, budget = 4 * MAX_WINDOW * 2, MAX_WINDOW * 4
    ref = np.random.default_rng(11).integers(0, 2**63, pages * PAGE // 8, dtype=np.uint64)
    with Mapping(url, resident=budget * PAGE, create=pages) as m:
        np.frombuffer(m.buffer, dtype=np.uint64)[:] = ref
    with Mapping(url, resident=budget * PAGE) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint64)
        assert np.array_equal(a, ref)
        stats = m.stats()["resolver"]
        assert m.region_rss() <= (budget + DEFAULT_BATCH) * PAGE
        del a
    assert stats["missing_faults"] <= pages // MAX_WINDOW + 8  # windows of MAX_WINDOW pages
    assert stats["area_reads"] >= pages // MAX_REQUEST  # in pieces of at most MAX_REQUEST


def test_region_rss_never_exceeds_the_budget_plus_one_batch() -> None:
    rng = np.random.default_rng(3)
    peak = [0]
    with _open("memory://rss") as m:
        a = np.frombuffer(m.buffer, dtype=np.uint8)
        for _ in range(600):
            page = int(rng.integers(PAGES))
            a[page * PAGE] = 1
            _check_rss(m, peak)
        st = m.stats()
        assert st["resolver"]["max_installed"] <= BUDGET
        assert st["region_rss"] <= BUDGET * PAGE
        del a
    assert peak[0] > (BUDGET // 2) * PAGE  # the budget was actually used


def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/area.swap"
    ref = np.random.default_rng(5).integers(0, 2**63, PAGES * PAGE // 8, dtype=np.uint64)
    with _open(url) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint64)
        a[:] = ref
        del a
    with _open(url, create=False) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint64)
        assert np.array_equal(a, ref)
        del a


def test_a_read_only_pass_writes_nothing_back(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/area.swap"
    with _open(url) as m:
        np.frombuffer(m.buffer, dtype=np.uint8)[::PAGE] = 9
    with _open(url, create=False) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint8)
        assert int(a[::PAGE].sum()) == 9 * PAGES
        stats = m.stats()["resolver"]
        assert stats["evictions"] > 0
        assert stats["dirty_evictions"] == 0  # write-protect tracking: clean pages dropped
        assert m.sync() == 0
        del a


def test_without_write_protect_every_evicted_page_is_written_back(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/area.swap"
    with _open(url, write_protect=False) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint8)
        a[::PAGE] = 4
        assert int(a[::PAGE].sum()) == 4 * PAGES
        stats = m.stats()["resolver"]
        assert stats["dirty_evictions"] == stats["evictions"]
        del a
    with _open(url, create=False) as m:
        assert int(np.frombuffer(m.buffer, dtype=np.uint8)[::PAGE].sum()) == 4 * PAGES


async def test_the_async_form_gives_the_same_buffer() -> None:
    async with Mapping("memory://async", resident=BUDGET * PAGE, create=PAGES) as m:
        m.buffer[PAGE * 100 : PAGE * 100 + 5] = b"hello"
        assert bytes(m.buffer[PAGE * 100 : PAGE * 100 + 5]) == b"hello"
        assert len(m.buffer) == PAGES * PAGE
        assert await m.async_sync() >= 0


def test_opening_a_missing_area_names_it(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/absent.swap"
    with pytest.raises(AreaError, match="absent.swap"):
        Mapping(url, resident=BUDGET * PAGE).open()


def test_a_budget_below_one_page_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="less than one"):
        Mapping("memory://tiny", resident=100, create=4).open()


def test_a_python_sigbus_handler_is_refused_it_would_turn_a_lost_handler_into_a_hang() -> None:
    previous = signal.signal(signal.SIGBUS, lambda *_: None)
    try:
        with pytest.raises(UsageError, match="Python SIGBUS handler"):
            Mapping("memory://sigbus", resident=BUDGET * PAGE, create=PAGES).open()
    finally:
        signal.signal(signal.SIGBUS, previous)


def test_after_the_handler_dies_sync_raises_instead_of_hanging() -> None:
    m = _open("memory://dies").open()
    try:
        os.kill(m.handler_pid, signal.SIGKILL)
        with pytest.raises(HandlerDiedError):
            m.sync()
    finally:
        with pytest.raises(HandlerDiedError):
            m.close()


def _program(body: str) -> list[str]:
    prelude = "import os, sys, time, numpy as np\nfrom swapio.mapping import Mapping\n"
    return [sys.executable, "-c", prelude + textwrap.dedent(body)]


def _wait_line(proc: subprocess.Popen[str], prefix: str) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith(prefix), f"program said {line!r}; stderr: {proc.stderr}"
    return line


def test_killing_the_handler_makes_the_next_access_a_bus_error_not_a_hang() -> None:
    proc = subprocess.Popen(
        _program(
            f"""
            m = Mapping("memory://x", resident={BUDGET * PAGE}, create={PAGES}).open()
            a = np.frombuffer(m.buffer, dtype=np.uint8)
            a[::4096] = 1
            print("ready", m.handler_pid, flush=True)
            sys.stdin.readline()
            print("sum", int(a.sum()), flush=True)
            """
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        handler = int(_wait_line(proc, "ready").split()[1])
        os.kill(handler, signal.SIGKILL)
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGBUS
    assert "sum" not in out  # no silently zero-filled result
    assert "Bus error" in err


def test_kill_9_of_program_and_handler_after_sync_loses_nothing(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/area.swap"
    proc = subprocess.Popen(
        _program(
            f"""
            m = Mapping("{url}", resident={BUDGET * PAGE}, create={PAGES}).open()
            a = np.frombuffer(m.buffer, dtype=np.uint32)
            a[:] = np.arange(a.size, dtype=np.uint32) * 3
            m.sync()
            print("synced", m.handler_pid, m.watchdog_pid, flush=True)
            time.sleep(60)
            """
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pids = [int(p) for p in _wait_line(proc, "synced").split()[1:]]
        for pid in [proc.pid, *pids]:
            os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    with _open(url, create=False) as m:
        a = np.frombuffer(m.buffer, dtype=np.uint32)
        assert np.array_equal(a, np.arange(a.size, dtype=np.uint32) * 3)
        del a
