"""``swapio_file.store.copy_span``: the kernel copy shared by ``swap_copy`` and the mirror's
resync, its buffered fallback, and its errors."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from swapio_file.store import FileStore, copy_span, create_store

from swapio.errors import BackendIOError

PAGE = 4096


def _pair(tmp_path: Path) -> tuple[FileStore, FileStore]:
    src = create_store(str(tmp_path / "src"), 8, PAGE, durable=False)
    dst = create_store(str(tmp_path / "dst"), 8, PAGE, durable=False)
    os.pwrite(src.fd, bytes(range(256)) * 16 * 8, 0)
    return src, dst


def test_a_span_lands_at_its_destination_offset(tmp_path: Path) -> None:
    src, dst = _pair(tmp_path)
    copy_span(src, PAGE, dst, 3 * PAGE, 2 * PAGE)
    assert os.pread(dst.fd, 2 * PAGE, 3 * PAGE) == os.pread(src.fd, 2 * PAGE, PAGE)
    assert os.pread(dst.fd, PAGE, 0) == bytes(PAGE)


def test_files_the_kernel_cannot_copy_between_go_through_a_buffer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = _pair(tmp_path)

    def exdev(*_: object) -> int:
        raise OSError(errno.EXDEV, "cross-device")

    monkeypatch.setattr(os, "copy_file_range", exdev)
    copy_span(src, 0, dst, 0, 8 * PAGE)
    assert os.pread(dst.fd, 8 * PAGE, 0) == os.pread(src.fd, 8 * PAGE, 0)


def test_a_short_source_is_one_error_naming_the_file_and_byte(tmp_path: Path) -> None:
    src, dst = _pair(tmp_path)
    os.ftruncate(src.fd, 2 * PAGE)
    with pytest.raises(BackendIOError) as info:
        copy_span(src, 0, dst, 0, 4 * PAGE)
    assert str(info.value) == f"{src.path}: short copy at byte {2 * PAGE}; file truncated?"


def test_another_failure_names_both_files(tmp_path: Path) -> None:
    src, dst = _pair(tmp_path)
    os.close(dst.fd)
    with pytest.raises(BackendIOError, match=r"copy .*src byte 0 -> .*dst byte 0 failed"):
        copy_span(src, 0, dst, 0, PAGE)
