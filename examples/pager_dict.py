"""Page a large Python data structure through swapio's pager.

A ``PagedDict`` keeps only its index (key -> where the value lives) in ordinary memory; the
pickled values live in pager pages, and only ``resident_pages`` of those are in memory at a
time: the rest are swapped out to any swapio area (a file here).

    python examples/pager_dict.py [--items 50000] [--resident 256] [--url file:///tmp/x.swap]

It stores ``--items`` records (about 20x the resident budget by default), reads a random
sample back, checks every one, and prints what the pager did.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import random
import tempfile
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from swapio import CreateRequest, PluginHost
from swapio.pager import Pager


class PagedDict:
    """A dict whose values live in pager pages (append-only log of pickled values)."""

    def __init__(self, pager: Pager) -> None:
        self.pager = pager
        self.page_size = pager.page_size
        self.index: dict[Hashable, tuple[int, int]] = {}  # key -> (byte offset, length)
        self.end = 0  # next free byte in the log

    async def set(self, key: Hashable, value: Any) -> None:
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        if self.end + len(blob) > self.pager.pages * self.page_size:
            raise MemoryError("the swap area is full")
        offset = self.end
        pos = 0
        while pos < len(blob):  # a value may span pages
            page, within = divmod(offset + pos, self.page_size)
            n = min(len(blob) - pos, self.page_size - within)
            await self.pager.write(page, blob[pos : pos + n], within)
            pos += n
        self.index[key] = (offset, len(blob))
        self.end = offset + len(blob)

    async def get(self, key: Hashable) -> Any:
        offset, length = self.index[key]
        parts = []
        pos = 0
        while pos < length:
            page, within = divmod(offset + pos, self.page_size)
            n = min(length - pos, self.page_size - within)
            data = await self.pager.read(page)
            parts.append(data[within : within + n])
            pos += n
        return pickle.loads(b"".join(parts))

    def __len__(self) -> int:
        return len(self.index)


def record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"user-{i:06d}",
        "tags": [i % 7, i % 11, i % 13],
        "bio": "x" * (i % 200),
    }


async def main(items: int, resident: int, url: str | None) -> None:
    host = PluginHost()
    with tempfile.TemporaryDirectory() as tmp:
        location = url or f"file://{Path(tmp) / 'pager-dict.swap'}"
        area = await host.activate(location, create=CreateRequest(pages=16384))
        try:
            async with Pager(area, resident_pages=resident) as pager:
                store = PagedDict(pager)
                for i in range(items):
                    await store.set(i, record(i))
                sample = random.Random(7).sample(range(items), min(items, 5000))
                for i in sample:
                    assert await store.get(i) == record(i), f"record {i} came back different"
                stats = pager.stats()
                used_pages = -(-store.end // store.page_size)
                print(f"{len(store)} records in {used_pages} pages ({store.end / 2**20:.1f} MiB)")
                print(f"resident budget {resident} pages; {len(sample)} random reads all correct")
                print(
                    f"accesses {stats.accesses}, hits {stats.hits}, major faults "
                    f"{stats.major_faults}, writebacks {stats.writebacks}, evictions "
                    f"{stats.evictions}, readahead hits {stats.readahead_hits}"
                )
        finally:
            await area.deactivate()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50000)
    parser.add_argument("--resident", type=int, default=256, help="resident pages")
    parser.add_argument("--url", help="swap-area URL to create (default: a temp file)")
    args = parser.parse_args()
    asyncio.run(main(args.items, args.resident, args.url))
