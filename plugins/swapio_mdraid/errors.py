"""Errors of the md bitmap and mirror plugin, rooted in :mod:`swapio.errors`."""

from __future__ import annotations

from swapio.errors import (
    AreaError,
    AreaFormatError,
    BackendIOError,
    RemoteProtocolError,
    UsageError,
)


class BitmapFormatError(RemoteProtocolError, AreaFormatError):
    """Bytes that should hold an md bitmap (``bitmap_super_t`` + bits) do not."""


class UnsupportedBitmapVersionError(BitmapFormatError):
    """The superblock's version is valid md but not one this codec reads (only 3 and 4)."""


class BitmapParameterError(UsageError):
    """A bitmap parameter (chunk size, sync size, daemon sleep, ...) is out of range."""


class MirrorError(AreaError):
    """The mirror cannot serve a request (no healthy leg, mismatched legs, ...)."""


class NoHealthyLegError(MirrorError, BackendIOError):
    """Every leg of the mirror is faulty."""


class ResyncError(AreaError):
    """A resync cannot start or was refused (mismatched legs, missing source, ...)."""
