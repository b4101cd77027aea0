"""A mirror workload with a crash point, shared by the in-process and the kill -9 tests.

Run as ``python -m tests.mdraid.crash_workload DIR STEP OCCURRENCE``: the process runs the
workload on the mirror in DIR and SIGKILLs itself at the OCCURRENCE-th protocol step named
STEP (``any`` counts every step).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from swapio_mdraid._mirror import Mirror

from swapio.area import SwapArea
from swapio.plugins import PluginHost
from tests.mdraid.helpers import MirrorFiles, page

#: (op, slot, fill): writes that change chunks 0, 1 and 2 (16 pages per 64 KiB chunk),
#: interleaved with daemon sweeps so that every step of the protocol occurs.
WORKLOAD: list[tuple[str, int, int]] = [
    ("write", 0, 0x11),
    ("write", 17, 0x22),
    ("sweep", 0, 0),
    ("write", 0, 0x33),
    ("sweep", 0, 0),
    ("sweep", 0, 0),
    ("write", 40, 0x44),
    ("write", 18, 0x55),
    ("sweep", 0, 0),
    ("sweep", 0, 0),
    ("write", 33, 0x66),
]


async def run_workload(area: SwapArea) -> None:
    mirror = area.private
    assert isinstance(mirror, Mirror)
    for op, slot, fill in WORKLOAD:
        if op == "write":
            await area.write(slot, page(fill))
        else:
            await mirror.sweep()


def files_in(root: Path) -> MirrorFiles:
    return MirrorFiles(root, root / "bitmap", [root / "leg0", root / "leg1"])


async def _child(root: Path, step: str, occurrence: int) -> None:
    files = files_in(root)
    area = await PluginHost().activate(files.url())
    mirror = area.private
    assert isinstance(mirror, Mirror)
    seen = 0

    async def fault(name: str, info: dict[str, int]) -> None:
        nonlocal seen
        if step in ("any", name):
            seen += 1
            if seen == occurrence:
                os.kill(os.getpid(), signal.SIGKILL)

    mirror.fault = fault
    await run_workload(area)
    await area.deactivate()


if __name__ == "__main__":
    asyncio.run(_child(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
