"""A scriptable NFSv3 file on :class:`~tests.nfs.fakeserver.FakeRpcServer`: WRITE, COMMIT and
READ of one in-memory file, with a duplicate request cache and WRITEs that can be *held*.

Enough of RFC 1813 for an :class:`~swapio_nfs._backend.NfsSwapFile` built directly on an
:class:`~swapio_nfs._client.NfsClient` (no MOUNT, no activation).  A held WRITE is received and
neither executed nor answered until the test calls :meth:`FakeNfsFile.release`: a server thread
that stalls past the client's timeout and then runs the request after all.

The duplicate request cache behaves like nfs-ganesha's (``nfs_dupreq_start``): a call whose XID
is being executed is dropped, a call whose XID has been executed is answered from the cache
without being executed again (RFC 5531 §5 leaves this to the server; RFC 1813 §4.5 describes
it).  Unlike ganesha's per-connection TCP cache it is keyed by XID alone, so it also recognises
a retransmission that arrives on a new connection.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from swapio_nfs._nfs3 import NFS_PROG, NfsProc, StableHow
from swapio_nfs._rpc import Call, encode_accepted_reply
from swapio_nfs._xdr import Packer, Unpacker

from .fakeserver import FakeConn

VERIFIER = b"fakeverf"


@dataclass
class Write:
    """One WRITE as the server saw it."""

    xid: int
    offset: int
    data: bytes
    stable: int


@dataclass
class FakeNfsFile:
    """One file of ``size`` bytes; hand :meth:`handle` to a ``FakeRpcServer``."""

    size: int
    data: bytearray = field(init=False)
    #: every WRITE call received, retransmissions included, in arrival order
    received: list[Write] = field(default_factory=list)
    #: WRITEs executed (applied to ``data``), in execution order
    executed: list[Write] = field(default_factory=list)
    #: offsets whose next WRITE is held instead of executed
    hold_offsets: set[int] = field(default_factory=set)
    held: dict[int, tuple[Write, FakeConn]] = field(default_factory=dict)
    _cache: dict[int, bytes] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.data = bytearray(self.size)

    # ----------------------------------------------------------------- test controls

    def hold_next_write(self, offset: int) -> None:
        """The next WRITE at ``offset`` is received but not executed until :meth:`release`."""
        self.hold_offsets.add(offset)

    def release(self, xid: int) -> None:
        """Execute the held WRITE ``xid`` now and answer it (on the connection its latest
        copy arrived on, if that one is still open)."""
        write, conn = self.held.pop(xid)
        self._execute(write)
        if not conn.writer.is_closing():
            conn.reply(self._cache[xid])

    def copies(self, xid: int) -> int:
        """How many times a WRITE with this XID was received."""
        return sum(1 for w in self.received if w.xid == xid)

    async def wait_for(self, condition: object, timeout: float = 10.0) -> None:
        """Wait until ``condition()`` is true (re-checked whenever a call arrives)."""
        assert callable(condition)
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    # ----------------------------------------------------------------- server

    async def handle(self, call: Call, conn: FakeConn) -> bytes | None:
        """The ``FakeRpcServer`` handler."""
        self._changed.set()
        assert call.prog == NFS_PROG
        if call.xid in self._cache:  # a retransmission of an executed call: from the cache
            return self._cache[call.xid]
        if call.proc == NfsProc.WRITE:
            write = decode_write(call)
            self.received.append(write)
            if call.xid in self.held:  # being executed: drop the duplicate, note its path
                self.held[call.xid] = (write, conn)
                return None
            if write.offset in self.hold_offsets:
                self.hold_offsets.discard(write.offset)
                self.held[call.xid] = (write, conn)
                return None
            self._execute(write)
            return self._cache[call.xid]
        if call.proc == NfsProc.COMMIT:
            return encode_accepted_reply(call.xid, _commit_res())
        if call.proc == NfsProc.READ:
            u = Unpacker(call.args)
            u.unpack_opaque(64)
            offset, count = u.unpack_uhyper(), u.unpack_uint()
            chunk = bytes(self.data[offset : offset + count])
            return encode_accepted_reply(call.xid, _read_res(chunk, offset + count >= self.size))
        raise AssertionError(f"the fake NFS server does not implement procedure {call.proc}")

    def _execute(self, write: Write) -> None:
        self.data[write.offset : write.offset + len(write.data)] = write.data
        self.executed.append(write)
        self._cache[write.xid] = encode_accepted_reply(write.xid, _write_res(len(write.data)))
        self._changed.set()


def decode_write(call: Call) -> Write:
    """WRITE3args (RFC 1813 §3.3.7) of a call."""
    u = Unpacker(call.args)
    u.unpack_opaque(64)
    offset = u.unpack_uhyper()
    u.unpack_uint()  # count
    stable = u.unpack_uint()
    return Write(call.xid, offset, u.unpack_opaque(), stable)


def _no_wcc(p: Packer) -> None:
    p.pack_bool(False)  # pre_op_attr
    p.pack_bool(False)  # post_op_attr


def _write_res(count: int) -> bytes:
    p = Packer()
    p.pack_uint(0)  # NFS3_OK
    _no_wcc(p)
    p.pack_uint(count)
    p.pack_uint(StableHow.UNSTABLE)
    p.pack_fopaque(8, VERIFIER)
    return p.get_buffer()


def _commit_res() -> bytes:
    p = Packer()
    p.pack_uint(0)
    _no_wcc(p)
    p.pack_fopaque(8, VERIFIER)
    return p.get_buffer()


def _read_res(chunk: bytes, eof: bool) -> bytes:
    p = Packer()
    p.pack_uint(0)
    p.pack_bool(False)  # post_op_attr
    p.pack_uint(len(chunk))
    p.pack_bool(eof)
    p.pack_opaque(chunk)
    return p.get_buffer()
