"""The handler's fault loop runs on the program's CPU and follows it; the reaper does not."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np
import pytest

from swapio.mapping import Mapping
from swapio.mapping._affinity import (
    BUSY_PIN,
    BUSY_UNPIN,
    FOLLOW_AFTER,
    FOLLOW_INTERVAL,
    others_busy,
    parse_cpu_time,
    parse_machine,
    parse_processor,
    start_pinned,
    want_pinned,
)
from swapio.mapping._resolver import REAPER_NAME

PAGE = 4096
CPUS = sorted(os.sched_getaffinity(0))
two_cpus = pytest.mark.skipif(len(CPUS) < 2, reason="needs two CPUs to tell them apart")


@pytest.fixture
def restore_affinity() -> Iterator[None]:
    before = os.sched_getaffinity(0)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _thread_cpus(pid: int, name: str | None = None) -> dict[str, set[int]]:
    """CPUs allowed to each thread of ``pid`` (by thread name)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm", encoding="ascii") as fh:
            comm = fh.read().strip()
        if name is None or comm.startswith(name):
            out[f"{comm}/{tid}"] = os.sched_getaffinity(int(tid))
    return out


def _touch(m: Mapping, pages: int) -> None:
    a = np.frombuffer(m.buffer, dtype=np.uint8)
    total = 0
    for i in range(pages):
        total += int(a[i * PAGE])
    del a


def test_the_processor_field_is_read_past_a_command_name_with_parentheses() -> None:
    fields = " ".join(["S"] + [str(n) for n in range(4, 39)] + ["7", "0", "0"])
    assert parse_processor(f"1234 (a) b (c)) {fields}") == 7


@two_cpus
def test_the_fault_loop_is_pinned_to_one_cpu_the_programs() -> None:
    with Mapping("memory://affinity", resident=16 * PAGE, create=64, batch=4, colocate=True) as m:
        _touch(m, 64)
        cpu = m.stats()["handler_cpu"]
        assert os.sched_getaffinity(m.handler_pid) == {cpu}


@two_cpus
def test_the_fault_loop_follows_the_program_to_another_cpu(restore_affinity: None) -> None:
    with Mapping("memory://affinity", resident=16 * PAGE, create=64, batch=4, colocate=True) as m:
        _touch(m, 64)
        start = m.stats()["handler_cpu"]
        other = next(c for c in CPUS if c != start)
        os.sched_setaffinity(0, {other})
        deadline = time.monotonic() + FOLLOW_INTERVAL * (FOLLOW_AFTER + 2) + 5
        while os.sched_getaffinity(m.handler_pid) != {other} and time.monotonic() < deadline:
            _touch(m, 64)
            time.sleep(FOLLOW_INTERVAL / 4)
        assert os.sched_getaffinity(m.handler_pid) == {other}
        assert m.stats()["handler_cpu"] == other


@two_cpus
def test_the_reaper_thread_may_run_on_every_cpu() -> None:
    with Mapping("memory://affinity", resident=16 * PAGE, create=64, batch=4, colocate=True) as m:
        _touch(m, 64)  # evictions start the reaper
        reapers = _thread_cpus(m.handler_pid, REAPER_NAME.decode())
        assert reapers, "no reaper thread"
        assert all(cpus == set(CPUS) for cpus in reapers.values()), reapers


@two_cpus
def test_colocate_false_leaves_the_handler_unpinned() -> None:
    with Mapping("memory://affinity", resident=16 * PAGE, create=64, batch=4, colocate=False) as m:
        _touch(m, 64)
        assert os.sched_getaffinity(m.handler_pid) == set(CPUS)
        assert m.stats()["handler_cpu"] is None


def test_cpu_times_are_read_from_proc_stat_lines() -> None:
    fields = " ".join(["S"] + [str(n) for n in range(4, 14)] + ["70", "30"] + ["0"] * 30)
    assert parse_cpu_time(f"99 (x y) {fields}") == 100
    # user nice system idle iowait irq softirq steal guest guest_nice
    assert parse_machine("cpu  100 5 50 800 40 1 2 3 7 0\ncpu0 1 2 3\n") == (161, 1001)


def test_the_others_share_leaves_out_the_handler_and_its_program() -> None:
    # 400 ticks of capacity, 100 busy, 80 of them ours: others used 5 %
    assert others_busy((1100, 2400), (1000, 2000), 380, 300) == pytest.approx(0.05)
    assert others_busy((1000, 2000), (1000, 2000), 0, 0) is None


def test_auto_pins_on_an_idle_machine_and_unpins_on_a_busy_one_with_hysteresis() -> None:
    assert want_pinned(False, BUSY_PIN / 2) is True
    assert want_pinned(False, (BUSY_PIN + BUSY_UNPIN) / 2) is False
    assert want_pinned(True, (BUSY_PIN + BUSY_UNPIN) / 2) is True
    assert want_pinned(True, BUSY_UNPIN + 0.1) is False
    assert want_pinned(True, None) is True
    assert want_pinned(False, None) is False


def test_auto_starts_pinned_unless_the_load_average_says_others_keep_the_cpus_busy() -> None:
    assert start_pinned(0.0, 2) is True
    assert start_pinned(1.0 + BUSY_UNPIN * 2, 2) is True  # the program itself is not "others"
    assert start_pinned(1.1 + BUSY_UNPIN * 2, 2) is False


@two_cpus
def test_auto_lets_the_fault_loop_float_while_other_work_keeps_every_cpu_busy() -> None:
    hog = "import time\nt = time.time() + 8\nwhile time.time() < t: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in CPUS]
    try:
        # poll=False: a polling loop never pins (tests/mapping/test_spin.py); this is auto
        # colocation on its own
        with Mapping("memory://affinity", resident=16 * PAGE, create=64, batch=4, poll=False) as m:
            deadline = time.monotonic() + 6
            while m.stats()["handler_cpu"] is not None and time.monotonic() < deadline:
                _touch(m, 64)
                time.sleep(FOLLOW_INTERVAL / 2)
            assert m.stats()["handler_cpu"] is None
            assert os.sched_getaffinity(m.handler_pid) == set(CPUS)
    finally:
        for proc in hogs:
            proc.kill()
            proc.wait()
