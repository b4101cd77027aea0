"""MOUNT protocol version 3, ``MNT`` and ``UMNT`` (RFC 1813 §5.2), without I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from swapio_nfs._errors import XdrDecodeError, mount_error
from swapio_nfs._xdr import Packer, Unpacker

MOUNT_PROG = 100005
MOUNT_VERS = 3
MNTPATHLEN = 1024
FHSIZE3 = 64
_MAX_FLAVORS = 64


class MountProc(IntEnum):
    """MOUNT v3 procedures (RFC 1813 §5.2)."""

    NULL = 0
    MNT = 1
    DUMP = 2
    UMNT = 3
    UMNTALL = 4
    EXPORT = 5


@dataclass(frozen=True)
class MountResult:
    """``mountres3_ok``: the export's root file handle and the auth flavors it accepts."""

    fhandle: bytes
    auth_flavors: tuple[int, ...]


def encode_dirpath(path: str) -> bytes:
    """``dirpath`` argument of MNT and UMNT (``string<MNTPATHLEN>``)."""
    p = Packer()
    p.pack_string(path, MNTPATHLEN)
    return p.get_buffer()


def decode_mnt_res(results: bytes | bytearray | memoryview, path: str) -> MountResult:
    """Decode ``mountres3`` (RFC 1813 §5.2.1); a refusal raises its :class:`MountError`."""
    u = Unpacker(results)
    status = u.unpack_uint()
    if status != 0:
        raise mount_error(path, status)
    fhandle = u.unpack_opaque(FHSIZE3)
    count = u.unpack_uint()
    if count > _MAX_FLAVORS or count * 4 > u.remaining():
        raise XdrDecodeError(f"MNT reply lists {count} auth flavors; at most {_MAX_FLAVORS}")
    flavors = tuple(u.unpack_uint() for _ in range(count))
    u.done()
    return MountResult(fhandle, flavors)
