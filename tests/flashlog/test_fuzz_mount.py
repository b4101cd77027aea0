"""Damaged images: mount and reads fail with swapio errors only, and never write."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from swapio_flashlog.device import Geometry, sidecar_path
from swapio_flashlog.log import FlashLog, LogOptions

from swapio.errors import SwapioError

SIZE = 8 * 8192


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "base.img"
    log = FlashLog.format(str(path), Geometry(SIZE, 8192))
    ino = log.create_file("/swapfile", 12 * 512)
    for i in range(60):
        log.write(ino, (i % 12) * 512, bytes([i + 1]) * 512)
    log.close()
    return path


def damaged(base: Path, work: Path, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(base.read_bytes())
    for offset, value in edits:
        data[offset % SIZE] ^= value or 1
    if cut is not None:
        data = data[: cut % SIZE]
    work.write_bytes(bytes(data))
    shutil.copyfile(sidecar_path(str(base)), sidecar_path(str(work)))
    return hashlib.sha256(bytes(data)).digest()


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    edits=st.lists(st.tuples(st.integers(0, SIZE - 1), st.integers(0, 255)), max_size=6),
    cut=st.one_of(st.none(), st.integers(1, SIZE - 1)),
    summaries=st.booleans(),
)
def test_damaged_image_fails_cleanly_and_is_not_written_when_refused(
    base: Path, tmp_path: Path, edits: list[tuple[int, int]], cut: int | None, summaries: bool
) -> None:
    work = tmp_path / "work.img"
    before = damaged(base, work, edits, cut)
    try:
        log = FlashLog.open(str(work), options=LogOptions(summaries=summaries))
    except SwapioError:
        assert hashlib.sha256(work.read_bytes()).digest() == before
        return
    try:
        ino = log.lookup("/swapfile")
        out = bytearray(512)
        for slot in range(12):
            try:
                log.read(ino, slot * 512, memoryview(out))
            except SwapioError:
                continue
            assert out[0] in range(1, 61) or out == bytes(512)
        for slot in range(12):  # a mounted image takes writes, and they read back
            log.write(ino, slot * 512, bytes([0xC0 + slot]) * 512)
        for slot in range(12):
            log.read(ino, slot * 512, memoryview(out))
            assert out == bytes([0xC0 + slot]) * 512
    except SwapioError:
        pass
    finally:
        log.close()
