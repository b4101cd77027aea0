"""An NFSv3 client on :class:`~swapio_nfs._transport.RpcConnection`: mount, then procedures.

Port discovery (port mapper GETPORT) and MOUNT v3 run on short-lived connections without the
page pool; NFS calls run on one long-lived connection whose reply buffers come from the
pool.  ``NFS3ERR_JUKEBOX`` (server busy, e.g. during its grace period after a restart) is
retried with backoff, as the Linux client does (``nfs3_rpc_wrapper``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from swapio_nfs._errors import NfsJukeboxError, RpcConnectionError
from swapio_nfs._mount import (
    MOUNT_PROG,
    MOUNT_VERS,
    MountProc,
    MountResult,
    decode_mnt_res,
    encode_dirpath,
)
from swapio_nfs._nfs3 import (
    NFS_PROG,
    NFS_VERS,
    READ3RES_HEAD_MAX,
    Access3,
    AccessResult,
    CommitResult,
    CreateMode,
    CreateResult,
    Fattr3,
    FsinfoResult,
    FsstatResult,
    LookupResult,
    NfsProc,
    Sattr3,
    StableHow,
    WccData,
    WriteResult,
    decode_access_res,
    decode_commit_res,
    decode_create_res,
    decode_fsinfo_res,
    decode_fsstat_res,
    decode_getattr_res,
    decode_lookup_res,
    decode_read_placed,
    decode_remove_res,
    decode_setattr_res,
    decode_write_res,
    encode_access_args,
    encode_commit_args,
    encode_create_args,
    encode_diropargs,
    encode_fh_args,
    encode_read_args,
    encode_setattr_args,
    encode_write_args,
    read_data_span,
)
from swapio_nfs._portmap import (
    PMAP_PORT,
    PMAP_PROG,
    PMAP_VERS,
    PmapProc,
    decode_getport_res,
    encode_getport_args,
)
from swapio_nfs._receive import Placement
from swapio_nfs._rpc import AuthSys, OpaqueAuth
from swapio_nfs._transport import DoubtCallback, RetryPolicy, RpcConnection
from swapio_nfs._xdr import Buffer

if TYPE_CHECKING:
    from swapio.pool import PagePool

T = TypeVar("T")

JUKEBOX_RETRIES = 20
JUKEBOX_DELAY = 0.1
JUKEBOX_DELAY_MAX = 2.0
_PROGRAM = {proc: f"NFS {proc.name}" for proc in NfsProc}

_ReadCodec = tuple[
    Callable[[memoryview], "tuple[int, int] | None"],
    Callable[[memoryview], "tuple[int, bool, bytes]"],
]
_READ_CODECS: dict[int, _ReadCodec] = {}
_READ_CODECS_MAX = 1024


def _read_codec(total: int) -> _ReadCodec:
    """The data-span finder and decoder of a READ of ``total`` bytes (made once per size)."""
    codec = _READ_CODECS.get(total)
    if codec is None:

        def span(res: memoryview) -> tuple[int, int] | None:
            return read_data_span(res, total)

        def decode(res: memoryview) -> tuple[int, bool, bytes]:
            count, eof, inline = decode_read_placed(res, total)
            return count, eof, bytes(inline)  # empty when the data was placed

        if len(_READ_CODECS) >= _READ_CODECS_MAX:
            _READ_CODECS.clear()
        codec = _READ_CODECS[total] = (span, decode)
    return codec


async def getport(
    host: str, prog: int, vers: int, *, policy: RetryPolicy | None = None, port: int = PMAP_PORT
) -> int:
    """Ask the port mapper on ``host`` for the TCP port of ``prog``/``vers`` (RFC 1833 §3.2)."""
    conn = RpcConnection(host, port, policy=policy, name="portmapper")
    try:
        await conn.connect()
        with await conn.call(
            PMAP_PROG, PMAP_VERS, PmapProc.GETPORT, encode_getport_args(prog, vers)
        ) as res:
            found = decode_getport_res(res.results)
    finally:
        await conn.close()
    if found == 0:
        raise RpcConnectionError(
            f"the port mapper on {host} knows no TCP service for program {prog} version {vers}"
        )
    return found


class NfsClient:
    """A mounted NFSv3 export.  Create with :meth:`mount`; release with :meth:`unmount`."""

    def __init__(
        self,
        host: str,
        mount_path: str,
        root_fh: bytes,
        conns: Sequence[RpcConnection],
        cred: OpaqueAuth,
        mount_port: int,
    ) -> None:
        if not conns:
            raise ValueError("an NfsClient needs at least one connection")
        self.host = host
        self.mount_path = mount_path
        self.root_fh = root_fh
        self.conns = list(conns)
        self.conn = self.conns[0]
        self.cred = cred
        self.mount_port = mount_port
        self._next = 0

    def _pick(self) -> RpcConnection:
        """The connection for the next call: round robin (Linux ``nconnect``)."""
        conns = self.conns
        if len(conns) == 1:
            return conns[0]
        self._next = (self._next + 1) % len(conns)
        return conns[self._next]

    @classmethod
    async def mount(
        cls,
        host: str,
        mount_path: str,
        *,
        nfsport: int | None = None,
        mountport: int | None = None,
        uid: int = 0,
        gid: int = 0,
        pool: PagePool | None = None,
        policy: RetryPolicy | None = None,
        nconnect: int = 1,
    ) -> NfsClient:
        """Mount ``mount_path`` on ``host`` and open ``nconnect`` NFS connections."""
        policy = policy or RetryPolicy()
        cred = AuthSys(uid=uid, gid=gid, gids=(gid,)).credential()
        if mountport is None:
            mountport = await getport(host, MOUNT_PROG, MOUNT_VERS, policy=policy)
        if nfsport is None:
            nfsport = await getport(host, NFS_PROG, NFS_VERS, policy=policy)
        result = await mount_export(host, mountport, mount_path, cred, policy)
        conns = [
            RpcConnection(
                host,
                nfsport,
                pool=pool,
                sock_memalloc=pool is not None,
                policy=policy,
                name="NFS",
                reuse_port=True,  # the server's duplicate request cache: see Link.open
            )
            for _ in range(nconnect)
        ]
        try:
            for conn in conns:
                await conn.connect()
        except BaseException:
            for conn in conns:
                await conn.close()
            raise
        return cls(host, mount_path, result.fhandle, conns, cred, mountport)

    async def remount(self) -> bytes:
        """MNT again (after ESTALE on the root); returns and stores the new root handle."""
        result = await mount_export(
            self.host, self.mount_port, self.mount_path, self.cred, self.conn.policy
        )
        self.root_fh = result.fhandle
        return self.root_fh

    async def unmount(self) -> None:
        """UMNT (best effort: RFC 1813 says the server may ignore it) and close."""
        try:
            conn = RpcConnection(self.host, self.mount_port, policy=self.conn.policy, name="MOUNT")
            try:
                await conn.connect()
                (
                    await conn.call(
                        MOUNT_PROG,
                        MOUNT_VERS,
                        MountProc.UMNT,
                        encode_dirpath(self.mount_path),
                        cred=self.cred,
                    )
                ).release()
            finally:
                await conn.close()
        except (RpcConnectionError, OSError):
            pass
        finally:
            for conn in self.conns:
                await conn.close()

    # ----------------------------------------------------------------- plumbing

    async def _call(
        self,
        proc: NfsProc,
        args: Buffer | Sequence[Buffer],
        decode: Callable[[memoryview], T],
        placement: Placement | None = None,
        on_doubt: DoubtCallback | None = None,
    ) -> T:
        """Call ``proc`` and decode its results; ``NFS3ERR_JUKEBOX`` is retried with backoff.

        Every procedure, READ included, goes through this one loop.  ``on_doubt``: see
        :meth:`RpcConnection.call` (each JUKEBOX retry is a new call with a new XID).
        """
        delay = JUKEBOX_DELAY
        for attempt in range(JUKEBOX_RETRIES + 1):
            res = await self._pick().call(
                NFS_PROG,
                NFS_VERS,
                proc,
                args,
                cred=self.cred,
                program=_PROGRAM[proc],
                placement=placement,
                on_doubt=on_doubt,
            )
            try:
                return decode(res.results)
            except NfsJukeboxError:
                if attempt == JUKEBOX_RETRIES:
                    raise
            finally:
                res.release()
            await asyncio.sleep(delay)
            delay = min(delay * 2, JUKEBOX_DELAY_MAX)
        raise AssertionError("unreachable")

    # ----------------------------------------------------------------- procedures

    async def null(self) -> None:
        """NFSPROC3_NULL (RFC 1813 §3.3.0): a ping."""
        with await self._pick().call(NFS_PROG, NFS_VERS, NfsProc.NULL, b"", cred=self.cred):
            pass

    async def getattr(self, fh: bytes) -> Fattr3:
        """GETATTR (§3.3.1)."""
        return await self._call(NfsProc.GETATTR, encode_fh_args(fh), decode_getattr_res)

    async def setattr(self, fh: bytes, attrs: Sattr3) -> WccData:
        """SETATTR (§3.3.2) without a guard."""
        return await self._call(NfsProc.SETATTR, encode_setattr_args(fh, attrs), decode_setattr_res)

    async def lookup(self, dir_fh: bytes, name: str) -> LookupResult:
        """LOOKUP (§3.3.3)."""
        return await self._call(
            NfsProc.LOOKUP, encode_diropargs(dir_fh, name), lambda r: decode_lookup_res(r, name)
        )

    async def access(self, fh: bytes, access: Access3) -> AccessResult:
        """ACCESS (§3.3.4)."""
        return await self._call(NfsProc.ACCESS, encode_access_args(fh, access), decode_access_res)

    async def create(
        self,
        dir_fh: bytes,
        name: str,
        mode: CreateMode = CreateMode.GUARDED,
        attrs: Sattr3 | None = None,
    ) -> CreateResult:
        """CREATE (§3.3.8)."""
        return await self._call(
            NfsProc.CREATE,
            encode_create_args(dir_fh, name, mode, attrs),
            lambda r: decode_create_res(r, name),
        )

    async def remove(self, dir_fh: bytes, name: str) -> WccData:
        """REMOVE (§3.3.12)."""
        return await self._call(
            NfsProc.REMOVE, encode_diropargs(dir_fh, name), lambda r: decode_remove_res(r, name)
        )

    async def read_into(self, fh: bytes, offset: int, dest: memoryview) -> tuple[int, bool]:
        """READ (§3.3.6) ``len(dest)`` bytes at ``offset`` into ``dest``; ``(count, eof)``."""
        return await self.read_pages(fh, offset, [dest])

    async def read_pages(
        self, fh: bytes, offset: int, pages: Sequence[memoryview]
    ) -> tuple[int, bool]:
        """READ ``sum(len(p))`` bytes at ``offset`` scattered into ``pages`` (one call).

        The reply's data is received straight into ``pages`` (no copy in user space once its
        header has arrived).  Returns ``(count, eof)``; bytes past ``count`` are untouched.
        """
        total = pages[0].nbytes if len(pages) == 1 else sum(p.nbytes for p in pages)
        span, decode = _read_codec(total)
        count, eof, inline = await self._call(
            NfsProc.READ,
            encode_read_args(fh, offset, total),
            decode,
            Placement(span, pages, READ3RES_HEAD_MAX, total),
        )
        if inline:  # the reply was received whole without placement: copy it out
            view, pos = memoryview(inline), 0
            for page in pages:
                n = min(page.nbytes, len(inline) - pos)
                if n <= 0:
                    break
                page[:n] = view[pos : pos + n]
                pos += n
        return count, eof

    async def read(self, fh: bytes, offset: int, count: int) -> bytes:
        """READ returning a copy of the data (short at end of file)."""
        buf = bytearray(count)
        n, _ = await self.read_into(fh, offset, memoryview(buf))
        return bytes(buf[:n])

    async def write(
        self,
        fh: bytes,
        offset: int,
        data: Buffer | Sequence[Buffer],
        stable: StableHow = StableHow.UNSTABLE,
        *,
        on_doubt: DoubtCallback | None = None,
    ) -> WriteResult:
        """WRITE (§3.3.7) the concatenation of ``data`` at ``offset``.

        ``on_doubt(xid, settled)``: the WRITE was sent but this call ends without its reply;
        the server may still execute it until ``settled`` completes (:meth:`RpcConnection.call`).
        """
        pieces: list[Buffer] = (
            [data] if isinstance(data, bytes | bytearray | memoryview) else list(data)
        )
        return await self._call(
            NfsProc.WRITE,
            encode_write_args(fh, offset, pieces, stable),
            decode_write_res,
            on_doubt=on_doubt,
        )

    async def commit(self, fh: bytes, offset: int = 0, count: int = 0) -> CommitResult:
        """COMMIT (§3.3.21); ``count == 0`` commits from ``offset`` to the end of the file."""
        return await self._call(
            NfsProc.COMMIT, encode_commit_args(fh, offset, count), decode_commit_res
        )

    async def fsinfo(self, fh: bytes | None = None) -> FsinfoResult:
        """FSINFO (§3.3.19) of the export (or of ``fh``)."""
        return await self._call(
            NfsProc.FSINFO, encode_fh_args(fh or self.root_fh), decode_fsinfo_res
        )

    async def fsstat(self, fh: bytes | None = None) -> FsstatResult:
        """FSSTAT (§3.3.18) of the export (or of ``fh``)."""
        return await self._call(
            NfsProc.FSSTAT, encode_fh_args(fh or self.root_fh), decode_fsstat_res
        )


async def mount_export(
    host: str, port: int, path: str, cred: OpaqueAuth, policy: RetryPolicy | None = None
) -> MountResult:
    """MOUNTPROC3_MNT (RFC 1813 §5.2.1) on a short-lived connection."""
    conn = RpcConnection(host, port, policy=policy, name="MOUNT")
    try:
        await conn.connect()
        with await conn.call(
            MOUNT_PROG, MOUNT_VERS, MountProc.MNT, encode_dirpath(path), cred=cred
        ) as res:
            return decode_mnt_res(res.results, path)
    finally:
        await conn.close()
