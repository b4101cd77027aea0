"""Exceptions of the NFS backend, each a subclass of a :mod:`swapio.errors` class.

Whose fault, in h11's terms: :class:`XdrDecodeError`, :class:`RecordMarkError` and
:class:`MalformedReplyError` mean the server sent bytes that break RFC 4506/5531;
:class:`XdrEncodeError` means we were about to.  Status errors carry what the peer said:
every ``accept_stat`` and ``reject_stat`` of RFC 5531 §9, every ``nfsstat3`` of RFC 1813 §2.6
and every ``mountstat3`` of RFC 1813 §5.1.1 has its own class, found with
:func:`nfs_error` / :func:`mount_error`.
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


class NfsError(BackendIOError):
    """An NFSv3 procedure returned a status other than ``NFS3_OK``.

    ``status`` is the raw ``nfsstat3``; ``errno`` the matching POSIX error where one exists.
    """

    status: int = -1
    posix_errno: int | None = None
    meaning: str = "unknown status"

    def __init__(self, procedure: str, status: int | None = None, context: str = "") -> None:
        code = self.status if status is None else status
        name = _NFS_NAMES.get(code, f"nfsstat3 {code}")
        where = f" ({context})" if context else ""
        super().__init__(f"NFS {procedure}{where} failed: {name}: {self.meaning}", detail=code)
        self.status = code
        self.procedure = procedure
        self.errno = self.posix_errno


class NfsPermError(NfsError, PermissionError):
    """``NFS3ERR_PERM``: not owner (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_PERM
    posix_errno = _errno.EPERM
    meaning = "not owner"


class NfsNoEntError(NfsError):
    """``NFS3ERR_NOENT``: no such file or directory (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_NOENT
    posix_errno = _errno.ENOENT
    meaning = "no such file or directory"


class NfsIOError(NfsError):
    """``NFS3ERR_IO``: hard I/O error (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_IO
    posix_errno = _errno.EIO
    meaning = "hard I/O error"


class NfsNxioError(NfsError):
    """``NFS3ERR_NXIO``: no such device or address (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_NXIO
    posix_errno = _errno.ENXIO
    meaning = "no such device or address"


class NfsAccesError(NfsError, PermissionError):
    """``NFS3ERR_ACCES``: permission denied (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_ACCES
    posix_errno = _errno.EACCES
    meaning = "permission denied"


class NfsExistError(NfsError, FileExistsError):
    """``NFS3ERR_EXIST``: file exists (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_EXIST
    posix_errno = _errno.EEXIST
    meaning = "file exists"


class NfsXdevError(NfsError):
    """``NFS3ERR_XDEV``: attempt at a cross-device link (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_XDEV
    posix_errno = _errno.EXDEV
    meaning = "attempt at a cross-device link"


class NfsNodevError(NfsError):
    """``NFS3ERR_NODEV``: no such device (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_NODEV
    posix_errno = _errno.ENODEV
    meaning = "no such device"


class NfsNotDirError(NfsError, NotADirectoryError):
    """``NFS3ERR_NOTDIR``: not a directory (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_NOTDIR
    posix_errno = _errno.ENOTDIR
    meaning = "not a directory"


class NfsIsDirError(NfsError, IsADirectoryError):
    """``NFS3ERR_ISDIR``: is a directory (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_ISDIR
    posix_errno = _errno.EISDIR
    meaning = "is a directory"


class NfsInvalError(NfsError):
    """``NFS3ERR_INVAL``: invalid argument (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_INVAL
    posix_errno = _errno.EINVAL
    meaning = "invalid argument"


class NfsFbigError(NfsError):
    """``NFS3ERR_FBIG``: file too large (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_FBIG
    posix_errno = _errno.EFBIG
    meaning = "file too large"


class NfsNospcError(NfsError):
    """``NFS3ERR_NOSPC``: no space left on device (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_NOSPC
    posix_errno = _errno.ENOSPC
    meaning = "no space left on device"


class NfsRofsError(NfsError):
    """``NFS3ERR_ROFS``: read-only file system (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_ROFS
    posix_errno = _errno.EROFS
    meaning = "read-only file system"


class NfsMlinkError(NfsError):
    """``NFS3ERR_MLINK``: too many links (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_MLINK
    posix_errno = _errno.EMLINK
    meaning = "too many links"


class NfsNameTooLongError(NfsError):
    """``NFS3ERR_NAMETOOLONG``: name too long (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_NAMETOOLONG
    posix_errno = _errno.ENAMETOOLONG
    meaning = "name too long"


class NfsNotEmptyError(NfsError):
    """``NFS3ERR_NOTEMPTY``: directory not empty (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_NOTEMPTY
    posix_errno = _errno.ENOTEMPTY
    meaning = "directory not empty"


class NfsDquotError(NfsError):
    """``NFS3ERR_DQUOT``: disk quota exceeded (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_DQUOT
    posix_errno = _errno.EDQUOT
    meaning = "disk quota exceeded"


class NfsStaleError(NfsError):
    """``NFS3ERR_STALE``: stale file handle (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_STALE
    posix_errno = _errno.ESTALE
    meaning = "stale file handle"


class NfsRemoteError(NfsError):
    """``NFS3ERR_REMOTE``: too many levels of remote in path (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_REMOTE
    posix_errno = _errno.EREMOTE
    meaning = "too many levels of remote in path"


class NfsBadHandleError(NfsError):
    """``NFS3ERR_BADHANDLE``: illegal file handle (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_BADHANDLE
    posix_errno = _errno.EBADF
    meaning = "illegal file handle"


class NfsNotSyncError(NfsError):
    """``NFS3ERR_NOT_SYNC``: SETATTR guard check failed (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_NOT_SYNC
    posix_errno = None
    meaning = "SETATTR guard check failed"


class NfsBadCookieError(NfsError):
    """``NFS3ERR_BAD_COOKIE``: READDIR cookie is stale (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_BAD_COOKIE
    posix_errno = None
    meaning = "READDIR cookie is stale"


class NfsNotSuppError(NfsError):
    """``NFS3ERR_NOTSUPP``: operation not supported (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_NOTSUPP
    posix_errno = _errno.EOPNOTSUPP
    meaning = "operation not supported"


class NfsTooSmallError(NfsError):
    """``NFS3ERR_TOOSMALL``: buffer or request is too small (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_TOOSMALL
    posix_errno = None
    meaning = "buffer or request is too small"


class NfsServerFaultError(NfsError):
    """``NFS3ERR_SERVERFAULT``: server fault (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_SERVERFAULT
    posix_errno = _errno.EIO
    meaning = "server fault"


class NfsBadTypeError(NfsError):
    """``NFS3ERR_BADTYPE``: object type not supported (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_BADTYPE
    posix_errno = None
    meaning = "object type not supported"


class NfsJukeboxError(NfsError):
    """``NFS3ERR_JUKEBOX``: server busy, try again later (RFC 1813 §2.6)."""

    status = Nfsstat3.NFS3ERR_JUKEBOX
    posix_errno = _errno.EAGAIN
    meaning = "server busy, try again later"


_NFS_NAMES = {int(s): s.name for s in Nfsstat3}
NFS_ERRORS: dict[int, type[NfsError]] = {
    cls.status: cls
    for cls in (
        NfsPermError,
        NfsNoEntError,
        NfsIOError,
        NfsNxioError,
        NfsAccesError,
        NfsExistError,
        NfsXdevError,
        NfsNodevError,
        NfsNotDirError,
        NfsIsDirError,
        NfsInvalError,
        NfsFbigError,
        NfsNospcError,
        NfsRofsError,
        NfsMlinkError,
        NfsNameTooLongError,
        NfsNotEmptyError,
        NfsDquotError,
        NfsStaleError,
        NfsRemoteError,
        NfsBadHandleError,
        NfsNotSyncError,
        NfsBadCookieError,
        NfsNotSuppError,
        NfsTooSmallError,
        NfsServerFaultError,
        NfsBadTypeError,
        NfsJukeboxError,
    )
}


def nfs_error(procedure: str, status: int, context: str = "") -> NfsError:
    """Return the exception for an ``nfsstat3`` other than ``NFS3_OK``.

    A status RFC 1813 does not define still yields an :class:`NfsError` carrying the number.
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


class MountError(BackendIOError):
    """MOUNT v3 ``MNT`` refused the export path; ``status`` is the ``mountstat3``."""

    status: int = -1
    posix_errno: int | None = None
    meaning: str = "unknown status"

    def __init__(self, path: str, status: int | None = None) -> None:
        code = self.status if status is None else status
        try:
            name = Mountstat3(code).name
        except ValueError:
            name = f"mountstat3 {code}"
        super().__init__(f"mount of export {path!r} failed: {name}: {self.meaning}", detail=code)
        self.status = code
        self.path = path
        self.errno = self.posix_errno


class MountPermError(MountError, PermissionError):
    """``MNT3ERR_PERM``: not owner (RFC 1813 §5.1.1)."""

    status = Mountstat3.MNT3ERR_PERM
    posix_errno = _errno.EPERM
    meaning = "not owner"


class MountNoEntError(MountError, FileNotFoundError):
    """``MNT3ERR_NOENT``: no such export (RFC 1813 §5.1.1)."""

    status = Mountstat3.MNT3ERR_NOENT
    posix_errno = _errno.ENOENT
    meaning = "no such export"


class MountIOError(MountError):
    """``MNT3ERR_IO``: I/O error (RFC 1813 §5.1.1)."""

    status = Mountstat3.MNT3ERR_IO
    posix_errno = _errno.EIO
    meaning = "I/O error"


class MountAccesError(MountError, PermissionError):
    """``MNT3ERR_ACCES``: permission denied (RFC 1813 §5.1.1)."""

    status = Mountstat3.MNT3ERR_ACCES
    posix_errno = _errno.EACCES
    meaning = "permission denied"


class MountNotDirError(MountError):
    """``MNT3ERR_NOTDIR``: not a directory (RFC 1813 §5.1.1)."""

    status = Mountstat3.MNT3ERR_NOTDIR
    posix_errno = _errno.ENOTDIR
    meaning = "not a directory"


class MountInvalError(MountError):
    """``MNT3ERR_INVAL``: invalid argument (RFC 1813 §5.1.1)."""

    status = Mountstat3.MNT3ERR_INVAL
    posix_errno = _errno.EINVAL
    meaning = "invalid argument"


class MountNameTooLongError(MountError):
    """``MNT3ERR_NAMETOOLONG``: path too long (RFC 1813 §5.1.1)."""

    status = Mountstat3.MNT3ERR_NAMETOOLONG
    posix_errno = _errno.ENAMETOOLONG
    meaning = "path too long"


class MountNotSuppError(MountError):
    """``MNT3ERR_NOTSUPP``: operation not supported (RFC 1813 §5.1.1)."""

    status = Mountstat3.MNT3ERR_NOTSUPP
    posix_errno = _errno.EOPNOTSUPP
    meaning = "operation not supported"


class MountServerFaultError(MountError):
    """``MNT3ERR_SERVERFAULT``: server fault (RFC 1813 §5.1.1)."""

    status = Mountstat3.MNT3ERR_SERVERFAULT
    posix_errno = _errno.EIO
    meaning = "server fault"


MOUNT_ERRORS: dict[int, type[MountError]] = {
    cls.status: cls
    for cls in (
        MountPermError,
        MountNoEntError,
        MountIOError,
        MountAccesError,
        MountNotDirError,
        MountInvalError,
        MountNameTooLongError,
        MountNotSuppError,
        MountServerFaultError,
    )
}


def mount_error(path: str, status: int) -> MountError:
    """Return the exception for a ``mountstat3`` other than ``MNT3_OK``."""
    return MOUNT_ERRORS.get(status, MountError)(path, status)
