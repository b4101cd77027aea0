"""The bitmap and the legs on other backends: a real nfs-ganesha server and a flashlog image.

"The bitmap lives in a swap area on any backend": here it lives in a file on an NFS export
(read back by mdadm straight from the export directory) and inside a JFFS2-format flashlog
image, reached only through swap_in/swap_out.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

from swapio_mdraid import Bitmap
from swapio_mdraid._mirror import Mirror
from swapio_nfs.ganesha import GaneshaServer

from swapio.area import CreateRequest
from swapio.plugins import PluginHost
from tests.mdraid.helpers import PAGE, cli, mirror_url, page

PAGES = 64  # 256 KiB legs, 4 chunks of 64 KiB


def crash_with_dirty_chunks(url: str) -> None:
    """Create the mirror, write chunks 0 and 2, cut the power before the lazy clear."""

    async def work() -> None:
        area = await PluginHost().activate(url, create=CreateRequest(PAGES, PAGE))
        mirror = area.private
        assert isinstance(mirror, Mirror)
        await area.write(1, page(0x11))
        await area.write(40, page(0x22))
        await mirror.sweep()
        # one leg misses the last write: the legs differ in chunk 2
        await mirror.legs[0].area.write(41, page(0x33))
        await mirror.stop(clean=False)

    asyncio.run(work())


def test_bitmap_and_a_leg_on_nfs(ganesha: GaneshaServer, tmp_path: Path) -> None:
    name = f"mdraid-{os.getpid()}"
    bitmap_url = ganesha.url(f"{name}.bitmap")
    nfs_leg = ganesha.url(f"{name}.leg1")
    local_leg = tmp_path / "leg0"
    crash_with_dirty_chunks(mirror_url(bitmap_url, [str(local_leg), nfs_leg]))

    doc = json.loads(cli("bitmap", "examine", bitmap_url, "--json"))
    assert doc["dirty_chunks"] == [0, 2]
    # mdadm reads the very file the NFS server stores
    exported = ganesha.export / f"{name}.bitmap"
    mdadm = subprocess.run(["mdadm", "--examine-bitmap", str(exported)], capture_output=True,
                           text=True, check=True)  # fmt: skip
    assert mdadm.stderr == ""
    assert "Bitmap : 4 bits (chunks), 2 dirty (50.0%)" in mdadm.stdout
    assert list(Bitmap.decode(exported.read_bytes()).dirty_chunks()) == [0, 2]

    cli("bitmap", "resync", bitmap_url, "--source", str(local_leg), "--target", nfs_leg)
    assert local_leg.read_bytes() == (ganesha.export / f"{name}.leg1").read_bytes()
    assert json.loads(cli("bitmap", "examine", bitmap_url, "--json"))["dirty"] == 0


def test_bitmap_inside_a_flashlog_image(tmp_path: Path) -> None:
    image = tmp_path / "flash.img"
    bitmap_url = f"flashlog://{image}?name=/md.bitmap&size={4 << 20}"
    legs = [str(tmp_path / "a"), str(tmp_path / "b")]
    crash_with_dirty_chunks(mirror_url(bitmap_url, legs))
    bitmap_url = f"flashlog://{image}?name=/md.bitmap"
    doc = json.loads(cli("bitmap", "examine", bitmap_url, "--json"))
    assert doc["dirty_chunks"] == [0, 2]
    assert doc["events"] >= 1
    cli("bitmap", "resync", bitmap_url, "--source", legs[0], "--target", legs[1])
    assert Path(legs[0]).read_bytes() == Path(legs[1]).read_bytes()
    assert json.loads(cli("bitmap", "examine", bitmap_url, "--json"))["dirty"] == 0
