"""Swap-file names and sizes in a JFFS2 image: what a create may ask for, and whether it fits.

Sans-I/O.  A dirent name is one component under the root (``JFFS2_MAX_NAME_LEN`` = 254
bytes, ``include/uapi/linux/jffs2.h``); a file's ``isize`` is 32 bits.
"""

from __future__ import annotations

from swapio.errors import UsageError
from swapio_flashlog._nodes import (
    CLEANMARKER_SIZE,
    INODE_SIZE,
    JFFS2_PAGE,
    MAX_NAME_LEN,
    SUM_INODE_SIZE,
    pad,
    summary_span,
)
from swapio_flashlog.errors import FileNameError


def parts(path: str) -> list[bytes]:
    """The components of ``path`` as dirent names (bytes, undecodable ones kept)."""
    return [p.encode("utf-8", "surrogateescape") for p in path.split("/") if p]


def new_file_name(path: str) -> bytes:
    """The dirent name for a new file ``path``: one component under the root (``/swapfile``
    or ``swapfile``), 1..254 bytes (``JFFS2_MAX_NAME_LEN``), no NUL, not ``.``/``..``."""
    try:
        names = parts(path)
    except UnicodeEncodeError:
        raise FileNameError(f"file name {path!r} cannot be encoded as bytes") from None
    if len(names) != 1:
        raise FileNameError(
            f"file name {path!r}: expected one name under / (e.g. /swapfile), "
            f"found {len(names)} path components"
        )
    name = names[0]
    if len(name) > MAX_NAME_LEN:
        raise FileNameError(
            f"file name of {len(name)} bytes; a JFFS2 dirent holds at most {MAX_NAME_LEN}"
        )
    if b"\0" in name or name in (b".", b".."):
        raise FileNameError(f"file name {path!r} is not a valid file name (NUL, . or ..)")
    return name


def check_file_size(size: int) -> None:
    """A JFFS2 ``isize`` is 32 bits."""
    if size <= 0 or size >= 1 << 32:
        raise UsageError(f"file size {size} out of range 1..4 GiB-1")


def fit_error(
    where: str, size: int, need: int, capacity: int, page_size: int, reserve: int
) -> UsageError:
    """The error for a file that would not fit (see :func:`capacity_chunks`)."""
    return UsageError(
        f"{where}: a {size}-byte file does not fit: {need} chunks of 4 KiB would be live, "
        f"the flash keeps at most {capacity} in {page_size}-byte pages with {reserve} "
        "reserved erase blocks"
    )


def capacity_chunks(erase_block: int, good_blocks: int, reserve: int, page_size: int) -> int:
    """4 KiB chunks a log of ``good_blocks`` erase blocks keeps live with ``reserve``
    reserved blocks and the two write heads, in nodes of ``min(page_size, 4096)`` bytes."""
    node = min(page_size, JFFS2_PAGE)
    cost = pad(INODE_SIZE + node) + SUM_INODE_SIZE
    per_block = (erase_block - CLEANMARKER_SIZE - summary_span(0)) // cost
    return max(0, good_blocks - reserve - 2) * per_block * node // JFFS2_PAGE
