"""Port mapper version 2 ``PMAPPROC_GETPORT`` (RFC 1833 §3), without I/O."""

from __future__ import annotations

from enum import IntEnum

from swapio_nfs._xdr import Packer, Unpacker

PMAP_PROG = 100000
PMAP_VERS = 2
PMAP_PORT = 111


class PmapProc(IntEnum):
    """Port mapper v2 procedures (RFC 1833 §3.2)."""

    NULL = 0
    SET = 1
    UNSET = 2
    GETPORT = 3


class IpProto(IntEnum):
    """``prot`` values of a ``mapping`` (RFC 1833 §3.1)."""

    TCP = 6
    UDP = 17


def encode_getport_args(prog: int, vers: int, prot: IpProto = IpProto.TCP) -> bytes:
    """``mapping`` argument of GETPORT; the port field is ignored by the server."""
    p = Packer()
    p.pack_uint(prog)
    p.pack_uint(vers)
    p.pack_uint(prot)
    p.pack_uint(0)
    return p.get_buffer()


def decode_getport_res(results: bytes | bytearray | memoryview) -> int:
    """The port number; 0 means the program is not registered (RFC 1833 §3.2)."""
    u = Unpacker(results)
    port = u.unpack_uint()
    u.done()
    return port
