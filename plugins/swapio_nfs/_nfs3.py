"""NFS version 3 procedures used by the swap backend (RFC 1813 §3), without I/O.

Each procedure has an ``encode_*_args`` function returning the XDR arguments and a
``decode_*_res`` function taking the procedure's results (the bytes after the RPC reply
header) and returning a frozen record, or raising the :class:`~swapio_nfs._errors.NfsError`
subclass for the ``nfsstat3`` the server returned.  WRITE arguments are returned as a list of
buffers so page data is never copied to build a call.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from swapio_nfs._errors import XdrDecodeError, XdrEncodeError, nfs_error
from swapio_nfs._xdr import Buffer, Packer, Unpacker, pad_length

NFS_PROG = 100003
NFS_VERS = 3
NFS3_FHSIZE = 64
NFS3_WRITEVERFSIZE = 8
NFS3_CREATEVERFSIZE = 8


class NfsProc(IntEnum):
    """NFSv3 procedure numbers (RFC 1813 §3)."""

    NULL = 0
    GETATTR = 1
    SETATTR = 2
    LOOKUP = 3
    ACCESS = 4
    READLINK = 5
    READ = 6
    WRITE = 7
    CREATE = 8
    MKDIR = 9
    SYMLINK = 10
    MKNOD = 11
    REMOVE = 12
    RMDIR = 13
    RENAME = 14
    LINK = 15
    READDIR = 16
    READDIRPLUS = 17
    FSSTAT = 18
    FSINFO = 19
    PATHCONF = 20
    COMMIT = 21


class Ftype3(IntEnum):
    """``ftype3`` (RFC 1813 §2.6)."""

    NF3REG = 1
    NF3DIR = 2
    NF3BLK = 3
    NF3CHR = 4
    NF3LNK = 5
    NF3SOCK = 6
    NF3FIFO = 7


class StableHow(IntEnum):
    """``stable_how`` of WRITE (RFC 1813 §3.3.7)."""

    UNSTABLE = 0
    DATA_SYNC = 1
    FILE_SYNC = 2


class CreateMode(IntEnum):
    """``createmode3`` of CREATE (RFC 1813 §3.3.8)."""

    UNCHECKED = 0
    GUARDED = 1
    EXCLUSIVE = 2


class TimeHow(IntEnum):
    """``time_how`` of ``sattr3`` (RFC 1813 §2.6)."""

    DONT_CHANGE = 0
    SET_TO_SERVER_TIME = 1
    SET_TO_CLIENT_TIME = 2


class Access3(IntFlag):
    """ACCESS bits (RFC 1813 §3.3.4)."""

    READ = 0x0001
    LOOKUP = 0x0002
    MODIFY = 0x0004
    EXTEND = 0x0008
    DELETE = 0x0010
    EXECUTE = 0x0020


class FsProperties(IntFlag):
    """FSINFO ``properties`` bits (RFC 1813 §3.3.19)."""

    FSF3_LINK = 0x0001
    FSF3_SYMLINK = 0x0002
    FSF3_HOMOGENEOUS = 0x0008
    FSF3_CANSETTIME = 0x0010


@dataclass(frozen=True)
class NfsTime3:
    """``nfstime3``: seconds and nanoseconds."""

    seconds: int = 0
    nseconds: int = 0


_FATTR3 = struct.Struct(">IIIIIQQIIQQIIIIII")
FATTR3_SIZE = _FATTR3.size


@dataclass(frozen=True)
class Fattr3:
    """``fattr3`` (RFC 1813 §2.6)."""

    type: int
    mode: int
    nlink: int
    uid: int
    gid: int
    size: int
    used: int
    rdev: tuple[int, int]
    fsid: int
    fileid: int
    atime: NfsTime3
    mtime: NfsTime3
    ctime: NfsTime3

    def pack(self, p: Packer) -> None:
        """Append the XDR form (for fake servers in tests)."""
        for v in (self.type, self.mode, self.nlink, self.uid, self.gid):
            p.pack_uint(v)
        p.pack_uhyper(self.size)
        p.pack_uhyper(self.used)
        p.pack_uint(self.rdev[0])
        p.pack_uint(self.rdev[1])
        p.pack_uhyper(self.fsid)
        p.pack_uhyper(self.fileid)
        for t in (self.atime, self.mtime, self.ctime):
            p.pack_uint(t.seconds)
            p.pack_uint(t.nseconds)


@dataclass(frozen=True)
class WccAttr:
    """``wcc_attr``: size and times before an operation (RFC 1813 §2.6)."""

    size: int
    mtime: NfsTime3
    ctime: NfsTime3


@dataclass(frozen=True)
class WccData:
    """``wcc_data``: attributes before and after an operation."""

    before: WccAttr | None
    after: Fattr3 | None


@dataclass(frozen=True)
class Sattr3:
    """``sattr3``: attributes to set; ``None`` leaves one unchanged (RFC 1813 §2.6)."""

    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None
    atime: TimeHow = TimeHow.DONT_CHANGE
    mtime: TimeHow = TimeHow.DONT_CHANGE

    def pack(self, p: Packer) -> None:
        """Append the XDR form."""
        for value in (self.mode, self.uid, self.gid):
            p.pack_bool(value is not None)
            if value is not None:
                p.pack_uint(value)
        p.pack_bool(self.size is not None)
        if self.size is not None:
            p.pack_uhyper(self.size)
        for how in (self.atime, self.mtime):
            if how == TimeHow.SET_TO_CLIENT_TIME:
                raise XdrEncodeError("SET_TO_CLIENT_TIME needs a time; not supported")
            p.pack_uint(how)


# ----------------------------------------------------------------- common decoders


def _fattr3(u: Unpacker) -> Fattr3:
    view = u.unpack_fopaque_view(FATTR3_SIZE)
    (ft, mode, nlink, uid, gid, size, used, r1, r2, fsid, fileid, a1, a2, m1, m2, c1, c2) = (
        _FATTR3.unpack(view)
    )
    return Fattr3(
        ft,
        mode,
        nlink,
        uid,
        gid,
        size,
        used,
        (r1, r2),
        fsid,
        fileid,
        NfsTime3(a1, a2),
        NfsTime3(m1, m2),
        NfsTime3(c1, c2),
    )


def _post_op_attr(u: Unpacker) -> Fattr3 | None:
    return _fattr3(u) if u.unpack_bool() else None


def _wcc_data(u: Unpacker) -> WccData:
    before = None
    if u.unpack_bool():
        size = u.unpack_uhyper()
        mtime = NfsTime3(u.unpack_uint(), u.unpack_uint())
        ctime = NfsTime3(u.unpack_uint(), u.unpack_uint())
        before = WccAttr(size, mtime, ctime)
    return WccData(before, _post_op_attr(u))


def _fh(u: Unpacker) -> bytes:
    return u.unpack_opaque(NFS3_FHSIZE)


def _status(u: Unpacker) -> int:
    return u.unpack_uint()


def _pack_fh(p: Packer, fh: bytes) -> None:
    p.pack_opaque(fh, NFS3_FHSIZE)


def _pack_diropargs(p: Packer, dir_fh: bytes, name: str) -> None:
    _pack_fh(p, dir_fh)
    p.pack_string(name)


# ----------------------------------------------------------------- GETATTR (§3.3.1)


def encode_fh_args(fh: bytes) -> bytes:
    """Arguments that are a single ``nfs_fh3``: GETATTR, FSSTAT, FSINFO (§3.3.1, 18, 19)."""
    p = Packer()
    _pack_fh(p, fh)
    return p.get_buffer()


def decode_getattr_res(res: Buffer) -> Fattr3:
    """GETATTR3res (RFC 1813 §3.3.1)."""
    u = Unpacker(res)
    status = _status(u)
    if status:
        raise nfs_error("GETATTR", status)
    return _fattr3(u)


# ----------------------------------------------------------------- SETATTR (§3.3.2)


def encode_setattr_args(fh: bytes, attrs: Sattr3, guard_ctime: NfsTime3 | None = None) -> bytes:
    """SETATTR3args (RFC 1813 §3.3.2)."""
    p = Packer()
    _pack_fh(p, fh)
    attrs.pack(p)
    p.pack_bool(guard_ctime is not None)
    if guard_ctime is not None:
        p.pack_uint(guard_ctime.seconds)
        p.pack_uint(guard_ctime.nseconds)
    return p.get_buffer()


def decode_setattr_res(res: Buffer) -> WccData:
    """SETATTR3res (RFC 1813 §3.3.2)."""
    u = Unpacker(res)
    status = _status(u)
    wcc = _wcc_data(u)
    if status:
        raise nfs_error("SETATTR", status)
    return wcc


# ----------------------------------------------------------------- LOOKUP (§3.3.3)


@dataclass(frozen=True)
class LookupResult:
    """LOOKUP3resok."""

    fh: bytes
    attributes: Fattr3 | None
    dir_attributes: Fattr3 | None


def encode_diropargs(dir_fh: bytes, name: str) -> bytes:
    """``diropargs3``: LOOKUP and REMOVE arguments (RFC 1813 §3.3.3, §3.3.12)."""
    p = Packer()
    _pack_diropargs(p, dir_fh, name)
    return p.get_buffer()


def decode_lookup_res(res: Buffer, name: str = "") -> LookupResult:
    """LOOKUP3res (RFC 1813 §3.3.3)."""
    u = Unpacker(res)
    status = _status(u)
    if status:
        raise nfs_error("LOOKUP", status, repr(name) if name else "")
    fh = _fh(u)
    return LookupResult(fh, _post_op_attr(u), _post_op_attr(u))


# ----------------------------------------------------------------- ACCESS (§3.3.4)


@dataclass(frozen=True)
class AccessResult:
    """ACCESS3resok: the rights granted out of those asked for."""

    attributes: Fattr3 | None
    access: Access3


def encode_access_args(fh: bytes, access: Access3) -> bytes:
    """ACCESS3args (RFC 1813 §3.3.4)."""
    p = Packer()
    _pack_fh(p, fh)
    p.pack_uint(int(access))
    return p.get_buffer()


def decode_access_res(res: Buffer) -> AccessResult:
    """ACCESS3res (RFC 1813 §3.3.4)."""
    u = Unpacker(res)
    status = _status(u)
    attrs = _post_op_attr(u)
    if status:
        raise nfs_error("ACCESS", status)
    return AccessResult(attrs, Access3(u.unpack_uint() & 0x3F))


# ----------------------------------------------------------------- READ (§3.3.6)


@dataclass(frozen=True)
class ReadResult:
    """READ3resok; ``data`` is a view into the reply record (no copy)."""

    attributes: Fattr3 | None
    count: int
    eof: bool
    data: memoryview


_READ_ARGS_TAIL = struct.Struct(">QI")


_FH_XDR: dict[bytes, bytes] = {}
_FH_XDR_MAX = 64


def encode_read_args(fh: bytes, offset: int, count: int) -> bytes:
    """READ3args (RFC 1813 §3.3.6): ``nfs_fh3 file; offset3 offset; count3 count``.

    The file handle's encoding (length, bytes, padding) is kept for the next call: a swap
    file is read through one handle, once per page.
    """
    head = _FH_XDR.get(fh)
    if head is None:
        if len(_FH_XDR) >= _FH_XDR_MAX:
            _FH_XDR.clear()
        head = _FH_XDR[fh] = struct.pack(">I", len(fh)) + fh + b"\0" * pad_length(len(fh))
    return head + _READ_ARGS_TAIL.pack(offset, count)


def decode_read_res(res: Buffer, max_count: int) -> ReadResult:
    """READ3res (RFC 1813 §3.3.6); ``max_count`` bounds the data the server may return."""
    u = Unpacker(res)
    status = _status(u)
    attrs = _post_op_attr(u)
    if status:
        raise nfs_error("READ", status)
    count = u.unpack_uint()
    eof = u.unpack_bool()
    data = u.unpack_opaque_view(max_count)
    if len(data) != count:
        raise XdrDecodeError(f"READ reply: count is {count} but the data has {len(data)} bytes")
    return ReadResult(attrs, count, eof, data)


_READ_HEAD = struct.Struct(">II")
_READ_TAIL = struct.Struct(">III")


def decode_read_data(res: Buffer, max_count: int) -> tuple[int, bool, memoryview]:
    """READ3res reduced to ``(count, eof, data)``: the data path's decoder.

    Skips the attributes instead of building them; any status other than ``NFS3_OK`` and
    any inconsistency is handed to :func:`decode_read_res` for the precise error.
    """
    view = memoryview(res)
    if len(view) >= 8:
        status, follows = _READ_HEAD.unpack_from(view, 0)
        pos = 8 + (FATTR3_SIZE if follows == 1 else 0)
        if status == 0 and follows <= 1 and len(view) >= pos + 12:
            count, eof, size = _READ_TAIL.unpack_from(view, pos)
            pos += 12
            if size == count <= max_count and eof <= 1 and len(view) >= pos + size:
                return count, eof == 1, view[pos : pos + size]
    result = decode_read_res(view, max_count)
    return result.count, result.eof, result.data


READ3RES_HEAD_MAX = 8 + FATTR3_SIZE + 12
"""Bytes of READ3resok before its data: status, post_op_attr with attributes, count, eof,
data length."""


def read_data_span(res: memoryview, max_count: int) -> tuple[int, int] | None:
    """Where the data of a READ3res (RFC 1813 §3.3.6) lies in ``res``: ``(offset, count)``.

    ``res`` may be a prefix of the results.  None when it is too short to tell; ``(-1, 0)``
    for a reply that is not a consistent ``NFS3_OK`` (its data is not placed: the whole
    reply is received and :func:`decode_read_res` reports the precise error).
    """
    if len(res) < 8:
        return None
    status, follows = _READ_HEAD.unpack_from(res, 0)
    if status != 0 or follows > 1:
        return (-1, 0)
    pos = 8 + (FATTR3_SIZE if follows == 1 else 0)
    if len(res) < pos + 12:
        return None
    count, eof, size = _READ_TAIL.unpack_from(res, pos)
    if size != count or size > max_count or eof > 1:
        return (-1, 0)
    return pos + 12, size


def decode_read_placed(res: Buffer, max_count: int) -> tuple[int, bool, memoryview]:
    """READ3res whose data was placed in the caller's pages: ``(count, eof, inline data)``.

    ``res`` ends where the data began (see :func:`read_data_span`), so the inline data is
    empty; a reply that was received whole (an error, an inconsistency) is decoded by
    :func:`decode_read_res`, which raises the precise error.
    """
    view = memoryview(res)
    size = len(view)
    if size >= 20:
        status, follows = _READ_HEAD.unpack_from(view, 0)
        pos = 8 + (FATTR3_SIZE if follows == 1 else 0)
        if status == 0 and follows <= 1 and size == pos + 12:
            count, eof, length = _READ_TAIL.unpack_from(view, pos)
            if length == count <= max_count and eof <= 1:
                return count, eof == 1, view[size:]
    result = decode_read_res(view, max_count)
    return result.count, result.eof, result.data


# ----------------------------------------------------------------- WRITE (§3.3.7)


@dataclass(frozen=True)
class WriteResult:
    """WRITE3resok: bytes written, how stably, and the server's write verifier."""

    wcc: WccData
    count: int
    committed: StableHow
    verifier: bytes


_WRITE_ARGS_TAIL = struct.Struct(">QIII")


def encode_write_args(
    fh: bytes, offset: int, data: list[Buffer], stable: StableHow = StableHow.UNSTABLE
) -> list[Buffer]:
    """WRITE3args (RFC 1813 §3.3.7) as buffers: header, the data pieces, padding."""
    count = sum(memoryview(d).nbytes for d in data)
    head = (
        struct.pack(">I", len(fh))
        + fh
        + b"\0" * pad_length(len(fh))
        + _WRITE_ARGS_TAIL.pack(offset, count, stable, count)
    )
    parts: list[Buffer] = [head, *data]
    if pad := pad_length(count):
        parts.append(b"\0" * pad)
    return parts


def decode_write_res(res: Buffer) -> WriteResult:
    """WRITE3res (RFC 1813 §3.3.7)."""
    u = Unpacker(res)
    status = _status(u)
    wcc = _wcc_data(u)
    if status:
        raise nfs_error("WRITE", status)
    count = u.unpack_uint()
    committed = u.unpack_uint()
    if committed > StableHow.FILE_SYNC:
        raise XdrDecodeError(f"WRITE reply: committed must be 0..2, got {committed}")
    verf = u.unpack_fopaque(NFS3_WRITEVERFSIZE)
    return WriteResult(wcc, count, StableHow(committed), verf)


# ----------------------------------------------------------------- CREATE (§3.3.8)


@dataclass(frozen=True)
class CreateResult:
    """CREATE3resok."""

    fh: bytes | None
    attributes: Fattr3 | None
    dir_wcc: WccData


def encode_create_args(
    dir_fh: bytes,
    name: str,
    mode: CreateMode = CreateMode.GUARDED,
    attrs: Sattr3 | None = None,
    verifier: bytes = b"\0" * NFS3_CREATEVERFSIZE,
) -> bytes:
    """CREATE3args (RFC 1813 §3.3.8)."""
    p = Packer()
    _pack_diropargs(p, dir_fh, name)
    p.pack_uint(mode)
    if mode == CreateMode.EXCLUSIVE:
        p.pack_fopaque(NFS3_CREATEVERFSIZE, verifier)
    else:
        (attrs or Sattr3()).pack(p)
    return p.get_buffer()


def decode_create_res(res: Buffer, name: str = "") -> CreateResult:
    """CREATE3res (RFC 1813 §3.3.8)."""
    u = Unpacker(res)
    status = _status(u)
    if status:
        _wcc_data(u)
        raise nfs_error("CREATE", status, repr(name) if name else "")
    fh = _fh(u) if u.unpack_bool() else None
    attrs = _post_op_attr(u)
    return CreateResult(fh, attrs, _wcc_data(u))


# ----------------------------------------------------------------- REMOVE (§3.3.12)


def decode_remove_res(res: Buffer, name: str = "") -> WccData:
    """REMOVE3res (RFC 1813 §3.3.12)."""
    u = Unpacker(res)
    status = _status(u)
    wcc = _wcc_data(u)
    if status:
        raise nfs_error("REMOVE", status, repr(name) if name else "")
    return wcc


# ----------------------------------------------------------------- FSSTAT (§3.3.18)


@dataclass(frozen=True)
class FsstatResult:
    """FSSTAT3resok: total, free and available bytes and files."""

    attributes: Fattr3 | None
    tbytes: int
    fbytes: int
    abytes: int
    tfiles: int
    ffiles: int
    afiles: int
    invarsec: int


def decode_fsstat_res(res: Buffer) -> FsstatResult:
    """FSSTAT3res (RFC 1813 §3.3.18)."""
    u = Unpacker(res)
    status = _status(u)
    attrs = _post_op_attr(u)
    if status:
        raise nfs_error("FSSTAT", status)
    tbytes, fbytes, abytes = u.unpack_uhyper(), u.unpack_uhyper(), u.unpack_uhyper()
    tfiles, ffiles, afiles = u.unpack_uhyper(), u.unpack_uhyper(), u.unpack_uhyper()
    return FsstatResult(attrs, tbytes, fbytes, abytes, tfiles, ffiles, afiles, u.unpack_uint())


# ----------------------------------------------------------------- FSINFO (§3.3.19)


@dataclass(frozen=True)
class FsinfoResult:
    """FSINFO3resok: transfer sizes and limits of the file system."""

    attributes: Fattr3 | None
    rtmax: int
    rtpref: int
    rtmult: int
    wtmax: int
    wtpref: int
    wtmult: int
    dtpref: int
    maxfilesize: int
    time_delta: NfsTime3
    properties: FsProperties


def decode_fsinfo_res(res: Buffer) -> FsinfoResult:
    """FSINFO3res (RFC 1813 §3.3.19)."""
    u = Unpacker(res)
    status = _status(u)
    attrs = _post_op_attr(u)
    if status:
        raise nfs_error("FSINFO", status)
    rtmax, rtpref, rtmult = u.unpack_uint(), u.unpack_uint(), u.unpack_uint()
    wtmax, wtpref, wtmult = u.unpack_uint(), u.unpack_uint(), u.unpack_uint()
    dtpref = u.unpack_uint()
    maxfilesize = u.unpack_uhyper()
    delta = NfsTime3(u.unpack_uint(), u.unpack_uint())
    props = FsProperties(u.unpack_uint() & 0x1B)
    return FsinfoResult(
        attrs, rtmax, rtpref, rtmult, wtmax, wtpref, wtmult, dtpref, maxfilesize, delta, props
    )


# ----------------------------------------------------------------- COMMIT (§3.3.21)


@dataclass(frozen=True)
class CommitResult:
    """COMMIT3resok: the write verifier the committed data is stable under."""

    wcc: WccData
    verifier: bytes


def encode_commit_args(fh: bytes, offset: int = 0, count: int = 0) -> bytes:
    """COMMIT3args (RFC 1813 §3.3.21); ``count == 0`` commits to the end of the file."""
    p = Packer()
    _pack_fh(p, fh)
    p.pack_uhyper(offset)
    p.pack_uint(count)
    return p.get_buffer()


def decode_commit_res(res: Buffer) -> CommitResult:
    """COMMIT3res (RFC 1813 §3.3.21)."""
    u = Unpacker(res)
    status = _status(u)
    wcc = _wcc_data(u)
    if status:
        raise nfs_error("COMMIT", status)
    return CommitResult(wcc, u.unpack_fopaque(NFS3_WRITEVERFSIZE))
