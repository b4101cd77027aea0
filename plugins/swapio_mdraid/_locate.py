"""From what a user types (a path or a swapio URL) to an activated swap area.

A plain path means a ``file://`` area with ``durable=1``: an image file, a block device or
an md bitmap file.  Everything goes through :class:`swapio.plugins.PluginHost`, so a leg or
a bitmap may live on any backend (``nfs://``, ``flashlog://``, ...).
"""

from __future__ import annotations

import os
import shutil
import stat
from typing import TYPE_CHECKING
from urllib.parse import quote

from swapio.area import CreateRequest, SwapArea
from swapio.errors import AreaNotFoundError
from swapio.location import Location
from swapio.plugins import PluginHost
from swapio_mdraid._format import SUPERBLOCK_SIZE, BitmapSuperblock
from swapio_mdraid.errors import BitmapFormatError

if TYPE_CHECKING:
    from swapio.pool import PagePool

#: Page size of ``file://`` areas made from plain paths.
PATH_PAGE_SIZE = 4096


def is_url(text: str) -> bool:
    return "://" in text


def path_url(path: str, *, page_size: int = PATH_PAGE_SIZE) -> str:
    """The durable ``file://`` URL for a local path."""
    absolute = os.path.abspath(path)
    return f"file://{quote(absolute)}?durable=1&page_size={page_size}"


def location_of(text: str) -> Location:
    """Parse ``text`` as a URL, or turn a plain path into its ``file://`` URL."""
    return Location.parse(text if is_url(text) else path_url(text))


def local_path(text: str) -> str | None:
    """The local file behind ``text`` (a path or a ``file://`` URL), if it names one."""
    if not is_url(text):
        return os.path.abspath(text)
    loc = Location.parse(text)
    if loc.scheme == "file":
        return loc.path
    return None


def unaligned_bitmap(path: str, page_size: int = PATH_PAGE_SIZE) -> int:
    """Bytes missing to a whole page at the end of a local bitmap file (0 if aligned).

    mdadm ``CreateBitmap`` truncates a bitmap file to ``256 + bits`` bytes, but a swap area
    is whole pages.  Before such a file may be padded (or copied padded), it must hold a
    valid superblock and all its bits — zeros appended to a truncated bitmap would read as
    clean chunks — so this is the one place a local file is read outside an area (a plain
    ``pread`` of its first 256 bytes).
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AreaNotFoundError(f"{path}: no such file") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size % page_size == 0:
        return 0
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        head = os.pread(fd, SUPERBLOCK_SIZE, 0)
    finally:
        os.close(fd)
    try:
        sb = BitmapSuperblock.decode(head)
    except BitmapFormatError as exc:
        raise type(exc)(f"{path}: {exc}") from None
    if st.st_size < sb.storage_bytes:
        raise BitmapFormatError(
            f"{path}: bitmap truncated: {sb.chunks} chunks need {sb.storage_bytes} bytes, "
            f"the file has {st.st_size}"
        )
    return page_size - st.st_size % page_size


def pad_to_pages(path: str, page_size: int = PATH_PAGE_SIZE) -> tuple[int, int] | None:
    """Zero-fill a checked bitmap file up to a whole number of pages; return ``(old size,
    new size)``, or None if it was whole pages already.

    md rounds bitmap storage up to pages too, and mdadm ignores bytes after the bits, so
    written zeros (never a hole, which ``swapon`` would refuse) are harmless.
    """
    extra = unaligned_bitmap(path, page_size)
    if not extra:
        return None
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        old = os.fstat(fd).st_size
        os.pwrite(fd, bytes(extra), old)
        os.fsync(fd)
    finally:
        os.close(fd)
    return old, old + extra


def padded_copy(path: str, directory: str, page_size: int = PATH_PAGE_SIZE) -> str | None:
    """For read-only use: a page-aligned copy of an unaligned bitmap file (None if aligned)."""
    extra = unaligned_bitmap(path, page_size)
    if not extra:
        return None
    copy = os.path.join(directory, "bitmap")
    shutil.copyfile(path, copy)
    with open(copy, "ab") as fh:
        fh.write(bytes(extra))
    return copy


async def activate(
    host: PluginHost,
    text: str,
    *,
    create: CreateRequest | None = None,
    pool: PagePool | None = None,
) -> SwapArea:
    """Activate the area named by ``text`` (path or URL) through the host, on ``pool``."""
    return await host.activate(location_of(text), create=create, pool=pool)
