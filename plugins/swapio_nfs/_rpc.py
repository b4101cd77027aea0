"""ONC RPC version 2 messages (RFC 5531), client side, without I/O.

* :func:`encode_call` builds a ``rpc_msg`` of type ``CALL`` (RFC 5531 §9) with AUTH_SYS or
  AUTH_NONE credentials (§8.2, Appendix A).
* :func:`decode_reply` parses a ``REPLY`` and turns every ``accept_stat`` and ``reject_stat``
  other than ``SUCCESS`` into the matching exception of :mod:`swapio_nfs._errors`, carried in
  :attr:`Reply.error` so that the transport can fail the one call with that XID.
* Record marking for TCP (§11) lives in :mod:`swapio_nfs._record`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum

from swapio_nfs._errors import (
    GarbageArgsError,
    MalformedReplyError,
    ProcUnavailError,
    ProgMismatchError,
    ProgUnavailError,
    RpcAuthError,
    RpcError,
    RpcSystemError,
    RpcVersionMismatchError,
    XdrDecodeError,
    XdrEncodeError,
)
from swapio_nfs._xdr import Packer, Unpacker

RPC_VERSION = 2
MAX_AUTH_BYTES = 400
"""RFC 5531 §8.2: the body of an ``opaque_auth`` is at most 400 bytes."""

AUTH_SYS_MAX_MACHINENAME = 255
AUTH_SYS_MAX_GIDS = 16


class MsgType(IntEnum):
    """``msg_type`` (RFC 5531 §9)."""

    CALL = 0
    REPLY = 1


class ReplyStat(IntEnum):
    """``reply_stat`` (RFC 5531 §9)."""

    MSG_ACCEPTED = 0
    MSG_DENIED = 1


class AcceptStat(IntEnum):
    """``accept_stat`` (RFC 5531 §9)."""

    SUCCESS = 0
    PROG_UNAVAIL = 1
    PROG_MISMATCH = 2
    PROC_UNAVAIL = 3
    GARBAGE_ARGS = 4
    SYSTEM_ERR = 5


class RejectStat(IntEnum):
    """``reject_stat`` (RFC 5531 §9)."""

    RPC_MISMATCH = 0
    AUTH_ERROR = 1


class AuthFlavor(IntEnum):
    """``auth_flavor`` numbers used here (RFC 5531 §8.2)."""

    AUTH_NONE = 0
    AUTH_SYS = 1
    AUTH_SHORT = 2


@dataclass(frozen=True)
class OpaqueAuth:
    """``opaque_auth``: a flavor and at most 400 bytes of body (RFC 5531 §8.2)."""

    flavor: int = AuthFlavor.AUTH_NONE
    body: bytes = b""

    def pack(self, packer: Packer) -> None:
        """Append this credential or verifier."""
        packer.pack_uint(self.flavor)
        packer.pack_opaque(self.body, MAX_AUTH_BYTES)


AUTH_NONE = OpaqueAuth()


@dataclass(frozen=True)
class AuthSys:
    """``authsys_parms`` (RFC 5531 Appendix A): Unix uid, gid and groups, no security."""

    machinename: str = "swapio"
    uid: int = 0
    gid: int = 0
    gids: tuple[int, ...] = field(default_factory=tuple)
    stamp: int = 0

    def __post_init__(self) -> None:
        if len(self.machinename.encode()) > AUTH_SYS_MAX_MACHINENAME:
            raise XdrEncodeError(
                f"AUTH_SYS machinename is {len(self.machinename.encode())} bytes; at most 255"
            )
        if len(self.gids) > AUTH_SYS_MAX_GIDS:
            raise XdrEncodeError(f"AUTH_SYS carries at most 16 groups, got {len(self.gids)}")

    def credential(self) -> OpaqueAuth:
        """The ``opaque_auth`` of flavor ``AUTH_SYS`` carrying these parameters."""
        p = Packer()
        p.pack_uint(self.stamp)
        p.pack_string(self.machinename, AUTH_SYS_MAX_MACHINENAME)
        p.pack_uint(self.uid)
        p.pack_uint(self.gid)
        p.pack_uint(len(self.gids))
        for gid in self.gids:
            p.pack_uint(gid)
        return OpaqueAuth(AuthFlavor.AUTH_SYS, p.get_buffer())

    @classmethod
    def decode(cls, body: bytes) -> AuthSys:
        """Parse an ``authsys_parms`` body (used by tests and fake servers)."""
        u = Unpacker(body)
        stamp = u.unpack_uint()
        name = u.unpack_string(AUTH_SYS_MAX_MACHINENAME)
        uid = u.unpack_uint()
        gid = u.unpack_uint()
        count = u.unpack_uint()
        if count > AUTH_SYS_MAX_GIDS:
            raise XdrDecodeError(f"AUTH_SYS: at most 16 groups, got {count}")
        gids = tuple(u.unpack_uint() for _ in range(count))
        u.done()
        return cls(name, uid, gid, gids, stamp)


_CALL_HEAD = struct.Struct(">IIIIII")


def encode_call_header(
    xid: int, prog: int, vers: int, proc: int, *, cred: OpaqueAuth, verf: OpaqueAuth = AUTH_NONE
) -> bytes:
    """The ``rpc_msg`` of a CALL up to (not including) the procedure arguments (RFC 5531 §9)."""
    p = Packer()
    p.pack_uint(xid)
    p.pack_uint(MsgType.CALL)
    p.pack_uint(RPC_VERSION)
    p.pack_uint(prog)
    p.pack_uint(vers)
    p.pack_uint(proc)
    cred.pack(p)
    verf.pack(p)
    return p.get_buffer()


def encode_call(
    xid: int,
    prog: int,
    vers: int,
    proc: int,
    args: bytes = b"",
    *,
    cred: OpaqueAuth = AUTH_NONE,
    verf: OpaqueAuth = AUTH_NONE,
) -> bytes:
    """A complete CALL message: header followed by the XDR-encoded arguments."""
    return encode_call_header(xid, prog, vers, proc, cred=cred, verf=verf) + args


class CallTemplate:
    """Pre-encoded call header for one (program, version, procedure, credential).

    Only the XID changes between calls, so the header is encoded once and patched in place;
    this keeps per-page calls cheap without changing a byte on the wire.
    """

    __slots__ = ("_tail", "cred")

    def __init__(self, prog: int, vers: int, proc: int, cred: OpaqueAuth) -> None:
        self.cred = cred
        self._tail = encode_call_header(0, prog, vers, proc, cred=cred)[4:]

    def header(self, xid: int) -> bytes:
        """The header for ``xid``."""
        return _XID.pack(xid) + self._tail


@dataclass(frozen=True)
class Reply:
    """A decoded REPLY: its XID and either the results or the error the server reported.

    ``results`` is a view into the record at the start of the procedure's results
    (``SUCCESS`` only); ``verifier`` is the server's ``opaque_auth`` verifier.
    """

    xid: int
    results: memoryview
    error: RpcError | None = None
    verifier: OpaqueAuth = AUTH_NONE


def peek_xid(record: bytes | bytearray | memoryview) -> int:
    """The XID of a message: its first four bytes (RFC 5531 §9)."""
    if len(record) < 4:
        raise MalformedReplyError(f"RPC message of {len(record)} bytes has no XID (need 4)")
    return int(struct.unpack_from(">I", record)[0])


_XID = struct.Struct(">I")
_ACCEPTED_HEAD = struct.Struct(">IIIII")
ACCEPTED_HEADER_SIZE = 24
"""Bytes of a ``MSG_ACCEPTED``/``SUCCESS`` reply header with an empty verifier."""


def accepted_results_offset(record: memoryview) -> int:
    """Offset of the results in a ``MSG_ACCEPTED``/``SUCCESS`` reply with an empty verifier.

    The common reply, recognized without building objects; ``-1`` for anything else, which
    :func:`decode_reply` then decodes in full (and reports precisely).
    """
    if len(record) < ACCEPTED_HEADER_SIZE:
        return -1
    mtype, stat, _flavor, verf_len, accept = _ACCEPTED_HEAD.unpack_from(record, 4)
    if mtype == MsgType.REPLY and stat == 0 and verf_len == 0 and accept == 0:
        return ACCEPTED_HEADER_SIZE
    return -1


def _read_auth(u: Unpacker) -> OpaqueAuth:
    flavor = u.unpack_uint()
    body = u.unpack_opaque(MAX_AUTH_BYTES)
    return OpaqueAuth(flavor, body)


def decode_reply(record: bytes | bytearray | memoryview, program: str = "RPC") -> Reply:
    """Decode a REPLY message (RFC 5531 §9).

    Raises :class:`MalformedReplyError` (with ``xid`` set when it was readable) for bytes that
    are not a valid reply.  A well-formed refusal is returned with :attr:`Reply.error` set.
    """
    view = memoryview(record).cast("B")
    xid = peek_xid(view)
    try:
        return _decode_reply(view, xid, program)
    except XdrDecodeError as exc:
        raise MalformedReplyError(f"malformed RPC reply (xid {xid:#x}): {exc}", xid) from None


def _decode_reply(view: memoryview, xid: int, program: str) -> Reply:
    u = Unpacker(view, 4)
    mtype = u.unpack_uint()
    if mtype != MsgType.REPLY:
        raise XdrDecodeError(f"expected msg_type REPLY (1), got {mtype}")
    stat = u.unpack_uint()
    if stat == ReplyStat.MSG_ACCEPTED:
        verf = _read_auth(u)
        accept = u.unpack_uint()
        if accept == AcceptStat.SUCCESS:
            return Reply(xid, view[u.position :], None, verf)
        error: RpcError
        if accept == AcceptStat.PROG_MISMATCH:
            low, high = u.unpack_uint(), u.unpack_uint()
            error = ProgMismatchError(
                f"{program}: server does not support the requested version "
                f"(PROG_MISMATCH): it supports versions {low}..{high}",
                low,
                high,
            )
        elif accept == AcceptStat.PROG_UNAVAIL:
            error = ProgUnavailError(f"{program}: program not available on server (PROG_UNAVAIL)")
        elif accept == AcceptStat.PROC_UNAVAIL:
            error = ProcUnavailError(f"{program}: procedure not supported (PROC_UNAVAIL)")
        elif accept == AcceptStat.GARBAGE_ARGS:
            error = GarbageArgsError(
                f"{program}: server could not decode the arguments (GARBAGE_ARGS)"
            )
        elif accept == AcceptStat.SYSTEM_ERR:
            error = RpcSystemError(f"{program}: server system error (SYSTEM_ERR)")
        else:
            raise XdrDecodeError(f"unknown accept_stat {accept}")
        return Reply(xid, view[u.position :], error, verf)
    if stat == ReplyStat.MSG_DENIED:
        reject = u.unpack_uint()
        if reject == RejectStat.RPC_MISMATCH:
            low, high = u.unpack_uint(), u.unpack_uint()
            return Reply(xid, view[u.position :], RpcVersionMismatchError(low, high))
        if reject == RejectStat.AUTH_ERROR:
            return Reply(xid, view[u.position :], RpcAuthError(u.unpack_uint()))
        raise XdrDecodeError(f"unknown reject_stat {reject}")
    raise XdrDecodeError(f"unknown reply_stat {stat}")


# ----------------------------------------------------------------- reply encoding (fakes)


def encode_accepted_reply(
    xid: int, results: bytes = b"", accept: AcceptStat = AcceptStat.SUCCESS
) -> bytes:
    """A ``MSG_ACCEPTED`` reply; used by tests and fake servers."""
    p = Packer()
    p.pack_uint(xid)
    p.pack_uint(MsgType.REPLY)
    p.pack_uint(ReplyStat.MSG_ACCEPTED)
    AUTH_NONE.pack(p)
    p.pack_uint(accept)
    return p.get_buffer() + results


def encode_denied_reply(xid: int, reject: RejectStat, *values: int) -> bytes:
    """A ``MSG_DENIED`` reply with its mismatch range or ``auth_stat``."""
    p = Packer()
    p.pack_uint(xid)
    p.pack_uint(MsgType.REPLY)
    p.pack_uint(ReplyStat.MSG_DENIED)
    p.pack_uint(reject)
    for v in values:
        p.pack_uint(v)
    return p.get_buffer()


@dataclass(frozen=True)
class Call:
    """A decoded CALL (for fake servers in tests)."""

    xid: int
    prog: int
    vers: int
    proc: int
    cred: OpaqueAuth
    verf: OpaqueAuth
    args: memoryview


def decode_call(record: bytes | bytearray | memoryview) -> Call:
    """Decode a CALL message (RFC 5531 §9)."""
    u = Unpacker(record)
    xid = u.unpack_uint()
    if u.unpack_uint() != MsgType.CALL:
        raise XdrDecodeError("expected msg_type CALL")
    if (v := u.unpack_uint()) != RPC_VERSION:
        raise XdrDecodeError(f"expected rpcvers 2, got {v}")
    prog, vers, proc = u.unpack_uint(), u.unpack_uint(), u.unpack_uint()
    cred = _read_auth(u)
    verf = _read_auth(u)
    return Call(xid, prog, vers, proc, cred, verf, memoryview(record).cast("B")[u.position :])
