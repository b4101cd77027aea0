"""The mirror calls its legs' own hooks (``_direct.py``): the area contract is kept — state
checked, request counted in flight — and write-back file legs take the file backend's own
inline step first, only while the area is served by the hooks that step belongs to."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from swapio_mdraid import Bitmap

from swapio.area import PageBuffer, SwapArea
from swapio.plugins import PluginHost
from tests.mdraid.helpers import MirrorFiles, create_mirror, mirror_of, page, spy_leg_writes


async def test_write_back_file_legs_are_written_by_the_file_backends_inline_step(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    done: list[int] = []
    for leg in mirror.legs:
        real = leg.inline
        assert real is not None

        def counted(offset: int, pages: Sequence[PageBuffer], real: Any = real) -> bool:
            ok: bool = real(offset, pages)
            done.append(ok)
            return ok

        leg.inline = counted
    await area.write(7, page(5))
    assert done == [True, True]
    for leg in mirror.legs:
        assert bytes(await leg.area.read(7)) == page(5)
    await area.deactivate()


async def test_a_leg_write_the_inline_step_declines_goes_through_the_hook(
    host: PluginHost, files: MirrorFiles
) -> None:
    """InlinePath says no (owner thread busy, a stall back-off): the file backend's hook
    then hands the write to the owner thread."""
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    for leg in mirror.legs:
        leg.inline = lambda offset, pages: False
    await area.write(9, page(6))
    for path in files.legs:
        assert path.read_bytes()[9 * 4096 : 10 * 4096] == page(6)
    await area.deactivate()


async def test_a_file_leg_served_by_other_hooks_is_not_written_inline(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    hooked: list[int] = []

    async def spy(leg: SwapArea, slot: int, pages: object, real: Any) -> None:
        hooked.append(slot)
        await real(leg, slot, pages)

    spy_leg_writes(mirror.legs[1].area, spy)
    await area.write(4, page(2))
    assert hooked == [4]
    assert files.legs[1].read_bytes()[4 * 4096 : 5 * 4096] == page(2)
    await area.deactivate()


async def test_a_leg_write_is_counted_in_flight_on_the_leg(
    host: PluginHost, files: MirrorFiles
) -> None:
    """So the leg's own deactivate would drain it, on the inline step and the hook alike."""
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    seen: list[int] = []
    inline_leg, hooked_leg = mirror.legs
    real = inline_leg.inline
    assert real is not None

    def counted(offset: int, pages: Sequence[PageBuffer]) -> bool:
        seen.append(inline_leg.area.inflight)
        ok: bool = real(offset, pages)
        return ok

    inline_leg.inline = counted

    async def spy(leg: SwapArea, slot: int, pages: object, real: Any) -> None:
        seen.append(leg.inflight)
        await real(leg, slot, pages)

    spy_leg_writes(hooked_leg.area, spy)
    await area.write(1, page(3))
    assert seen == [1, 1]
    assert inline_leg.area.inflight == hooked_leg.area.inflight == 0
    await area.deactivate()


async def test_a_leg_that_is_no_longer_active_is_failed_and_its_chunks_keep_their_bits(
    host: PluginHost, files: MirrorFiles
) -> None:
    area = await create_mirror(host, files)
    mirror = mirror_of(area)
    await mirror.legs[1].area.deactivate()
    await area.write(20, page(8))  # chunk 1 (16 pages of 4 KiB per 64 KiB chunk)
    assert mirror.legs[1].faulty
    assert not mirror.legs[0].faulty
    assert bytes(await mirror.legs[0].area.read(20)) == page(8)
    for _ in range(3):
        await mirror.sweep()
    assert Bitmap.decode(files.bitmap.read_bytes()).test(1)  # kept for the re-add
    await area.deactivate()
