"""The handler loop's adaptive polling: the window rule, the selector, and the mapping's use."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from swapio.mapping import Mapping
from swapio.mapping._spin import MAX_WINDOW, START_WINDOW, SpinPolicy, SpinSelector

PAGE = 4096
two_cpus = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="polls only where there is a second CPU"
)


def test_the_window_grows_while_waits_are_short_and_collapses_when_they_are_long() -> None:
    policy = SpinPolicy(200e-6)
    assert policy.window == 200e-6  # starts polling: a mapping's first faults come in a burst
    for _ in range(4):
        policy.observed(1e-3)  # the program computes between faults
    assert policy.window == pytest.approx(12.5e-6)
    policy.observed(1e-3)
    assert policy.window == 0.0  # an idle handler sleeps at once
    policy.observed(1e-3)
    assert policy.window == 0.0
    policy.observed(50e-6)  # blocked, but polling would have caught it: grow from the start
    assert policy.window == START_WINDOW
    policy.observed(5e-6)
    assert policy.window == 2 * START_WINDOW
    for _ in range(10):
        policy.observed(5e-6)
    assert policy.window == 200e-6  # never past the maximum


def test_a_zero_maximum_never_polls() -> None:
    policy = SpinPolicy(0.0)
    policy.observed(1e-6)
    assert policy.window == 0.0


@pytest.fixture
def pipe_selector() -> Iterator[tuple[SpinSelector, int, int]]:
    r, w = os.pipe()
    sel = SpinSelector(MAX_WINDOW)
    sel.register(r, 1)
    try:
        yield sel, r, w
    finally:
        sel.close()
        os.close(r)
        os.close(w)


def _write_after(fd: int, delay: float) -> threading.Thread:
    def run() -> None:
        time.sleep(delay)
        os.write(fd, b"x")

    t = threading.Thread(target=run)
    t.start()
    return t


def test_an_event_inside_the_window_is_caught_polling(
    pipe_selector: tuple[SpinSelector, int, int],
) -> None:
    sel, r, w = pipe_selector
    sel.policy.maximum = sel.policy.window = 5.0  # a window no scheduler delay outlasts
    writer = _write_after(w, 0.01)
    ready = sel.select(None)
    writer.join()
    assert [key.fd for key, _ in ready] == [r]
    assert (sel.polls_caught, sel.blocks) == (1, 0)


def test_an_event_after_the_window_is_waited_for_blocking_and_shrinks_it(
    pipe_selector: tuple[SpinSelector, int, int],
) -> None:
    sel, r, w = pipe_selector
    writer = _write_after(w, 0.25)  # far past the 200 us window, and past a hiccup
    ready = sel.select(None)
    writer.join()
    assert [key.fd for key, _ in ready] == [r]
    assert (sel.polls_caught, sel.blocks) == (0, 1)
    assert sel.policy.window == MAX_WINDOW / 2


def test_a_timeout_with_nothing_ready_returns_empty_at_the_timeout(
    pipe_selector: tuple[SpinSelector, int, int],
) -> None:
    sel, _r, _w = pipe_selector
    t0 = time.monotonic()
    assert sel.select(0.02) == []
    assert time.monotonic() - t0 >= 0.015
    assert sel.policy.window == MAX_WINDOW  # a due timer says nothing about the gaps


def test_a_selector_with_polling_off_blocks_at_once(
    pipe_selector: tuple[SpinSelector, int, int],
) -> None:
    sel, r, w = pipe_selector
    sel.set_maximum(0.0)
    os.write(w, b"x")
    assert [key.fd for key, _ in sel.select(None)] == [r]
    assert (sel.polls_caught, sel.blocks) == (0, 0)  # the plain epoll path


def _touch_random(m: Mapping, pages: int, n: int) -> None:
    a = np.frombuffer(m.buffer, dtype=np.uint8)
    total = 0
    for i in np.random.default_rng(3).integers(0, pages, n).tolist():
        total += int(a[i * PAGE])
    del a


@two_cpus
def test_by_default_the_handler_polls_for_faults_and_does_not_pin() -> None:
    with Mapping("memory://spin", resident=16 * PAGE, create=256, batch=4) as m:
        _touch_random(m, 256, 2000)
        stats = m.stats()
        assert stats["poll"]["caught"] > 0, stats["poll"]
        assert stats["handler_cpu"] is None  # polling and pinning next to the program: never both
        assert os.sched_getaffinity(m.handler_pid) == os.sched_getaffinity(0)


def test_poll_false_makes_the_handler_block_for_every_fault() -> None:
    with Mapping("memory://spin", resident=16 * PAGE, create=256, batch=4, poll=False) as m:
        _touch_random(m, 256, 500)
        stats = m.stats()
        assert stats["poll"] == {"window_us": 0.0, "caught": 0, "blocked": 0}
        assert stats["resolver"]["missing_faults"] > 0
