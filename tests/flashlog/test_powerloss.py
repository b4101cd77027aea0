"""littlefs-style power-loss testing of the log.

A workload runs against a copy of a freshly created image while the flash simulator cuts
power during the N-th program or erase (part-way: a random prefix, a byte with only some
bits programmed, or nothing).  The image is then re-mounted (recovery runs) and checked:

* every write that completed reads back its content;
* a slot whose write was in flight reads either its previous or its new content — never
  anything older than its last completed write;
* the image is writable afterwards and ``jffs2dump -c`` reports no ``Wrong`` line.

Small workload: every operation is cut (exhaustive).  Larger workload: a seeded sample,
including a second cut during the recovery itself.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from swapio_flashlog.device import Geometry, PowerLossMode, sidecar_path
from swapio_flashlog.errors import PowerLoss
from swapio_flashlog.log import FlashLog, LogOptions

MODES = (PowerLossMode.PREFIX, PowerLossMode.SOMEBITS, PowerLossMode.NOOP)


@dataclass(frozen=True)
class Op:
    slot: int
    data: bytes | None  # None: discard


def workload(pages: int, page_size: int, steps: int, seed: int) -> list[Op]:
    rng = random.Random(seed)
    ops = []
    for i in range(steps):
        slot = rng.randrange(pages)
        if i % 17 == 16:
            ops.append(Op(slot, None))
        elif i % 11 == 10:
            ops.append(Op(slot, bytes(page_size)))
        else:
            ops.append(Op(slot, bytes([i % 251 + 1]) * page_size))
    return ops


@dataclass
class Scenario:
    base: Path
    work: Path
    geometry: Geometry
    pages: int
    page_size: int
    ops: list[Op]
    initial: dict[int, bytes]
    options: LogOptions = field(default_factory=LogOptions)

    def fresh(self) -> FlashLog:
        shutil.copyfile(self.base, self.work)
        shutil.copyfile(sidecar_path(str(self.base)), sidecar_path(str(self.work)))
        return FlashLog.open(str(self.work), options=self.options)

    def apply(self, log: FlashLog, model: dict[int, bytes], inflight: list[Op]) -> None:
        ino = log.lookup("/swapfile")
        model.update(self.initial)
        for op in self.ops:
            inflight[:] = [op]
            if op.data is None:
                log.discard(ino, op.slot * self.page_size, self.page_size)
                model[op.slot] = bytes(self.page_size)
            else:
                log.write(ino, op.slot * self.page_size, op.data)
                model[op.slot] = op.data
            inflight.clear()

    def total_ops(self) -> int:
        log = self.fresh()
        start = log.device.ops
        self.apply(log, {}, [])
        used = log.device.ops - start
        log.close()
        return used

    def run_with_cut(
        self, cut: int, mode: PowerLossMode, seed: int, recovery_cut: int | None = None
    ) -> None:
        log = self.fresh()
        log.device.arm_power_cut(cut, mode, seed)
        model: dict[int, bytes] = {}
        inflight: list[Op] = []
        with pytest.raises(PowerLoss):
            self.apply(log, model, inflight)
        log.device.close()
        if recovery_cut is not None:
            self._cut_recovery(recovery_cut, seed)
        log = FlashLog.open(str(self.work), options=self.options)  # mount + recovery
        try:
            self.check(log, model, inflight)
            log.build_index()
            for b in log.blocks:  # space accounting survived the cut
                assert b.live == sum(r.length for r in b.nodes if r.refs > 0)
            ino = log.lookup("/swapfile")
            for slot in range(0, self.pages, 3):  # still writable
                log.write(ino, slot * self.page_size, bytes([0xA5]) * self.page_size)
                model[slot] = bytes([0xA5]) * self.page_size
            self.check(log, model, [])
        finally:
            log.close()
        out = subprocess.run(
            ["jffs2dump", "-c", str(self.work)], check=True, capture_output=True, text=True
        ).stdout
        wrong = [line for line in out.splitlines() if line.startswith("Wrong")]
        assert wrong == [], (cut, mode, wrong[:3])

    def _cut_recovery(self, cut: int, seed: int) -> None:
        """Cut power again while the re-mount is recovering (if it does that much work)."""
        device_ops: list[int] = []
        original = FlashLog._recover

        def recover_with_cut(log: FlashLog) -> None:
            device_ops.append(log.device.ops)
            log.device.arm_power_cut(cut, PowerLossMode.PREFIX, seed)
            original(log)

        FlashLog._recover = recover_with_cut  # type: ignore[method-assign,assignment]
        try:
            log = FlashLog.open(str(self.work), options=self.options)
            log.device.disarm()
            log.close()
        except PowerLoss:
            pass
        finally:
            FlashLog._recover = original  # type: ignore[method-assign]

    def check(self, log: FlashLog, model: dict[int, bytes], inflight: list[Op]) -> None:
        ino = log.lookup("/swapfile")
        out = bytearray(self.page_size)
        for slot in range(self.pages):
            log.read(ino, slot * self.page_size, memoryview(out))
            expected = model.get(slot, bytes(self.page_size))
            allowed = {expected}
            for op in inflight:
                if op.slot == slot:
                    allowed.add(bytes(self.page_size) if op.data is None else op.data)
            assert bytes(out) in allowed, f"slot {slot}: stale or wrong content"
            # a cut write may have reached flash whole (e.g. only its padding was cut):
            # from now on the slot must keep whichever content it showed
            model[slot] = bytes(out)


def make_scenario(
    tmp: Path,
    geometry: Geometry,
    pages: int,
    page_size: int,
    steps: int,
    seed: int,
    options: LogOptions | None = None,
    bad_blocks: tuple[int, ...] = (),
) -> Scenario:
    options = options or LogOptions()
    base = tmp / "base.img"
    log = FlashLog.format(str(base), geometry, options, bad_blocks)
    ino = log.create_file("/swapfile", pages * page_size, page_size)
    # a first generation of every slot, completed before any cut
    for slot in range(pages):
        log.write(ino, slot * page_size, bytes([0x10 + slot % 200]) * page_size)
    log.close()
    ops = workload(pages, page_size, steps, seed)
    initial = {slot: bytes([0x10 + slot % 200]) * page_size for slot in range(pages)}
    return Scenario(base, tmp / "work.img", geometry, pages, page_size, ops, initial, options)


@pytest.fixture
def small(tmp_path: Path) -> Scenario:
    return make_scenario(
        tmp_path, Geometry(8 * 8192, 8192), pages=12, page_size=512, steps=160, seed=1
    )


def test_workload_alone_garbage_collects(small: Scenario) -> None:
    log = small.fresh()
    small.apply(log, {}, [])
    assert log.gc_steps > 3
    log.close()


def test_power_cut_at_every_operation_of_a_small_workload(small: Scenario) -> None:
    total = small.total_ops()
    assert total > 150
    for cut in range(1, total + 1):
        for mode in MODES:
            small.run_with_cut(cut, mode, seed=cut)


def test_power_cuts_sampled_in_a_larger_workload_and_during_recovery(tmp_path: Path) -> None:
    s = make_scenario(
        tmp_path, Geometry(16 * 65536, 65536), pages=100, page_size=4096, steps=500, seed=2
    )
    total = s.total_ops()
    rng = random.Random(2024)
    for i, cut in enumerate(sorted(rng.sample(range(1, total + 1), 60))):
        recovery_cut = rng.randrange(1, 40) if i % 2 else None
        s.run_with_cut(cut, MODES[i % 3], seed=i, recovery_cut=recovery_cut)


def test_power_cut_at_every_operation_without_summaries_or_cleanmarkers(tmp_path: Path) -> None:
    """The other on-flash layout: no summaries, no cleanmarkers, 16-byte write units."""
    s = make_scenario(
        tmp_path,
        Geometry(8 * 8192, 8192, 16),
        pages=12,
        page_size=512,
        steps=160,
        seed=3,
        options=LogOptions(summaries=False, cleanmarkers=False),
    )
    total = s.total_ops()
    assert total > 150
    for cut in range(1, total + 1):
        s.run_with_cut(cut, MODES[cut % 3], seed=cut)


def test_power_cuts_with_bad_blocks_on_the_chip(tmp_path: Path) -> None:
    s = make_scenario(
        tmp_path,
        Geometry(12 * 8192, 8192),
        pages=12,
        page_size=512,
        steps=200,
        seed=4,
        bad_blocks=(1, 6),
    )
    total = s.total_ops()
    rng = random.Random(7)
    for i, cut in enumerate(sorted(rng.sample(range(1, total + 1), 40))):
        s.run_with_cut(cut, MODES[i % 3], seed=i)
    log = FlashLog.open(str(s.work))
    assert log.device.erase_count(1) == log.device.erase_count(6) == 0
    log.close()


# --- batched programs: a request's pages go out in one program per erase block -----------


@dataclass(frozen=True)
class Batch:
    slot: int
    pages: tuple[bytes, ...]


def batched_workload(pages: int, page_size: int, steps: int, seed: int, width: int) -> list[Batch]:
    rng = random.Random(seed)
    batches = []
    for i in range(steps):
        n = rng.randrange(1, width + 1)
        slot = rng.randrange(pages - n + 1)
        batches.append(
            Batch(
                slot,
                tuple(
                    bytes(page_size)
                    if (i + k) % 5 == 4
                    else bytes([(7 * i + k) % 251 + 1]) * page_size
                    for k in range(n)
                ),
            )
        )
    return batches


@dataclass
class BatchedScenario(Scenario):
    """Multi-page requests through :meth:`FlashLog.write_pages` (the swap-out path)."""

    batches: list[Batch] = field(default_factory=list)

    def apply(self, log: FlashLog, model: dict[int, bytes], inflight: list[Op]) -> None:
        ino = log.lookup("/swapfile")
        model.update(self.initial)
        for batch in self.batches:
            inflight[:] = [Op(batch.slot + k, page) for k, page in enumerate(batch.pages)]
            log.write_pages(ino, batch.slot * self.page_size, batch.pages)
            for op in inflight:
                assert op.data is not None
                model[op.slot] = op.data
            inflight.clear()


def make_batched(
    tmp: Path, geometry: Geometry, pages: int, page_size: int, steps: int, width: int
) -> BatchedScenario:
    s = make_scenario(tmp, geometry, pages, page_size, steps=0, seed=0)
    return BatchedScenario(
        s.base,
        s.work,
        geometry,
        pages,
        page_size,
        [],
        s.initial,
        batches=batched_workload(pages, page_size, steps, seed=5, width=width),
    )


def test_a_batched_program_spans_several_nodes_and_blocks(tmp_path: Path) -> None:
    s = make_batched(
        tmp_path, Geometry(16 * 8192, 8192), pages=40, page_size=512, steps=60, width=12
    )
    log = s.fresh()
    start = log.device.ops
    s.apply(log, {}, [])
    programs = log.device.ops - start
    log.close()
    pages_written = sum(len(b.pages) for b in s.batches)
    assert programs < pages_written / 2  # many pages per program, not one program per page


def test_power_cut_inside_batched_programs_leaves_each_page_old_or_new(tmp_path: Path) -> None:
    """A cut part-way through a request's program: every page of the request reads back
    its previous or its new content, completed requests read back whole."""
    s = make_batched(
        tmp_path, Geometry(16 * 8192, 8192), pages=40, page_size=512, steps=60, width=12
    )
    total = s.total_ops()
    for cut in range(1, total + 1):
        s.run_with_cut(cut, MODES[cut % 3], seed=cut)


def test_a_page_larger_than_4k_reads_back_whole_after_a_cut(tmp_path: Path) -> None:
    """8 KiB pages: one node each, so a cut never leaves half the new page and half the old."""
    s = make_batched(
        tmp_path, Geometry(16 * 65536, 65536), pages=24, page_size=8192, steps=40, width=4
    )
    total = s.total_ops()
    for cut in range(1, total + 1):
        for seed in range(3):
            s.run_with_cut(cut, PowerLossMode.PREFIX, seed=cut * 10 + seed)
