"""A swap file on an NFSv3 server: activation, swap-out with COMMIT, swap-in, ESTALE.

The user-space counterpart of ``nfs_swap_activate`` / ``nfs_swap_rw`` in Linux:

* **Activation** mounts the directory of the URL, sizes requests from FSINFO (``rtmax``,
  ``wtmax``), and either creates the file (``CREATE GUARDED``, mode 0600) and **preallocates**
  it by writing zeros over its whole length, or opens it and **refuses holes** (``used <
  size``, as ``swapon`` refuses a file with holes), directories and other non-regular files,
  sizes that are not a whole number of pages, and files we may not read and modify.
* **Swap-out** sends one ``UNSTABLE`` WRITE per request (adjacent pages are already merged by
  the area, up to ``wtmax``), then a COMMIT shared by every swap-out whose WRITE finished
  before it started (group commit).  The **write verifier** of each WRITE is compared with the
  COMMIT's: a difference means the server restarted and may have lost the unstable data, so
  the WRITE is sent again with ``FILE_SYNC``.  A swap-out completes only when its data is on
  the server's stable storage: the area is ``durable``.
* **In-doubt WRITEs**: a swap-out WRITE that was sent and never answered (timeout, broken
  connection, cancelled caller) is kept by the transport and sent again with its XID until the
  server answers it; until then a later WRITE of an overlapping range waits (at most one
  call's retry budget, then :class:`RpcTimeoutError` without sending), so the server can
  never apply the old data after the new (:mod:`swapio_nfs._fence`).
* ``NFS3ERR_STALE`` makes the backend look the file up again from the export (re-mounting if
  the export's handle is stale too); if the name now names another file (different
  ``fileid``), the error says so instead of writing to the wrong file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import NamedTuple, TypeVar

from swapio.area import Capabilities, PageBuffer, SwapArea
from swapio.errors import (
    AreaError,
    AreaExistsError,
    AreaFormatError,
    AreaNotFoundError,
)
from swapio.location import area_page_size
from swapio.memalloc import in_memalloc
from swapio_nfs._client import NfsClient
from swapio_nfs._errors import (
    NfsAccesError,
    NfsBadHandleError,
    NfsExistError,
    NfsIOError,
    NfsNoEntError,
    NfsStaleError,
    RpcConnectionError,
    RpcTimeoutError,
)
from swapio_nfs._fence import DoubtRanges
from swapio_nfs._nfs3 import (
    Access3,
    CreateMode,
    Fattr3,
    Ftype3,
    Sattr3,
    StableHow,
    WriteResult,
)
from swapio_nfs._receive import RESERVE_PAGES_PER_REPLY
from swapio_nfs._record import DEFAULT_MAX_RECORD
from swapio_nfs._transport import RetryPolicy
from swapio_nfs._url import NfsUrl, parse_nfs_url
from swapio_nfs._window import run_windowed

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Largest READ/WRITE payload swapio sends, whatever FSINFO allows (Linux caps at 1 MiB too).
MAX_IO_BYTES = 1 << 20
#: Headroom in a reply record beyond its data (RPC header, attributes).
REPLY_OVERHEAD = 1024
#: Largest request the area accepts; larger than one transfer, it is sent as several.
MAX_REQUEST_BYTES = 16 << 20
#: Transfers of one ordinary request in flight at once (memalloc requests send theirs one at
#: a time, so that one request never pins more than one reserve receive buffer).
TRANSFER_WINDOW = 4
QUEUE_DEPTH = 32
PREALLOC_CONCURRENCY = 4
FILE_MODE = 0o600
#: In-doubt WRITE bytes (copies the transport keeps to send again, in ordinary memory) above
#: which a new WRITE waits for one to settle: a server that stops answering cannot make the
#: client accumulate copies without bound while the pager retries elsewhere.
MAX_IN_DOUBT_BYTES = 2 * TRANSFER_WINDOW * MAX_IO_BYTES


class InDoubtWrite(NamedTuple):
    """A WRITE sent and not answered: ``settled`` completes when its XID's reply arrives."""

    xid: int
    settled: asyncio.Future[None]


class NfsSwapFile:
    """The ``private`` state of an active NFS area (``sis->swap_file``)."""

    def __init__(
        self,
        url: NfsUrl,
        client: NfsClient,
        fh: bytes,
        attrs: Fattr3,
        pages: int,
        max_io: int,
    ) -> None:
        self.url = url
        self.client = client
        self.fh = fh
        self.fileid = attrs.fileid
        self.page_size = url.page_size
        self.pages = pages
        self.max_io = max_io
        self.verifier: bytes | None = None
        self._commit_lock = asyncio.Lock()
        # the reserve is sized for QUEUE_DEPTH memalloc requests: never more in flight, whoever
        # the caller (the scheduler caps them too; a direct caller of the area would not)
        self._memalloc_slots = asyncio.Semaphore(QUEUE_DEPTH)
        self._memalloc_inflight = 0
        self._writes_done = 0
        self._committed_upto = 0
        self._commit_verifier = b""
        self._doubts: DoubtRanges[InDoubtWrite] = DoubtRanges()
        # counters, for tests and the benchmark
        self.doubt_waits = 0
        """WRITEs that waited for an in-doubt WRITE of an overlapping range."""
        self.commits = 0
        self.rewrites = 0
        self.verifier_changes = 0
        self.relookups = 0
        self.peak_memalloc_inflight = 0

    # ----------------------------------------------------------------- activation

    @classmethod
    async def activate(cls, area: SwapArea) -> NfsSwapFile:
        """Mount, open or create the swap file, and check it can be a swap area."""
        url = parse_nfs_url(area.location)
        defaults = RetryPolicy()
        policy = RetryPolicy(
            timeout=url.timeo if url.timeo is not None else defaults.timeout,
            retrans=url.retrans if url.retrans is not None else defaults.retrans,
        )
        client = await NfsClient.mount(
            url.host,
            url.mount_path,
            nfsport=url.nfsport,
            mountport=url.mountport,
            uid=url.uid,
            gid=url.gid,
            pool=area.pool,
            policy=policy,
            nconnect=url.nconnect,
        )
        try:
            return await cls._open(area, url, client)
        except BaseException:
            await client.unmount()
            raise

    @classmethod
    async def _open(cls, area: SwapArea, url: NfsUrl, client: NfsClient) -> NfsSwapFile:
        create = area.create
        page_size = area_page_size(area.location, create)  # the one core rule
        if page_size != url.page_size:
            url = dataclasses.replace(url, page_size=page_size)
        info = await client.fsinfo()
        max_io = min(info.rtmax, info.wtmax, MAX_IO_BYTES, DEFAULT_MAX_RECORD - REPLY_OVERHEAD)
        max_io -= max_io % url.page_size
        if max_io < url.page_size:
            raise AreaFormatError(
                f"{url.host}:{url.path}: the server allows transfers of at most "
                f"{min(info.rtmax, info.wtmax)} bytes, less than one {url.page_size}-byte page"
            )
        existing: tuple[bytes, Fattr3 | None] | None
        try:
            found = await client.lookup(client.root_fh, url.file_name)
            existing = (found.fh, found.attributes)
        except NfsNoEntError:
            existing = None
        if create is not None:
            if existing is not None:
                raise AreaExistsError(f"{url.host}:{url.path} already exists; not overwriting it")
            fh, attrs = await cls._create(client, url, create.pages, max_io, info.maxfilesize)
        else:
            if existing is None:
                raise AreaNotFoundError(
                    f"{url.host}:{url.path} does not exist (create the area first)"
                )
            fh, maybe = existing
            attrs = maybe if maybe is not None else await client.getattr(fh)
        pages = cls._check_file(url, attrs)
        granted = await client.access(fh, Access3.READ | Access3.MODIFY)
        if granted.access & (Access3.READ | Access3.MODIFY) != Access3.READ | Access3.MODIFY:
            raise NfsAccesError(
                "ACCESS",
                context=f"{url.path}: uid {url.uid} may not read and modify the swap file",
            )
        return cls(url, client, fh, attrs, pages, max_io)

    @staticmethod
    def _check_file(url: NfsUrl, attrs: Fattr3) -> int:
        where = f"{url.host}:{url.path}"
        if attrs.type == Ftype3.NF3DIR:
            raise AreaFormatError(f"{where} is a directory, not a swap file")
        if attrs.type != Ftype3.NF3REG:
            raise AreaFormatError(f"{where} is not a regular file (ftype3 {attrs.type})")
        if attrs.size == 0 or attrs.size % url.page_size:
            raise AreaFormatError(
                f"{where} is {attrs.size} bytes, not a positive whole number of "
                f"{url.page_size}-byte pages"
            )
        if attrs.used < attrs.size:
            raise AreaFormatError(
                f"{where} has holes ({attrs.used} bytes allocated for {attrs.size}); a swap "
                "file must be fully allocated (write it with zeros first, as for swapon)"
            )
        return attrs.size // url.page_size

    @classmethod
    async def _create(
        cls, client: NfsClient, url: NfsUrl, pages: int, max_io: int, max_file_size: int
    ) -> tuple[bytes, Fattr3]:
        size = pages * url.page_size
        await cls._check_room(client, url, size, max_file_size)
        try:
            made = await client.create(
                client.root_fh, url.file_name, CreateMode.GUARDED, Sattr3(mode=FILE_MODE)
            )
        except NfsExistError:
            raise AreaExistsError(f"{url.host}:{url.path} already exists") from None
        try:
            fh = made.fh or (await client.lookup(client.root_fh, url.file_name)).fh
            await cls._preallocate(client, fh, size, max_io)
            attrs = await client.getattr(fh)
        except BaseException:
            # never leave a half-made swap file behind: this call created it, so remove it
            try:
                await client.remove(client.root_fh, url.file_name)
            except Exception as exc:  # the original error matters more
                log.warning("could not remove partial swap file %s: %s", url.path, exc)
            raise
        return fh, attrs

    @staticmethod
    async def _check_room(client: NfsClient, url: NfsUrl, size: int, max_file_size: int) -> None:
        """Refuse a size above FSINFO ``maxfilesize`` or FSSTAT ``abytes`` before CREATE.

        RFC 1813 §3.3.19 (``maxfilesize``: the largest file the server supports) and §3.3.18
        (``abytes``: free bytes available to this user, which is at most ``fbytes``).
        """
        where = f"{url.host}:{url.path}"
        if size > max_file_size:
            raise AreaError(
                f"{where}: {size} bytes requested but the server's largest file is "
                f"{max_file_size} bytes (FSINFO maxfilesize)"
            )
        stat = await client.fsstat()
        free = min(stat.abytes, stat.fbytes)
        if size > free:
            raise AreaError(
                f"{where}: {size} bytes requested but only {free} bytes are free on the export "
                "(FSSTAT)"
            )

    @staticmethod
    async def _preallocate(client: NfsClient, fh: bytes, size: int, max_io: int) -> None:
        """Write zeros over the whole file, then COMMIT: no holes, space reserved.

        At most :data:`PREALLOC_CONCURRENCY` WRITEs are in flight: that many workers take
        offsets from one lazy iterator, so memory does not grow with the file's size.  The
        first failure stops the other workers and is raised.
        """
        zeros = memoryview(bytes(min(max_io, size)))

        async def write_all(stable: StableHow) -> set[bytes]:
            verifiers: set[bytes] = set()

            async def write_at(offset: int) -> None:
                n = min(len(zeros), size - offset)
                res = await client.write(fh, offset, zeros[:n], stable)
                if res.count != n:
                    raise NfsIOError(
                        "WRITE",
                        context=f"preallocation: server wrote {res.count} of {n} bytes "
                        f"at offset {offset}",
                    )
                verifiers.add(res.verifier)

            await run_windowed(range(0, size, len(zeros)), PREALLOC_CONCURRENCY, write_at)
            return verifiers

        verifiers = await write_all(StableHow.UNSTABLE)
        commit = await client.commit(fh)
        if verifiers != {commit.verifier}:  # the server restarted meanwhile: write stably
            await write_all(StableHow.FILE_SYNC)

    def capabilities(self, area: SwapArea) -> Capabilities:
        """Capabilities, with the reserve one in-flight memalloc swap-out needs.

        A swap-out's WRITE and COMMIT replies arrive one after the other, and each is decoded
        and released before the next call is made, so a request pins at most one receive
        buffer at a time; under pressure that buffer is one reserve page
        (:data:`~swapio_nfs._receive.RESERVE_PAGES_PER_REPLY`).  Its data pages are the
        caller's and are sent from where they are.
        """
        del area  # the need is in pool pages whatever the pool's page size
        return Capabilities(
            durable=True,
            discard=False,
            max_pages_per_request=max(self.max_io, MAX_REQUEST_BYTES) // self.page_size,
            queue_depth=QUEUE_DEPTH,
            reserve_pages_per_request=RESERVE_PAGES_PER_REPLY,
            memalloc_requests=QUEUE_DEPTH,
        )

    async def deactivate(self) -> None:
        """Wait for in-doubt WRITEs to be answered (within one call's budget), commit
        outstanding data and unmount."""
        try:
            if self._doubts.count:
                await self._settle_all_doubts()
            await self._retry_stale(lambda: self.client.commit(self.fh))
        finally:
            await self.client.unmount()

    async def _settle_all_doubts(self) -> None:
        waiting = [d.settled for d in self._doubts]
        _, left = await asyncio.wait(waiting, timeout=self.client.conn.policy.budget())
        if left:
            log.warning(
                "%s: %d WRITE(s) still unanswered at deactivation (xid %s); the server may "
                "still apply them",
                self.url.path,
                len(left),
                ", ".join(f"{d.xid:#x}" for d in self._doubts if d.settled in left),
            )

    # ----------------------------------------------------------------- ESTALE

    async def _retry_stale(self, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await op()
        except (NfsStaleError, NfsBadHandleError):
            await self._relookup()
            return await op()

    async def _relookup(self) -> None:
        """Find the file again after ESTALE; refuse if the name now names another file."""
        self.relookups += 1
        client = self.client
        try:
            found = await client.lookup(client.root_fh, self.url.file_name)
        except (NfsStaleError, NfsBadHandleError):
            await client.remount()
            found = await client.lookup(client.root_fh, self.url.file_name)
        attrs = found.attributes or await client.getattr(found.fh)
        if attrs.fileid != self.fileid:
            raise NfsStaleError(
                "LOOKUP",
                context=f"{self.url.path} was replaced by another file (fileid {self.fileid} "
                f"became {attrs.fileid}); the swap area's contents are gone",
            )
        self.fh = found.fh

    # ----------------------------------------------------------------- data path

    def _transfers(self, slot: int, pages: Sequence[T]) -> list[tuple[int, Sequence[T]]]:
        """The request as ``(offset, pages)`` pieces of at most one transfer (``max_io``)."""
        per = self.max_io // self.page_size
        size = self.page_size
        if len(pages) <= per:
            return [(slot * size, pages)]
        return [((slot + i) * size, pages[i : i + per]) for i in range(0, len(pages), per)]

    @staticmethod
    def _window() -> int:
        return 1 if in_memalloc() else TRANSFER_WINDOW

    async def swap_out(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        """WRITE UNSTABLE (one WRITE per transfer size, several in flight), then one (shared)
        COMMIT; a WRITE whose verifier differs from the COMMIT's is rewritten FILE_SYNC.

        At most ``memalloc_requests`` memalloc swap-outs run at once (the number the area's
        reserve is sized for); more wait for a slot.
        """
        if not in_memalloc():
            await self._swap_out(slot, pages)
            return
        async with self._memalloc_slots:
            self._memalloc_inflight += 1
            self.peak_memalloc_inflight = max(self.peak_memalloc_inflight, self._memalloc_inflight)
            try:
                await self._swap_out(slot, pages)
            finally:
                self._memalloc_inflight -= 1

    async def _swap_out(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        unstable: list[tuple[int, Sequence[PageBuffer], bytes]] = []

        async def write(piece: tuple[int, Sequence[PageBuffer]]) -> None:
            # _write inlined: one coroutine frame fewer per swap-out WRITE
            offset, chunk = piece
            end = offset + len(chunk) * self.page_size
            if self._doubts.count:
                await self._wait_for_doubts(offset, end)
            on_doubt = partial(self._note_doubt, offset, end)
            res = await self._retry_stale(
                lambda: self.client.write(
                    self.fh, offset, chunk, StableHow.UNSTABLE, on_doubt=on_doubt
                )
            )
            if res.count != len(chunk) * self.page_size:  # a short write: finish it stably
                await self._rewrite(offset, chunk)
            elif res.committed != StableHow.FILE_SYNC:
                self._note_verifier(res.verifier)
                unstable.append((offset, chunk, res.verifier))

        await run_windowed(self._transfers(slot, pages), self._window(), write)
        if not unstable:
            return
        self._writes_done += 1
        committed = await self._commit_covering(self._writes_done)
        for offset, chunk, verifier in unstable:
            if verifier != committed:
                await self._rewrite(offset, chunk)

    async def _write(
        self, offset: int, pages: Sequence[PageBuffer], stable: StableHow
    ) -> WriteResult:
        """One WRITE, sent only when no in-doubt WRITE overlaps it; if it goes in doubt
        itself, its range is held until its reply arrives (ESTALE retried once)."""
        end = offset + len(pages) * self.page_size
        if self._doubts.count:
            await self._wait_for_doubts(offset, end)
        on_doubt = partial(self._note_doubt, offset, end)
        return await self._retry_stale(
            lambda: self.client.write(self.fh, offset, pages, stable, on_doubt=on_doubt)
        )

    def _note_doubt(self, start: int, end: int, xid: int, settled: asyncio.Future[None]) -> None:
        key = self._doubts.add(start, end, InDoubtWrite(xid, settled))
        settled.add_done_callback(partial(self._doubt_settled, key))

    def _doubt_settled(self, key: int, settled: asyncio.Future[None]) -> None:
        self._doubts.remove(key)
        if not settled.cancelled():
            settled.exception()  # retrieved: the waiters, if any, report it

    async def _wait_for_doubts(self, start: int, end: int) -> None:
        """Wait until no in-doubt WRITE overlaps ``[start, end)`` and the in-doubt copies are
        below :data:`MAX_IN_DOUBT_BYTES`; at most one call's retry budget."""
        loop = asyncio.get_running_loop()
        budget = self.client.conn.policy.budget()
        deadline = loop.time() + budget
        counted = False
        while True:
            blocking = [d for d in self._doubts.overlapping(start, end) if not _answered(d)]
            if not blocking and self._doubts.nbytes < MAX_IN_DOUBT_BYTES:
                return
            if not counted:
                self.doubt_waits += 1
                counted = True
            waits = blocking or list(self._doubts)
            failed = next((d for d in waits if d.settled.done() and d.settled.exception()), None)
            if failed is not None:
                raise RpcConnectionError(
                    f"NFS WRITE of {self.url.path} bytes {start}-{end} not sent: the earlier "
                    f"WRITE (xid {failed.xid:#x}) it must follow was never answered "
                    f"({failed.settled.exception()})"
                )
            remaining = deadline - loop.time()
            if remaining > 0:
                await asyncio.wait(
                    [d.settled for d in waits],
                    timeout=remaining,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                continue
            what = (
                f"the earlier WRITE (xid {blocking[0].xid:#x}) of an overlapping range"
                if blocking
                else f"{self._doubts.count} earlier WRITEs"
            )
            raise RpcTimeoutError(
                f"NFS WRITE of {self.url.path} bytes {start}-{end} not sent: {what} got no "
                f"reply within {budget:g} s and may still be executed by the server; it is "
                "being sent again until it is answered"
            )

    async def _rewrite(self, offset: int, pages: Sequence[PageBuffer]) -> None:
        self.rewrites += 1
        res = await self._write(offset, pages, StableHow.FILE_SYNC)
        if res.count != len(pages) * self.page_size:
            raise NfsIOError(
                "WRITE",
                context=f"{self.url.path}: server wrote {res.count} of "
                f"{len(pages) * self.page_size} bytes with FILE_SYNC",
            )

    def _note_verifier(self, verifier: bytes) -> None:
        if self.verifier is not None and verifier != self.verifier:
            self.verifier_changes += 1
            log.info("NFS write verifier of %s changed: the server restarted", self.url.path)
        self.verifier = verifier

    async def _commit_covering(self, write_number: int) -> bytes:
        """The verifier of a COMMIT that started after WRITE number ``write_number`` ended."""
        async with self._commit_lock:
            if self._committed_upto >= write_number:
                return self._commit_verifier
            upto = self._writes_done
            res = await self._retry_stale(lambda: self.client.commit(self.fh))
            self.commits += 1
            self._note_verifier(res.verifier)
            self._committed_upto = upto
            self._commit_verifier = res.verifier
            return res.verifier

    def swap_in(self, slot: int, pages: Sequence[memoryview]) -> Awaitable[None]:
        """One READ per transfer size, several in flight; bytes past end of file read as
        zeros.  A plain function returning the awaitable: the common one-READ request costs
        no coroutine frame of its own (each is paid again when the reply wakes the caller)."""
        if len(pages) * self.page_size <= self.max_io:  # the common case: one READ
            return self._read(slot * self.page_size, pages)
        return run_windowed(self._transfers(slot, pages), self._window(), self._read_piece)

    def _read_piece(self, piece: tuple[int, Sequence[memoryview]]) -> Awaitable[None]:
        return self._read(*piece)

    async def _read(self, offset: int, pages: Sequence[memoryview]) -> None:
        """READ ``pages`` at ``offset`` (ESTALE retried once after a new lookup)."""
        try:
            count, _ = await self.client.read_pages(self.fh, offset, pages)
        except (NfsStaleError, NfsBadHandleError):
            await self._relookup()
            count, _ = await self.client.read_pages(self.fh, offset, pages)
        if count < len(pages) * self.page_size:
            _zero_past(pages, count)


def _answered(doubt: InDoubtWrite) -> bool:
    """The in-doubt WRITE's reply arrived (its range is released at the next loop turn)."""
    return doubt.settled.done() and doubt.settled.exception() is None


def _zero_past(pages: Sequence[memoryview], count: int) -> None:
    """Zero the bytes of ``pages`` past the first ``count`` (a READ short at end of file)."""
    pos = 0
    for page in pages:
        start = max(0, count - pos)
        if start < page.nbytes:
            page[start:] = bytes(page.nbytes - start)
        pos += page.nbytes
