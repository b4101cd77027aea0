"""The flash simulator: NOR rules, wear sidecar, bad blocks, power cuts, bit flips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from swapio_flashlog.device import FlashDevice, Geometry, PowerLossMode, sidecar_path
from swapio_flashlog.errors import (
    BadBlockError,
    FlashProgramError,
    ImageFormatError,
    PowerLoss,
)

from swapio.errors import AreaExistsError

GEOMETRY = Geometry(8 * 4096, 4096, 4)


@pytest.fixture
def dev(tmp_path: Path) -> FlashDevice:
    return FlashDevice.format(str(tmp_path / "f.img"), GEOMETRY)


@pytest.mark.parametrize(
    ("size", "eb", "wu", "match"),
    [
        (5 * 4096 + 1, 4096, 4, "multiple of the erase block"),
        (4 * 4096, 4096, 4, "at least 5"),
        (6 * 3000, 3000, 4, "power of two"),
        (8 * 4096, 4096, 3, "write unit"),
    ],
)
def test_bad_geometry_is_refused(size: int, eb: int, wu: int, match: str) -> None:
    with pytest.raises(ImageFormatError, match=match):
        Geometry(size, eb, wu)


def test_a_new_image_is_erased(dev: FlashDevice) -> None:
    assert dev.read(0, GEOMETRY.size) == b"\xff" * GEOMETRY.size
    assert dev.erase_counts() == [0] * 8


def test_format_never_overwrites(dev: FlashDevice, tmp_path: Path) -> None:
    with pytest.raises(AreaExistsError):
        FlashDevice.format(str(tmp_path / "f.img"), GEOMETRY)


def test_program_then_read(dev: FlashDevice) -> None:
    dev.program(8, b"\x12\x34\x56\x78")
    assert dev.read(4, 12) == b"\xff" * 4 + b"\x12\x34\x56\x78" + b"\xff" * 4


def test_programming_a_unit_twice_without_erase_is_an_error(dev: FlashDevice) -> None:
    dev.program(8, b"\xff\xff\x00\xff")
    with pytest.raises(FlashProgramError, match="already programmed"):
        dev.program(8, b"\x00\xff\x00\xff")  # would only clear bits, still refused
    dev.erase(0)
    dev.program(8, b"\x00\xff\x00\xff")


def test_a_unit_programmed_before_reopen_counts_as_programmed(
    dev: FlashDevice, tmp_path: Path
) -> None:
    dev.program(8, b"\x00\x00\x00\x00")
    dev.close()
    again = FlashDevice.open(str(tmp_path / "f.img"))
    with pytest.raises(FlashProgramError, match="already programmed"):
        again.program(8, b"\x00\x00\x00\x00")


def test_programming_cannot_set_bits(dev: FlashDevice) -> None:
    dev.flip_bit(16, 0)  # a stuck-at-0 bit in erased flash
    with pytest.raises(FlashProgramError, match="0 to 1"):
        dev.program(16, b"\xff\xff\xff\xff")


def test_program_may_not_cross_an_erase_block(dev: FlashDevice) -> None:
    with pytest.raises(FlashProgramError, match="crosses the erase-block boundary"):
        dev.program(4096 - 4, b"\x00" * 8)


def test_program_must_be_whole_write_units(dev: FlashDevice) -> None:
    with pytest.raises(FlashProgramError, match="write units"):
        dev.program(2, b"\x00\x00\x00\x00")


def test_erase_counts_persist_in_the_sidecar(dev: FlashDevice, tmp_path: Path) -> None:
    for _ in range(3):
        dev.erase(2)
    dev.erase(5)
    dev.close()
    again = FlashDevice.open(str(tmp_path / "f.img"))
    assert again.erase_counts() == [0, 0, 3, 0, 0, 1, 0, 0]
    assert os.path.getsize(sidecar_path(str(tmp_path / "f.img"))) > 0


def test_bad_blocks_refuse_program_and_erase(tmp_path: Path) -> None:
    dev = FlashDevice.format(str(tmp_path / "b.img"), GEOMETRY, bad_blocks=(3,))
    assert dev.is_bad(3)
    with pytest.raises(BadBlockError):
        dev.program(3 * 4096, b"\x00" * 4)
    with pytest.raises(BadBlockError):
        dev.erase(3)
    dev.mark_bad(4)
    dev.close()
    assert FlashDevice.open(str(tmp_path / "b.img")).is_bad(4)


def test_sidecar_geometry_mismatch_is_refused(dev: FlashDevice, tmp_path: Path) -> None:
    dev.close()
    with pytest.raises(ImageFormatError, match="sidecar says"):
        FlashDevice.open(str(tmp_path / "f.img"), Geometry(8 * 4096, 4096, 8))


def test_truncated_image_is_refused(dev: FlashDevice, tmp_path: Path) -> None:
    dev.close()
    os.truncate(tmp_path / "f.img", 7 * 4096)
    with pytest.raises(ImageFormatError, match="truncated"):
        FlashDevice.open(str(tmp_path / "f.img"))


def test_power_cut_leaves_a_prefix_of_the_program_and_kills_the_device(
    dev: FlashDevice,
) -> None:
    dev.arm_power_cut(2, PowerLossMode.PREFIX, seed=5)
    dev.program(0, b"\x00" * 16)
    with pytest.raises(PowerLoss):
        dev.program(16, b"\x00" * 64)
    written = dev._pread(16, 64)
    assert written.count(0) < 64
    assert written == b"\x00" * written.count(0) + b"\xff" * (64 - written.count(0))
    with pytest.raises(PowerLoss):
        dev.read(0, 4)


def test_somebits_power_cut_leaves_a_partly_programmed_byte(tmp_path: Path) -> None:
    partial = 0
    for seed in range(40):
        dev = FlashDevice.format(str(tmp_path / f"s{seed}.img"), GEOMETRY)
        dev.arm_power_cut(1, PowerLossMode.SOMEBITS, seed=seed)
        with pytest.raises(PowerLoss):
            dev.program(0, b"\x00" * 64)
        partial += any(b not in (0x00, 0xFF) for b in dev._pread(0, 64))
        dev.close()
    assert partial > 0


def test_power_cut_during_erase_erases_only_a_prefix(dev: FlashDevice) -> None:
    dev.program(4096, b"\x00" * 4096)
    dev.arm_power_cut(1, PowerLossMode.PREFIX, seed=3)
    with pytest.raises(PowerLoss):
        dev.erase(1)
    block = dev._pread(4096, 4096)
    kept = block.count(0xFF)
    assert 0 <= kept < 4096
    assert block == b"\xff" * kept + b"\x00" * (4096 - kept)


def test_noop_power_cut_changes_nothing(dev: FlashDevice) -> None:
    dev.arm_power_cut(1, PowerLossMode.NOOP)
    with pytest.raises(PowerLoss):
        dev.program(0, b"\x00" * 8)
    assert dev._pread(0, 8) == b"\xff" * 8


MARKER = b"\x85\x19\x03\x20\x0c\x00\x00\x00\xb1\xb0\x1e\xe4"


def test_erase_with_a_marker_is_an_erase_then_a_program(dev: FlashDevice) -> None:
    dev.program(4096, b"\x00" * 64)
    ops, programmed = dev.ops, dev.programmed_bytes
    dev.erase(1, MARKER)
    assert dev.read(4096, 4096) == MARKER + b"\xff" * (4096 - len(MARKER))
    assert dev.ops == ops + 2  # two operations, as power cuts count them
    assert dev.programmed_bytes == programmed + len(MARKER)
    assert dev.erase_counts()[1] == 1
    with pytest.raises(FlashProgramError, match="already programmed"):
        dev.program(4096, b"\x00" * 4)  # the marker's units count as programmed
    dev.program(4096 + len(MARKER), b"\x00" * 4)  # the rest is erased


def test_a_power_cut_at_the_marker_leaves_the_block_erased_without_it(
    dev: FlashDevice,
) -> None:
    dev.program(4096, b"\x00" * 64)
    dev.arm_power_cut(2, PowerLossMode.PREFIX, seed=1)
    with pytest.raises(PowerLoss):
        dev.erase(1, MARKER)
    raw = (Path(dev.path).read_bytes())[4096:8192]
    assert raw[len(MARKER) :] == b"\xff" * (4096 - len(MARKER))
    assert raw[: len(MARKER)] != MARKER  # a prefix of it at most
