"""The image and sidecar files on disk (not the chip): opening, sizes, free space, names.

An image is opened without ever blocking (a FIFO is refused, not waited on), locked
exclusively (``flock``, like a mounted MTD device), created only where nothing exists
(``O_EXCL`` / hard links, never over a file), and formatted under a temporary name that
is published when complete (:func:`format_name`, :func:`move_new`), so a killed format
leaves nothing under the name asked for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import stat

from swapio.errors import (
    AreaError,
    AreaExistsError,
    AreaNotFoundError,
    BackendIOError,
    UsageError,
)
from swapio_flashlog.errors import ImageBusyError, ImageFormatError

SIDECAR_SUFFIX = ".flash"
MIN_BLOCKS = 5  # "Too few erase blocks" (fs/jffs2/fs.c)


def sidecar_path(image: str) -> str:
    """Where the chip state of ``image`` lives."""
    return image + SIDECAR_SUFFIX


def image_size(path: str) -> int:
    """Bytes in the image at ``path`` (a file or a block device); a clear error when missing."""
    fd = open_image(path, readonly=True)
    try:
        return fd_size(path, fd)
    finally:
        os.close(fd)


def open_image(path: str, *, readonly: bool) -> int:
    """Open an existing image without ever blocking: a FIFO (or a socket, a directory) is
    refused at once, as ``file://`` refuses it, instead of waiting in ``open()``."""
    if "\0" in path:
        raise UsageError(f"{path!r}: an image path cannot contain a NUL byte")
    flags = (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise AreaNotFoundError(f"{path}: no such flash image") from None
    except IsADirectoryError:
        raise ImageFormatError(f"{path}: is a directory, not a flash image") from None
    except OSError as exc:
        raise BackendIOError(f"{path}: cannot open: {exc.strerror or exc}", detail=exc) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
            raise ImageFormatError(f"{path}: not a regular file or a block device")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def pad_hint(path: str, size: int, erase_block: int) -> str:
    """How to pad an image written by ``mkfs.jffs2`` without ``--pad`` (the kernel reads the
    rest of the partition as erased flash, 0xFF) to whole erase blocks, at least five."""
    if erase_block < 4096 or erase_block & (erase_block - 1):
        return ""
    want = max(-(-size // erase_block), MIN_BLOCKS) * erase_block
    if want <= size:
        return ""
    return (
        f"; if it came from mkfs.jffs2 without --pad, pad it with erased flash (0xFF) to "
        f"{want} bytes: head -c {want - size} /dev/zero | tr '\\000' '\\377' >> {shlex.quote(path)}"
        f" (or run mkfs.jffs2 with --pad={want}); if it was truncated, restore it"
    )


def check_free_space(path: str, nbytes: int) -> None:
    """Refuse to create ``nbytes`` at ``path`` when its filesystem has less free space."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        st = os.statvfs(parent)
    except FileNotFoundError:
        raise AreaNotFoundError(f"{path}: parent directory does not exist") from None
    except OSError:
        return  # cannot tell: the writes themselves will decide
    free = st.f_bavail * st.f_frsize
    if nbytes > free:
        raise AreaError(
            f"{path}: a {nbytes}-byte flash image (with its sidecar) does not fit: only "
            f"{free} bytes are free on that filesystem; nothing was written"
        )


def remove_image(path: str) -> None:
    """Remove an image and its sidecar (what a failed format or create made)."""
    for victim in (path, sidecar_path(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(victim)


def fd_size(path: str, fd: int) -> int:
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return os.lseek(fd, 0, os.SEEK_END)  # st_size of a block device is 0
    if not stat.S_ISREG(st.st_mode):
        raise ImageFormatError(f"{path}: not a regular file or a block device")
    return st.st_size


def lock_image(path: str, fd: int) -> None:
    """Take the image's exclusive advisory lock, or say who has it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ImageBusyError(
            f"{path}: image is in use by another process (mounted, formatted, inspected or "
            "collected elsewhere); try again when it is released"
        ) from None
    except OSError as exc:
        raise BackendIOError(f"{path}: cannot lock: {exc.strerror or exc}", detail=exc) from exc


_FORMAT_TAG = ".swapio-format-"


def format_name(path: str, pid: int) -> str:
    """The temporary name of an image being formatted (hidden, beside it, with the pid)."""
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}{_FORMAT_TAG}{pid}")


def sweep_stale_formats(path: str) -> None:
    """Remove what a killed format of ``path`` left under its temporary name."""
    head, tail = os.path.split(path)
    prefix = f".{tail}{_FORMAT_TAG}"
    try:
        names = os.listdir(head or ".")
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) :].removesuffix(SIDECAR_SUFFIX)
        if not name.startswith(prefix) or not pid.isdigit() or _alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(head, name))  # the image or its sidecar, each in turn


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def move_new(src: str, dst: str) -> None:
    """Rename ``src`` to ``dst``, never over an existing ``dst`` (FileExistsError)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this filesystem: check, then rename
        if os.path.lexists(dst):
            raise FileExistsError(dst) from None
        os.rename(src, dst)
        return
    os.unlink(src)


def write_new_file(path: str, data: bytes) -> None:
    """Create ``path`` holding ``data`` (never over an existing file); on failure remove it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise AreaExistsError(f"{path}: already exists; refusing to overwrite it") from None
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(path)
        raise
