"""Crash the mirror at every step of the write protocol, then resync.

At every crash point: every chunk whose legs differ has its bit set on disk; a resync from
the bitmap makes the legs identical and leaves no bit set.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from swapio_mdraid._locate import activate
from swapio_mdraid._mirror import Mirror
from swapio_mdraid._resync import resync
from swapio_mdraid._store import BitmapStore

from swapio.plugins import PluginHost
from tests.mdraid.crash_workload import files_in, run_workload
from tests.mdraid.helpers import MirrorFiles, create_mirror, page

REPO = Path(__file__).resolve().parents[2]


class Crash(Exception):
    """The simulated power cut."""


def assert_invariant(files: MirrorFiles) -> None:
    differing = files.differing_chunks()
    bitmap = files.read_bitmap()
    unprotected = [c for c in differing if not bitmap.test(c)]
    assert not unprotected, f"chunks {unprotected} differ between legs with a clear bit"


async def resync_files(host: PluginHost, files: MirrorFiles) -> None:
    store = await BitmapStore.open(host, str(files.bitmap))
    legs = [await activate(host, str(p)) for p in files.legs]
    try:
        report = await resync(store, legs[0], legs[1:])
        assert report.dirty_after == 0
    finally:
        for leg in legs:
            await leg.deactivate()
        await store.close()


async def count_steps(host: PluginHost, files: MirrorFiles) -> list[str]:
    area = await create_mirror(host, files)
    mirror = area.private
    assert isinstance(mirror, Mirror)
    steps: list[str] = []

    async def record(name: str, info: dict[str, int]) -> None:
        steps.append(name if name != "leg_written" else f"leg_written:{info['leg']}")
        assert_invariant(files)  # the invariant at every step, on what is on disk now

    mirror.fault = record
    await run_workload(area)
    mirror.fault = None
    await area.deactivate()
    return steps


async def test_invariant_holds_at_every_step_of_an_uncrashed_run(
    host: PluginHost, files: MirrorFiles
) -> None:
    steps = await count_steps(host, files)
    assert "bitmap_flushed" in steps
    assert "leg_written:0" in steps
    assert "swept" in steps
    assert files.differing_chunks() == []


async def test_crash_at_every_step_then_resync(host: PluginHost, tmp_path: Path) -> None:
    reference = files_in(tmp_path / "reference")
    reference.root.mkdir()
    steps = await count_steps(host, reference)
    assert len(steps) > 20
    outcomes: set[str] = set()
    for index, name in enumerate(steps):
        root = tmp_path / f"crash{index}"
        root.mkdir()
        files = files_in(root)
        area = await create_mirror(host, files)
        mirror = area.private
        assert isinstance(mirror, Mirror)
        seen = 0

        async def crash_at(step: str, info: dict[str, int], target: int = index) -> None:
            nonlocal seen
            if seen == target:
                raise Crash(step)
            seen += 1

        mirror.fault = crash_at
        with pytest.raises(Crash):
            await run_workload(area)
        await mirror.stop(clean=False)  # the process is gone: nothing more reaches disk
        assert_invariant(files)
        if files.differing_chunks():
            outcomes.add(name)
        await resync_files(host, files)
        assert files.differing_chunks() == [], f"legs differ after resync (crash at {name})"
        assert files.read_bitmap().count_dirty() == 0
    # the interesting crash point (between the legs) really left the legs different
    assert "leg_written:0" in outcomes


@pytest.mark.parametrize(
    ("step", "occurrence", "legs_differ"),
    [
        ("bitmap_flushed", 3, False),  # bit on disk, no leg written yet
        ("leg_written", 5, True),  # between the legs of the third write
        ("swept", 1, False),  # after one sweep: before the lazy clear
        ("write_done", 4, False),
    ],
)
async def test_kill_9_mid_protocol_then_cli_resync(
    host: PluginHost, tmp_path: Path, step: str, occurrence: int, legs_differ: bool
) -> None:
    files = files_in(tmp_path)
    area = await create_mirror(host, files)
    await area.deactivate()
    child = subprocess.run(
        [sys.executable, "-m", "tests.mdraid.crash_workload", str(tmp_path), step, str(occurrence)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    assert bool(files.differing_chunks()) == legs_differ
    assert_invariant(files)
    assert files.read_bitmap().count_dirty() > 0
    done = subprocess.run(
        [
            "swapio",
            "bitmap",
            "resync",
            str(files.bitmap),
            "--source",
            str(files.legs[0]),
            "--target",
            str(files.legs[1]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    assert files.differing_chunks() == []
    assert files.read_bitmap().count_dirty() == 0


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[tuple[str, int, int]], int]:
    ops = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("write"), st.integers(0, 63), st.integers(1, 255)),
                st.tuples(st.just("sweep"), st.just(0), st.just(0)),
                st.tuples(st.just("discard"), st.integers(0, 62), st.just(2)),
            ),
            min_size=1,
            max_size=14,
        )
    )
    return ops, draw(st.integers(0, 60))


@given(workloads())
@settings(max_examples=25, deadline=None)
def test_random_workloads_crashed_anywhere_keep_the_invariant(
    case: tuple[list[tuple[str, int, int]], int],
) -> None:
    ops, crash_step = case

    async def scenario(root: Path) -> None:
        host = PluginHost()
        files = files_in(root)
        area = await create_mirror(host, files)
        mirror = area.private
        assert isinstance(mirror, Mirror)
        steps = 0

        async def fault(name: str, info: dict[str, int]) -> None:
            nonlocal steps
            assert_invariant(files)
            if steps == crash_step:
                raise Crash(name)
            steps += 1

        mirror.fault = fault
        try:
            for op, slot, arg in ops:
                if op == "write":
                    await area.write(slot, page(arg))
                elif op == "discard":
                    await area.discard(slot, arg)
                else:
                    await mirror.sweep()
        except Crash:
            await mirror.stop(clean=False)
        else:
            mirror.fault = None
            await area.deactivate()
        assert_invariant(files)
        await resync_files(host, files)
        assert files.differing_chunks() == []

    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp)))
