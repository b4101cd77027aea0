"""Exceptions of the NFS backend, each a subclass of a :mod:`swapio.errors` class.

Whose fault, in h11's terms: :class:`XdrDecodeError`, :class:`RecordMarkError` and
:class:`MalformedReplyError` mean the server sent bytes that break RFC 4506/5531;
:class:`XdrEncodeError` means we were about to.  Status errors carry what the peer said:
every ``accept_stat`` and ``reject_stat`` of RFC 5531 §9 has its own class.  Of the
``nfsstat3`` (RFC 1813 §2.6) and ``mountstat3`` (§5.1.1) statuses, those the code acts on have
classes; every status has its name, meaning and POSIX errno in a table, and
:func:`nfs_error` / :func:`mount_error` build the exception.
"""

from __future__ import annotations

import errno as _errno
from enum import IntEnum

from swapio.errors import (
    BackendIOError,
    LocalProtocolError,
    RemoteProtocolError,
    SwapTimeoutError,
    UsageError,
)

# --------------------------------------------------------------------------- wire/protocol


class XdrEncodeError(LocalProtocolError):
    """A value cannot be encoded in XDR (out of range, wrong fixed length)."""


class XdrDecodeError(RemoteProtocolError):
    """Received XDR data is truncated or invalid (RFC 4506)."""


class RecordMarkError(RemoteProtocolError):
    """A TCP record mark is invalid or announces a record larger than allowed (RFC 5531 §11)."""


class MalformedReplyError(RemoteProtocolError):
    """An RPC reply breaks RFC 5531 §9 (wrong message type, unknown status).

    ``xid`` is the reply's XID when it could be read, so the one call it answers can fail.
    """

    def __init__(self, message: str, xid: int | None = None) -> None:
        super().__init__(message)
        self.xid = xid


class NfsUrlError(UsageError):
    """An ``nfs://`` URL cannot be used (libnfs URL conventions)."""


# --------------------------------------------------------------------------- RPC (RFC 5531)


class RpcError(BackendIOError):
    """The RPC server refused a call (RFC 5531 §9 ``reply_body``)."""


class RpcDeniedError(RpcError):
    """``MSG_DENIED``: the call was rejected before the program saw it."""


class RpcVersionMismatchError(RpcDeniedError):
    """``RPC_MISMATCH``: the server does not speak RPC version 2."""

    def __init__(self, low: int, high: int) -> None:
        super().__init__(
            f"server rejected RPC version 2 (RPC_MISMATCH): it supports {low}..{high}",
            detail=(low, high),
        )
        self.low = low
        self.high = high


class AuthStat(IntEnum):
    """``auth_stat`` (RFC 5531 §9)."""

    AUTH_OK = 0
    AUTH_BADCRED = 1
    AUTH_REJECTEDCRED = 2
    AUTH_BADVERF = 3
    AUTH_REJECTEDVERF = 4
    AUTH_TOOWEAK = 5
    AUTH_INVALIDRESP = 6
    AUTH_FAILED = 7
    AUTH_KERB_GENERIC = 8
    AUTH_TIMEEXPIRE = 9
    AUTH_TKT_FILE = 10
    AUTH_DECODE = 11
    AUTH_NET_ADDR = 12
    RPCSEC_GSS_CREDPROBLEM = 13
    RPCSEC_GSS_CTXPROBLEM = 14


class RpcAuthError(RpcDeniedError, PermissionError):
    """``AUTH_ERROR``: the server rejected our credentials; ``auth_stat`` says why."""

    def __init__(self, auth_stat: int) -> None:
        try:
            name = AuthStat(auth_stat).name
        except ValueError:
            name = f"unknown auth_stat {auth_stat}"
        super().__init__(f"server rejected the credentials: {name}", detail=auth_stat)
        self.auth_stat = auth_stat
        self.errno = _errno.EACCES


class RpcAcceptError(RpcError):
    """``MSG_ACCEPTED`` with an ``accept_stat`` other than ``SUCCESS``."""


class ProgUnavailError(RpcAcceptError):
    """``PROG_UNAVAIL``: the program is not exported by this server."""


class ProgMismatchError(RpcAcceptError):
    """``PROG_MISMATCH``: the program exists but not in the requested version."""

    def __init__(self, message: str, low: int, high: int) -> None:
        super().__init__(message, detail=(low, high))
        self.low = low
        self.high = high


class ProcUnavailError(RpcAcceptError):
    """``PROC_UNAVAIL``: the program does not support the procedure."""


class GarbageArgsError(RpcAcceptError, LocalProtocolError):
    """``GARBAGE_ARGS``: the server could not decode our arguments (our fault)."""


class RpcSystemError(RpcAcceptError):
    """``SYSTEM_ERR``: the server failed (out of memory, internal error)."""


# --------------------------------------------------------------------------- transport


class RpcTimeoutError(SwapTimeoutError, BackendIOError):
    """An RPC call got no reply within its deadline, after every retransmission.

    Both a timeout and a failure of the store (the server stopped answering).
    """


class RpcConnectionError(BackendIOError, ConnectionError):
    """The connection to the RPC server failed or was lost."""


# --------------------------------------------------------------------------- NFSv3 status


class Nfsstat3(IntEnum):
    """``nfsstat3`` (RFC 1813 §2.6)."""

    NFS3_OK = 0
    NFS3ERR_PERM = 1
    NFS3ERR_NOENT = 2
    NFS3ERR_IO = 5
    NFS3ERR_NXIO = 6
    NFS3ERR_ACCES = 13
    NFS3ERR_EXIST = 17
    NFS3ERR_XDEV = 18
    NFS3ERR_NODEV = 19
    NFS3ERR_NOTDIR = 20
    NFS3ERR_ISDIR = 21
    NFS3ERR_INVAL = 22
    NFS3ERR_FBIG = 27
    NFS3ERR_NOSPC = 28
    NFS3ERR_ROFS = 30
    NFS3ERR_MLINK = 31
    NFS3ERR_NAMETOOLONG = 63
    NFS3ERR_NOTEMPTY = 66
    NFS3ERR_DQUOT = 69
    NFS3ERR_STALE = 70
    NFS3ERR_REMOTE = 71
    NFS3ERR_BADHANDLE = 10001
    NFS3ERR_NOT_SYNC = 10002
    NFS3ERR_BAD_COOKIE = 10003
    NFS3ERR_NOTSUPP = 10004
    NFS3ERR_TOOSMALL = 10005
    NFS3ERR_SERVERFAULT = 10006
    NFS3ERR_BADTYPE = 10007
    NFS3ERR_JUKEBOX = 10008


_NFS_STATUS: dict[int, tuple[str, int | None]] = {
    Nfsstat3.NFS3ERR_PERM: ("not owner", _errno.EPERM),
    Nfsstat3.NFS3ERR_NOENT: ("no such file or directory", _errno.ENOENT),
    Nfsstat3.NFS3ERR_IO: ("hard I/O error", _errno.EIO),
    Nfsstat3.NFS3ERR_NXIO: ("no such device or address", _errno.ENXIO),
    Nfsstat3.NFS3ERR_ACCES: ("permission denied", _errno.EACCES),
    Nfsstat3.NFS3ERR_EXIST: ("file exists", _errno.EEXIST),
    Nfsstat3.NFS3ERR_XDEV: ("attempt at a cross-device link", _errno.EXDEV),
    Nfsstat3.NFS3ERR_NODEV: ("no such device", _errno.ENODEV),
    Nfsstat3.NFS3ERR_NOTDIR: ("not a directory", _errno.ENOTDIR),
    Nfsstat3.NFS3ERR_ISDIR: ("is a directory", _errno.EISDIR),
    Nfsstat3.NFS3ERR_INVAL: ("invalid argument", _errno.EINVAL),
    Nfsstat3.NFS3ERR_FBIG: ("file too large", _errno.EFBIG),
    Nfsstat3.NFS3ERR_NOSPC: ("no space left on device", _errno.ENOSPC),
    Nfsstat3.NFS3ERR_ROFS: ("read-only file system", _errno.EROFS),
    Nfsstat3.NFS3ERR_MLINK: ("too many links", _errno.EMLINK),
    Nfsstat3.NFS3ERR_NAMETOOLONG: ("name too long", _errno.ENAMETOOLONG),
    Nfsstat3.NFS3ERR_NOTEMPTY: ("directory not empty", _errno.ENOTEMPTY),
    Nfsstat3.NFS3ERR_DQUOT: ("disk quota exceeded", _errno.EDQUOT),
    Nfsstat3.NFS3ERR_STALE: ("stale file handle", _errno.ESTALE),
    Nfsstat3.NFS3ERR_REMOTE: ("too many levels of remote in path", _errno.EREMOTE),
    Nfsstat3.NFS3ERR_BADHANDLE: ("illegal file handle", _errno.EBADF),
    Nfsstat3.NFS3ERR_NOT_SYNC: ("SETATTR guard check failed", None),
    Nfsstat3.NFS3ERR_BAD_COOKIE: ("READDIR cookie is stale", None),
    Nfsstat3.NFS3ERR_NOTSUPP: ("operation not supported", _errno.EOPNOTSUPP),
    Nfsstat3.NFS3ERR_TOOSMALL: ("buffer or request is too small", None),
    Nfsstat3.NFS3ERR_SERVERFAULT: ("server fault", _errno.EIO),
    Nfsstat3.NFS3ERR_BADTYPE: ("object type not supported", None),
    Nfsstat3.NFS3ERR_JUKEBOX: ("server busy, try again later", _errno.EAGAIN),
}
"""Meaning and POSIX errno of every ``nfsstat3`` (RFC 1813 §2.6)."""
_NFS_NAMES = {int(s): s.name for s in Nfsstat3}


class NfsError(BackendIOError):
    """An NFSv3 procedure returned a status other than ``NFS3_OK``.

    ``status`` is the raw ``nfsstat3``, ``errno`` the matching POSIX error where one exists
    (from the RFC 1813 §2.6 table); the message names the status and its meaning.  Statuses
    the backend acts on have subclasses; the others are plain :class:`NfsError`.
    """

    status: int = -1

    def __init__(self, procedure: str, status: int | None = None, context: str = "") -> None:
        code = self.status if status is None else status
        meaning, posix = _NFS_STATUS.get(code, ("unknown status", None))
        name = _NFS_NAMES.get(code, f"nfsstat3 {code}")
        where = f" ({context})" if context else ""
        super().__init__(f"NFS {procedure}{where} failed: {name}: {meaning}", detail=code)
        self.status = code
        self.procedure = procedure
        self.meaning = meaning
        self.errno = posix


class NfsNoEntError(NfsError):
    """``NFS3ERR_NOENT``: activation tells a missing swap file from other failures."""

    status = Nfsstat3.NFS3ERR_NOENT


class NfsExistError(NfsError, FileExistsError):
    """``NFS3ERR_EXIST``: CREATE GUARDED found the file (never overwritten)."""

    status = Nfsstat3.NFS3ERR_EXIST


class NfsAccesError(NfsError, PermissionError):
    """``NFS3ERR_ACCES``: also raised by activation when ACCESS denies read and modify."""

    status = Nfsstat3.NFS3ERR_ACCES


class NfsIOError(NfsError):
    """``NFS3ERR_IO``: also raised for a short write the server did not complete."""

    status = Nfsstat3.NFS3ERR_IO


class NfsStaleError(NfsError):
    """``NFS3ERR_STALE``: the swap file is looked up again (and refused if replaced)."""

    status = Nfsstat3.NFS3ERR_STALE


class NfsBadHandleError(NfsError):
    """``NFS3ERR_BADHANDLE``: handled like a stale handle."""

    status = Nfsstat3.NFS3ERR_BADHANDLE


class NfsJukeboxError(NfsError):
    """``NFS3ERR_JUKEBOX``: retried with backoff (``nfs3_rpc_wrapper``)."""

    status = Nfsstat3.NFS3ERR_JUKEBOX


NFS_ERRORS: dict[int, type[NfsError]] = {
    cls.status: cls
    for cls in (
        NfsNoEntError,
        NfsExistError,
        NfsAccesError,
        NfsIOError,
        NfsStaleError,
        NfsBadHandleError,
        NfsJukeboxError,
    )
}


def nfs_error(procedure: str, status: int, context: str = "") -> NfsError:
    """Return the exception for an ``nfsstat3`` other than ``NFS3_OK``.

    A status with a class gets it; any other, defined by RFC 1813 or not, is an
    :class:`NfsError` carrying its number, name and meaning.
    """
    cls = NFS_ERRORS.get(status, NfsError)
    return cls(procedure, status, context)


# --------------------------------------------------------------------------- MOUNT status


class Mountstat3(IntEnum):
    """``mountstat3`` (RFC 1813 §5.1.1 / Appendix I)."""

    MNT3_OK = 0
    MNT3ERR_PERM = 1
    MNT3ERR_NOENT = 2
    MNT3ERR_IO = 5
    MNT3ERR_ACCES = 13
    MNT3ERR_NOTDIR = 20
    MNT3ERR_INVAL = 22
    MNT3ERR_NAMETOOLONG = 63
    MNT3ERR_NOTSUPP = 10004
    MNT3ERR_SERVERFAULT = 10006


_MOUNT_STATUS: dict[int, tuple[str, int | None]] = {
    Mountstat3.MNT3ERR_PERM: ("not owner", _errno.EPERM),
    Mountstat3.MNT3ERR_NOENT: ("no such export", _errno.ENOENT),
    Mountstat3.MNT3ERR_IO: ("I/O error", _errno.EIO),
    Mountstat3.MNT3ERR_ACCES: ("permission denied", _errno.EACCES),
    Mountstat3.MNT3ERR_NOTDIR: ("not a directory", _errno.ENOTDIR),
    Mountstat3.MNT3ERR_INVAL: ("invalid argument", _errno.EINVAL),
    Mountstat3.MNT3ERR_NAMETOOLONG: ("path too long", _errno.ENAMETOOLONG),
    Mountstat3.MNT3ERR_NOTSUPP: ("operation not supported", _errno.EOPNOTSUPP),
    Mountstat3.MNT3ERR_SERVERFAULT: ("server fault", _errno.EIO),
}
"""Meaning and POSIX errno of every ``mountstat3`` (RFC 1813 §5.1.1)."""


class MountError(BackendIOError):
    """MOUNT v3 ``MNT`` refused the export path; ``status`` is the ``mountstat3``."""

    status: int = -1

    def __init__(self, path: str, status: int | None = None) -> None:
        code = self.status if status is None else status
        meaning, posix = _MOUNT_STATUS.get(code, ("unknown status", None))
        try:
            name = Mountstat3(code).name
        except ValueError:
            name = f"mountstat3 {code}"
        super().__init__(f"mount of export {path!r} failed: {name}: {meaning}", detail=code)
        self.status = code
        self.path = path
        self.meaning = meaning
        self.errno = posix


class MountNoEntError(MountError, FileNotFoundError):
    """``MNT3ERR_NOENT``: the export does not exist."""

    status = Mountstat3.MNT3ERR_NOENT


class MountAccesError(MountError, PermissionError):
    """``MNT3ERR_ACCES``: this client may not mount the export."""

    status = Mountstat3.MNT3ERR_ACCES


MOUNT_ERRORS: dict[int, type[MountError]] = {
    cls.status: cls for cls in (MountNoEntError, MountAccesError)
}


def mount_error(path: str, status: int) -> MountError:
    """Return the exception for a ``mountstat3`` other than ``MNT3_OK``."""
    return MOUNT_ERRORS.get(status, MountError)(path, status)
