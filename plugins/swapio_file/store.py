"""The blocking side of the file backend: one file descriptor, vectored I/O.

Everything here runs in a worker thread, one call per request (never per page): a request
of 64 pages is one ``os.pwritev`` (looping only on a short write), as aiosqlite lets one
owner do blocking work in batches.  Activation follows Linux ``swapon``: the store must be
exactly a whole number of pages and, for a regular file, have no holes (``nfs_swap_activate``
refuses ``i_blocks * 512 < i_size`` the same way), because a write into a hole would need
filesystem allocation — memory and metadata I/O — at the moment memory is short.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from swapio.area import PageBuffer
from swapio.errors import (
    AreaError,
    AreaExistsError,
    AreaFormatError,
    AreaNotFoundError,
    BackendIOError,
)

SECTOR = 512


@dataclass
class FileStore:
    """An open swap file or block device."""

    path: str
    fd: int
    page_size: int
    pages: int
    durable: bool
    block_device: bool
    read_only: bool = False

    def pwritev(self, offset: int, pages: Sequence[PageBuffer]) -> None:
        """Write ``pages`` at ``offset`` with as few ``pwritev`` calls as the kernel allows."""
        buffers: list[PageBuffer] = list(pages)
        total = len(buffers) * self.page_size
        try:
            done = os.pwritev(self.fd, buffers, offset)
            while done < total:  # short write: resume after the bytes that made it
                rest = memoryview(b"".join(memoryview(b).cast("B") for b in buffers))[done:]
                done += os.pwrite(self.fd, rest, offset + done)
            if self.durable:
                os.fdatasync(self.fd)
        except OSError as exc:
            raise BackendIOError(f"{self.path}: write at byte {offset} failed: {exc}") from exc

    def preadv(self, offset: int, views: Sequence[memoryview]) -> None:
        """Fill ``views`` from ``offset``; a short read is an error (the file shrank)."""
        total = len(views) * self.page_size
        try:
            done = os.preadv(self.fd, list(views), offset)
        except OSError as exc:
            raise BackendIOError(f"{self.path}: read at byte {offset} failed: {exc}") from exc
        if done != total:
            raise BackendIOError(
                f"{self.path}: short read at byte {offset} ({done} of {total} bytes); "
                "was the file truncated while active?"
            )

    def zero(self, offset: int, count: int) -> None:
        """Overwrite ``count`` pages from ``offset`` with zeros (discard keeps no holes)."""
        zero = bytes(self.page_size)
        self.pwritev(offset, [zero] * count)

    def close(self) -> None:
        """Flush (when durable) and close; idempotent."""
        if self.fd < 0:
            return
        try:
            if self.durable:
                os.fsync(self.fd)
        finally:
            os.close(self.fd)
            self.fd = -1


def _open_existing(path: str) -> tuple[int, bool]:
    """Open read-write; if only reading is allowed (permissions, immutable file, read-only
    mount), open read-only.  Returns ``(fd, read_only)``."""
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC), False
    except FileNotFoundError:
        raise AreaNotFoundError(f"{path}: no such file (use `swapio create` first)") from None
    except IsADirectoryError:
        raise AreaFormatError(f"{path}: is a directory, not a swap file") from None
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise BackendIOError(f"{path}: cannot open: {exc}") from exc
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), True
    except PermissionError:
        raise AreaError(f"{path}: permission denied (neither readable nor writable)") from None
    except OSError as exc:
        raise BackendIOError(f"{path}: cannot open: {exc}") from exc


def open_store(path: str, page_size: int, durable: bool) -> FileStore:
    """Open an existing swap file or block device and check it the way ``swapon`` does."""
    fd, read_only = _open_existing(path)
    try:
        st = os.fstat(fd)
        if stat.S_ISBLK(st.st_mode):
            size = os.lseek(fd, 0, os.SEEK_END)
            block = True
        elif stat.S_ISREG(st.st_mode):
            size = st.st_size
            block = False
            if st.st_blocks * SECTOR < size:
                raise AreaFormatError(
                    f"{path}: swapfile has holes ({st.st_blocks * SECTOR} of {size} bytes "
                    "allocated); preallocate it (e.g. `swapio create` or fallocate)"
                )
        else:
            raise AreaFormatError(f"{path}: not a regular file or block device")
        if size == 0 or size % page_size:
            raise AreaFormatError(
                f"{path}: size {size} bytes is not a positive multiple of the page size {page_size}"
            )
        return FileStore(path, fd, page_size, size // page_size, durable, block, read_only)
    except BaseException:
        os.close(fd)
        raise


def create_store(path: str, pages: int, page_size: int, durable: bool) -> FileStore:
    """Create a new, fully allocated swap file; never touches an existing file.

    The size is checked against the free space of the target filesystem first, and a
    failed allocation removes the file this call created.
    """
    size = pages * page_size
    _check_space(path, size)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise AreaExistsError(f"{path}: already exists; refusing to overwrite it") from None
    except FileNotFoundError:
        raise AreaNotFoundError(f"{path}: parent directory does not exist") from None
    except PermissionError:
        raise AreaError(f"{path}: permission denied creating it") from None
    except OSError as exc:
        raise BackendIOError(f"{path}: cannot create: {exc}") from exc
    try:
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _write_zeros(fd, size)  # filesystems without fallocate: allocate by writing
        os.fsync(fd)
    except (OSError, OverflowError) as exc:
        os.close(fd)
        os.unlink(path)
        raise BackendIOError(f"{path}: cannot allocate {size} bytes: {exc}") from exc
    os.close(fd)
    return open_store(path, page_size, durable)


def _check_space(path: str, size: int) -> None:
    parent = os.path.dirname(path) or "."
    try:
        st = os.statvfs(parent)
    except FileNotFoundError:
        raise AreaNotFoundError(f"{path}: parent directory does not exist") from None
    except OSError:
        return  # cannot tell: let the allocation itself decide
    free = st.f_bavail * st.f_frsize
    if size > free:
        raise AreaError(
            f"{path}: {size} bytes requested but only {free} bytes are free on that filesystem"
        )


def _write_zeros(fd: int, size: int) -> None:
    chunk = bytes(1 << 20)
    offset = 0
    while offset < size:
        offset += os.pwrite(fd, chunk[: min(len(chunk), size - offset)], offset)


#: ``copy_file_range`` errors that mean "not between these files" (another filesystem, a
#: block device, an old kernel): the copy then goes through a buffer.
_NO_RANGE_COPY = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})
_BOUNCE = 1 << 20


def copy_span(src: FileStore, offset: int, dst: FileStore, dest_offset: int, size: int) -> None:
    """Copy ``size`` bytes in the kernel (``copy_file_range(2)``, through a 1 MiB buffer where
    the kernel cannot copy between the two files); no ``fdatasync``: the caller decides when.
    Raises :class:`BackendIOError` naming both files and the byte that failed."""
    try:
        while size:
            try:
                done = os.copy_file_range(src.fd, dst.fd, size, offset, dest_offset)
            except OSError as exc:
                if exc.errno not in _NO_RANGE_COPY:
                    raise
                data = os.pread(src.fd, min(size, _BOUNCE), offset)
                done = os.pwrite(dst.fd, data, dest_offset) if data else 0
            if done == 0:
                raise BackendIOError(f"{src.path}: short copy at byte {offset}; file truncated?")
            offset, dest_offset, size = offset + done, dest_offset + done, size - done
    except BackendIOError:
        raise
    except OSError as exc:
        raise BackendIOError(
            f"copy {src.path} byte {offset} -> {dst.path} byte {dest_offset} failed: {exc}"
        ) from exc
