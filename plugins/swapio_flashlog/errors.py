"""Errors of the flashlog backend, rooted in :mod:`swapio.errors`.

Whose fault it is decides the base class: a malformed image or node is the *peer's* fault
(:class:`~swapio.errors.RemoteProtocolError` — the image was written by someone else, or
damaged); a NOR rule broken by our own code is :class:`FlashProgramError`; an image that
cannot be mounted as asked is an :class:`~swapio.errors.AreaFormatError`.
"""

from __future__ import annotations

from swapio.errors import (
    AreaError,
    AreaFormatError,
    BackendIOError,
    LocalProtocolError,
    RemoteProtocolError,
    UsageError,
)


class NodeFormatError(RemoteProtocolError):
    """Bytes that were supposed to be a JFFS2 node are not a valid one."""

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"at 0x{offset:08x}: {message}")
        self.offset = offset


class NodeCRCError(NodeFormatError):
    """A node's header, node, data, name or summary CRC does not match its bytes."""


class CompressionError(NodeFormatError):
    """Node data is compressed with an unsupported method or does not decompress."""


class FlashProgramError(LocalProtocolError):
    """A program or erase violated the flash's rules (bit 0->1, double program, crossing)."""


class BadBlockError(BackendIOError):
    """The erase block is marked bad; it may not be programmed or erased."""


class DataIntegrityError(BackendIOError):
    """The newest completed write of a slot cannot be read back intact.

    Raised instead of returning an older version ("never stale, never silent").
    """


class LogFullError(AreaError):
    """Garbage collection cannot free an erase block: the log holds only live data."""


class ImageFormatError(AreaFormatError):
    """The image cannot be mounted: foreign format, wrong geometry, corruption."""


class GeometryError(ImageFormatError, UsageError):
    """The caller asked for an impossible flash geometry (size, erase block, write unit,
    bad-block number).  A usage error first (exit 2); still an :class:`ImageFormatError`
    for code that catches the mount-time family."""


class ImageBusyError(AreaError):
    """Another process (or another open in this one) holds the image's exclusive lock."""


class FileNameError(UsageError):
    """A swap-file name cannot be stored as one JFFS2 dirent under the root directory."""


class PowerLoss(Exception):
    """Raised by a :class:`~swapio_flashlog.device.FlashDevice` when simulated power is cut.

    Deliberately not a :class:`~swapio.errors.SwapioError`: nothing in swapio may catch
    it; a power-loss test catches it, throws the device away and re-opens the image.
    """
