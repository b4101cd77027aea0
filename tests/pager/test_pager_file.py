"""The pager on the real file backend: a working set twice the resident budget."""

from __future__ import annotations

import random
from pathlib import Path

from swapio import CreateRequest, PluginHost
from swapio.pager import Pager
from swapio.pool import PagePool

PAGE = 4096


async def test_random_access_at_half_residency_reads_back_every_write(tmp_path: Path) -> None:
    pool = PagePool(512)
    area = await PluginHost().activate(
        f"file://{tmp_path}/pager.swap", create=CreateRequest(pages=256), pool=pool
    )
    before = pool.accounting()
    model: dict[int, bytes] = {}
    rng = random.Random(11)
    try:
        async with Pager(area, resident_pages=128) as pager:
            for _ in range(2000):
                index = rng.randrange(256)
                if rng.random() < 0.4:
                    model[index] = rng.randbytes(PAGE)
                    await pager.write(index, model[index])
                else:
                    assert await pager.read(index) == model.get(index, bytes(PAGE))
            stats = pager.stats()
            assert stats.major_faults > 0
            assert stats.writebacks > 0
            assert stats.clean_drops > 0
            await pager.sync()
            assert pager.dirty == 0
        assert pool.accounting() == before
        # what sync wrote is in the file, slot i at byte i * PAGE
        data = (tmp_path / "pager.swap").read_bytes()
        for index, value in model.items():
            assert data[index * PAGE : (index + 1) * PAGE] == value
    finally:
        await area.deactivate()
