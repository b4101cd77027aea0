"""md write-intent bitmaps (the Linux on-disk format), a RAID1 mirror backend and
``swapio bitmap``.

The codec (:mod:`swapio_mdraid._format`) and the write-intent state machine
(:mod:`swapio_mdraid._intent`) are sans-I/O; the bitmap store keeps the bitmap in a swap
area on any backend; the mirror serves the ``mirror`` URL scheme.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from swapio_mdraid._format import (
    BITMAP_MAGIC,
    SUPERBLOCK_SIZE,
    Bitmap,
    BitmapState,
    BitmapSuperblock,
    BitmapVersion,
    bitmap_bits,
)
from swapio_mdraid.errors import (
    BitmapFormatError,
    BitmapParameterError,
    MirrorError,
    ResyncError,
    UnsupportedBitmapVersionError,
)

__all__ = [
    "BITMAP_MAGIC",
    "SUPERBLOCK_SIZE",
    "Bitmap",
    "BitmapFormatError",
    "BitmapParameterError",
    "BitmapState",
    "BitmapSuperblock",
    "BitmapVersion",
    "MirrorError",
    "ResyncError",
    "UnsupportedBitmapVersionError",
    "WriteIntent",
    "bitmap_bits",
    "examine_json",
    "examine_lines",
]

if TYPE_CHECKING:
    from swapio_mdraid._examine import examine_json, examine_lines
    from swapio_mdraid._intent import WriteIntent

#: Names imported on first use (PEP 562): ``swapio bitmap resync`` and the other verbs that
#: do not need them do not pay for their modules at start-up.
_LAZY = {
    "WriteIntent": "swapio_mdraid._intent",
    "examine_json": "swapio_mdraid._examine",
    "examine_lines": "swapio_mdraid._examine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'swapio_mdraid' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
