"""The log: mount (with and without summaries), never-stale reads, corruption, GC, wear."""

from __future__ import annotations

import hashlib
import os
import random
import struct
from pathlib import Path

import pytest
from swapio_flashlog._nodes import crc32
from swapio_flashlog.device import FlashDevice, Geometry, sidecar_path
from swapio_flashlog.errors import DataIntegrityError, ImageFormatError
from swapio_flashlog.log import BlockState, FlashLog, LogOptions

PAGE = 4096


def page(tag: int) -> bytes:
    return hashlib.blake2b(str(tag).encode(), digest_size=64).digest() * (PAGE // 64)


def make(
    tmp_path: Path,
    blocks: int = 16,
    options: LogOptions | None = None,
    pages: int = 64,
    bad: tuple[int, ...] = (),
) -> tuple[FlashLog, int]:
    log = FlashLog.format(str(tmp_path / "f.img"), Geometry(blocks * 65536, 65536), options, bad)
    return log, log.create_file("/swapfile", pages * PAGE)


def read(log: FlashLog, ino: int, slot: int) -> bytes:
    out = bytearray(PAGE)
    log.read(ino, slot * PAGE, memoryview(out))
    return bytes(out)


def digest(path: Path) -> str:
    h = hashlib.sha256(path.read_bytes())
    h.update(Path(sidecar_path(str(path))).read_bytes())
    return h.hexdigest()


def assert_accounting(log: FlashLog) -> None:
    """Each block's live bytes are exactly the nodes still referenced."""
    log.build_index()
    for b in log.blocks:
        assert b.live == sum(r.length for r in b.nodes if r.refs > 0), b.index
        assert b.used == sum(r.length for r in b.nodes), b.index


def churn(log: FlashLog, ino: int, pages: int, writes: int, seed: int) -> dict[int, bytes]:
    rng = random.Random(seed)
    model = {}
    for i in range(writes):
        slot = rng.randrange(pages)
        model[slot] = page(i * 1000 + slot)
        log.write(ino, slot * PAGE, model[slot])
    return model


@pytest.mark.parametrize("summaries", [True, False])
def test_remount_rebuilds_the_newest_view(tmp_path: Path, summaries: bool) -> None:
    log, ino = make(tmp_path, options=LogOptions(summaries=summaries))
    model = churn(log, ino, 64, 400, seed=1)
    log.discard(ino, 5 * PAGE, PAGE)
    model[5] = bytes(PAGE)
    log.close()
    log = FlashLog.open(str(tmp_path / "f.img"), options=LogOptions(summaries=summaries))
    ino = log.lookup("/swapfile")
    for slot in range(64):
        assert read(log, ino, slot) == model.get(slot, bytes(PAGE))
    assert_accounting(log)
    log.close()


def test_mount_with_summaries_reads_only_block_tails(tmp_path: Path) -> None:
    log, ino = make(tmp_path)
    churn(log, ino, 64, 300, seed=2)
    log.close()
    counted = {"bytes": 0}
    original = FlashDevice.read

    def counting(self: FlashDevice, offset: int, length: int) -> bytes:
        counted["bytes"] += length
        return original(self, offset, length)

    FlashDevice.read = counting  # type: ignore[method-assign]
    try:
        FlashLog.open(str(tmp_path / "f.img"), readonly=True).close()
        with_summaries = counted["bytes"]
        counted["bytes"] = 0
        FlashLog.open(
            str(tmp_path / "f.img"), options=LogOptions(summaries=False), readonly=True
        ).close()
        full = counted["bytes"]
    finally:
        FlashDevice.read = original  # type: ignore[method-assign]
    assert full >= 8 * 65536
    assert with_summaries * 5 < full


def test_a_damaged_newest_node_raises_instead_of_returning_an_older_one(
    tmp_path: Path,
) -> None:
    log, ino = make(tmp_path)
    log.write(ino, 3 * PAGE, page(1))  # the older version stays on flash
    for i in range(40):  # push the newest version of slot 3 into a closed, summarized block
        log.write(ino, (10 + i % 20) * PAGE, page(100 + i))
        if i == 0:
            log.write(ino, 3 * PAGE, page(2))
    log.close()
    log = FlashLog.open(str(tmp_path / "f.img"))
    ino = log.lookup("/swapfile")
    newest = log.file(ino).chunks[3][-1]
    assert log.blocks[newest.block].summarized
    log.device.flip_bit(newest.offset + 100, 3)  # a retention error in the data
    with pytest.raises(DataIntegrityError, match="refusing to return older data"):
        read(log, ino, 3)
    assert log.blocks[newest.block].pinned == 1  # GC will not erase the evidence
    log.write(ino, 3 * PAGE, page(3))  # a new write supersedes the damaged node
    assert read(log, ino, 3) == page(3)
    assert log.blocks[newest.block].pinned == 0
    log.close()


@pytest.mark.parametrize("pages_only", [True, False], ids=["data-block", "with-dirent"])
@pytest.mark.parametrize("where", [100, 30, 8], ids=["data_crc", "node_crc", "hdr_crc"])
def test_gc_copies_the_intact_nodes_before_a_damaged_one_and_keeps_it_pinned(
    tmp_path: Path, where: int, pages_only: bool
) -> None:
    log, ino = make(tmp_path)
    model = {slot: page(slot) for slot in range(64)}
    for slot, data in model.items():
        log.write(ino, slot * PAGE, data)
    # a block of page nodes only (checked column-wise), or the first block, which also holds
    # the file's hole node and its dirent (checked node by node)
    victim = next(
        b
        for b in log.blocks
        if b.state is BlockState.FULL and all(r.dsize == PAGE for r in b.nodes) == pages_only
    )
    live = [r for r in victim.nodes if r.refs > 0 and r.dsize == PAGE]
    assert len(live) > 3
    damaged = live[2]
    slots = [r.foff // PAGE for r in live]
    live = [r for r in victim.nodes if r.refs > 0]
    moved = live.index(damaged)
    log.device.flip_bit(damaged.offset + where, 1)  # a retention error, not yet read
    if where == 8:  # only hdr_crc wrong: node_crc made to match the damaged header again
        head = log.device.read(damaged.offset, 68)
        crc = struct.pack("<I", crc32(head[:60]))  # the kernel's crc32
        for i in range(32):
            if (head[64 + i // 8] ^ crc[i // 8]) >> (i % 8) & 1:
                log.device.flip_bit(damaged.offset + 64 + i // 8, i % 8)
    log._collect(victim)
    assert victim.state is BlockState.FULL  # not erased: the evidence stays
    assert victim.pinned == 1
    assert damaged.poisoned
    stayed = [r.block == victim.index for r in live]
    assert stayed == [False] * moved + [True] * (len(live) - moved)
    assert log._pick_victim(wear_levelling=False) is not victim
    with pytest.raises(DataIntegrityError, match="refusing to return older data"):
        read(log, ino, slots[2])
    for slot in slots[:2] + slots[3:]:
        assert read(log, ino, slot) == model[slot]
    assert_accounting(log)
    log.close()


def test_corruption_inside_a_scanned_block_refuses_the_mount_untouched(
    tmp_path: Path,
) -> None:
    log, ino = make(tmp_path, options=LogOptions(summaries=False))
    churn(log, ino, 64, 30, seed=3)
    victim = next(r for r in log.blocks[0].nodes if r.dsize == PAGE)
    log.close()
    image = tmp_path / "f.img"
    with open(image, "r+b") as f:
        f.seek(victim.offset + 200)
        byte = f.read(1)
        f.seek(victim.offset + 200)
        f.write(bytes([byte[0] ^ 0x10]))
    before = digest(image)
    with pytest.raises(ImageFormatError, match="corrupt data at 0x"):
        FlashLog.open(str(image), options=LogOptions(summaries=False))
    assert digest(image) == before


def test_wrong_erase_block_size_is_refused(tmp_path: Path) -> None:
    log, ino = make(tmp_path, options=LogOptions(summaries=False))
    churn(log, ino, 64, 60, seed=4)
    log.close()
    image = tmp_path / "f.img"
    os.unlink(sidecar_path(str(image)))
    before = image.read_bytes()
    with pytest.raises(ImageFormatError, match="erase-block"):
        FlashLog.open(str(image), Geometry(16 * 65536, 131072))
    with pytest.raises(ImageFormatError, match="erase-block|JFFS2 node"):
        FlashLog.open(str(image), Geometry(16 * 65536, 32768))
    assert image.read_bytes() == before


def test_gc_keeps_a_full_log_writable(tmp_path: Path) -> None:
    log = FlashLog.format(str(tmp_path / "f.img"), Geometry(12 * 65536, 65536))
    pages = log.capacity_chunks()
    ino = log.create_file("/swapfile", pages * PAGE)
    model = churn(log, ino, pages, pages * 6, seed=5)
    assert log.gc_steps > 20
    assert_accounting(log)
    assert len(log.free_blocks()) >= 1
    for slot, data in model.items():
        assert read(log, ino, slot) == data
    log.close()


def test_greedy_collects_the_dirtiest_block(tmp_path: Path) -> None:
    log, ino = make(tmp_path, pages=150)
    for slot in range(150):
        log.write(ino, slot * PAGE, page(slot))
    for slot in range(15, 30):  # obsolete most of one block
        log.write(ino, slot * PAGE, page(1000 + slot))
    full = [b for b in log.blocks if b.state is BlockState.FULL]
    dirtiest = min(full, key=lambda b: b.live)
    victim = log._pick_victim(wear_levelling=False)
    assert victim is dirtiest
    log.close()


def test_wear_levelling_moves_cold_data(tmp_path: Path) -> None:
    spreads = {}
    for delta in (4, 10**6):
        path = tmp_path / f"w{delta}"
        path.mkdir()
        log, ino = make(path, blocks=16, pages=120, options=LogOptions(wl_min_delta=delta))
        for slot in range(120):
            log.write(ino, slot * PAGE, page(slot))
        rng = random.Random(6)
        for i in range(3000):  # all writes go to 10 hot slots
            log.write(ino, rng.randrange(10) * PAGE, page(i))
        counts = log.device.erase_counts()
        spreads[delta] = max(counts) - min(counts)
        for slot in range(10, 120):
            assert read(log, ino, slot) == page(slot)
        log.close()
    assert spreads[4] <= 4 + 2
    assert spreads[10**6] > 3 * spreads[4]


def test_bad_blocks_are_never_used(tmp_path: Path) -> None:
    log, ino = make(tmp_path, bad=(2, 7))
    model = churn(log, ino, 64, 600, seed=7)
    assert log.device.erase_count(2) == log.device.erase_count(7) == 0
    assert log.device.read(2 * 65536, 65536) == b"\xff" * 65536
    for slot, data in model.items():
        assert read(log, ino, slot) == data
    log.close()


def test_a_block_failing_its_erase_is_retired_without_data_loss(tmp_path: Path) -> None:
    log, ino = make(tmp_path)
    model = churn(log, ino, 64, 200, seed=8)
    victim = log._pick_victim(wear_levelling=False)
    assert victim is not None
    log.device.mark_bad(victim.index)  # the erase after relocation will fail
    log._collect(victim)
    assert victim.state is BlockState.BAD
    model.update(churn(log, ino, 64, 300, seed=9))
    for slot, data in model.items():
        assert read(log, ino, slot) == data
    log.close()


def test_jffs2_policy_also_works(tmp_path: Path) -> None:
    log, ino = make(tmp_path, options=LogOptions(policy="jffs2", seed=3))
    model = churn(log, ino, 64, 800, seed=10)
    assert log.gc_steps > 0
    for slot, data in model.items():
        assert read(log, ino, slot) == data
    log.close()


def test_background_gc_is_wanted_only_when_space_runs_low(tmp_path: Path) -> None:
    log, ino = make(tmp_path, pages=100)
    assert not log.gc_wanted()
    churn(log, ino, 100, 700, seed=11)
    steps = 0
    while log.gc_wanted():
        assert log.gc_step()
        steps += 1
    assert steps > 0
    assert not log.gc_wanted()
    log.close()


def test_remounting_resumes_the_write_heads_and_wastes_no_space(tmp_path: Path) -> None:
    log, ino = make(tmp_path)
    log.write(ino, 0, page(0))
    log.close()
    for i in range(1, 12):  # a dd-style user: mount, write one page, unmount
        log = FlashLog.open(str(tmp_path / "f.img"))
        log.write(log.lookup("/swapfile"), i * PAGE, page(i))
        log.close()
    log = FlashLog.open(str(tmp_path / "f.img"))
    assert sum(log.device.erase_counts()) == 0  # no GC was needed
    assert sum(1 for b in log.blocks if b.nodes) == 1  # all 12 pages in one block
    ino = log.lookup("/swapfile")
    for i in range(12):
        assert read(log, ino, i) == page(i)
    log.close()
