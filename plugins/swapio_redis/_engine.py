"""Running page commands on a Redis topology: batching, coalescing, retries, WAIT.

A swap request becomes :class:`Op`\\ s (``MGET``, ``MSET``, ``DEL`` of up to
:data:`MAX_KEYS_PER_COMMAND` keys that share a hash slot in a cluster, see
:mod:`swapio_redis._layout`); the ops of one round are grouped by the master they go to and
each master gets **one pipelined round trip**.  A multi-page request therefore costs one
round trip per node it touches, not one per page.

Concurrent small requests (single-page swap-ins and swap-outs of random access) are
**coalesced**: they queue, and at most ``rounds`` rounds are in flight at once; whatever
queued while a round was on the wire goes out together in the next one, as multi-key
commands.  Requests in memalloc context are never coalesced and are sent
:data:`MEMALLOC_PAGES` pages at a time, so that the reserve the area declares is enough.

**Memory** (``SOCK_MEMALLOC`` rule of the swap-over-NFS series): redis-py's hiredis parser
allocates each reply's ``bytes`` itself, and redis-py packs each request into its own bytes;
swapio cannot hand it a buffer without writing RESP code.  So every command's payload (reply
of an ``MGET``, request of an ``MSET``) is **charged to the area's pool before it is sent**
and the charge is held until the reply has been copied into the caller's pages: the pool bounds
the payload memory in flight exactly as if the buffers came from it.  Reply charges follow the
receive path's rule (:func:`try_reply_charge`): reserve allowed, kept only by memalloc work.

**Retries**: ``MOVED`` (slot map changed: refresh), ``ASK`` (slot migrating: ``ASKING`` +
the command on the target), ``TRYAGAIN`` (multi-key command during a slot migration),
``CLUSTERDOWN``, ``LOADING``, ``READONLY``, connection failures and a ``WAIT`` that confirmed
too few replicas are retried with backoff until the area's ``timeout``.  Pages are idempotent
``SET``\\ s, and the core never has two overlapping requests in flight when one writes, so a
resent command cannot overwrite newer data.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from redis.exceptions import (
    AskError,
    AuthenticationError,
    BusyLoadingError,
    ClusterDownError,
    MovedError,
    NoPermissionError,
    ReadOnlyError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swapio.area import PageBuffer
from swapio.errors import BackendIOError, RemoteProtocolError
from swapio.memalloc import in_memalloc
from swapio.pool import PagePool, PoolBuffer

from ._charges import request_charge, try_reply_charge
from ._layout import Layout
from ._net import Command, Endpoint, Topology
from ._ops import Kind, Op, build_ops
from ._options import RedisOptions

#: Pages a memalloc request sends at once (``SWAP_CLUSTER_MAX``); sized into the reserve.
MEMALLOC_PAGES: Final = 32
#: Requests of at most this many pages are coalesced with others.
COALESCE_MAX_PAGES: Final = 8
#: Pages one coalesced round carries at most.
ROUND_PAGES: Final = 16
#: Commands one discard round carries at most.
DISCARD_COMMANDS: Final = 64
#: Seconds after which a durable area re-reads how many replicas each master has.
REPLICAS_REFRESH: Final = 10.0
_BACKOFF_FIRST: Final = 0.02
_BACKOFF_MAX: Final = 0.5
_WAIT_MS_MAX: Final = 2000
_RETRYABLE_REPLIES: Final = (TryAgainError, ClusterDownError, ReadOnlyError)
_CONNECTION_FAILURES: Final = (
    RedisConnectionError,
    RedisTimeoutError,
    RedisClusterException,
    BusyLoadingError,
    OSError,
)


@dataclass(slots=True)
class Queued:
    """A small request waiting to share a round with others."""

    kind: Kind
    slot: int
    pages: Sequence[Any]
    #: Done when the request has been carried out (or failed, or its caller gave up).
    future: asyncio.Future[None]
    #: Set when the request is taken into a round: done when that round has ended.
    round_done: asyncio.Future[None] | None = None


class RedisIOError(BackendIOError):
    """A page command failed for good (after retries, or with a non-retryable reply)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


class Engine:
    """Page I/O of one area on one topology."""

    def __init__(
        self, topology: Topology, options: RedisOptions, layout: Layout, page_size: int
    ) -> None:
        self.topology = topology
        self.options = options
        self.layout = layout
        self.page_size = page_size
        self._zero = bytes(page_size)
        self._pending: deque[Queued] = deque()
        #: Largest request coalesced (0: none, ``coalesce=0``) and rounds in flight at most.
        self._coalesce_max = COALESCE_MAX_PAGES if options.coalesce else 0
        self._rounds_max = options.rounds
        self._flush_scheduled = False
        self._rounds = 0
        self._tasks: set[asyncio.Future[None]] = set()
        #: Counters for tests and ``docs/redis.md``: round trips per endpoint, retries.
        self.round_trips = 0
        self.retries = 0
        self.coalesced_rounds = 0
        self._replicas_read = time.monotonic()
        #: Reserve-backed reply charges dropped by non-memalloc work (SOCK_MEMALLOC rule).
        self.dropped_reserve = 0

    # --- public entry points ------------------------------------------------------------

    async def swap_out(self, pool: PagePool, slot: int, pages: Sequence[PageBuffer]) -> None:
        await self._submit(pool, Kind.SET, slot, pages)

    async def swap_in(self, pool: PagePool, slot: int, pages: Sequence[memoryview]) -> None:
        await self._submit(pool, Kind.GET, slot, pages)

    async def discard(self, pool: PagePool, slot: int, count: int) -> None:
        ops = build_ops(
            self.layout,
            self.topology.cluster,
            Kind.DEL,
            [(s, None) for s in range(slot, slot + count)],
        )
        for i in range(0, len(ops), DISCARD_COMMANDS):
            await self.run(pool, ops[i : i + DISCARD_COMMANDS])

    def enqueue(self, pool: PagePool, kind: Kind, slot: int, pages: Sequence[Any]) -> Queued | None:
        """Queue a small swap-in (``Kind.GET``) or swap-out (``Kind.SET``) for the next
        coalesced round; None when the request is to be run on its own (:meth:`swap_in`,
        :meth:`swap_out`).  The caller awaits the request's ``future`` and, if cancelled,
        calls :meth:`cancelled` (as :meth:`swap_in` does).

        This is the random swap-in fast path: the plugin's hooks await the future
        themselves, so a page costs one coroutine frame here instead of three."""
        if len(pages) > self._coalesce_max or in_memalloc():
            return None
        loop = asyncio.get_running_loop()
        request = Queued(kind, slot, pages, loop.create_future())
        self._pending.append(request)
        if not self._flush_scheduled and self._rounds < self._rounds_max:
            self._flush_scheduled = True
            loop.call_soon(self._flush, pool)
        return request

    async def _submit(self, pool: PagePool, kind: Kind, slot: int, pages: Sequence[Any]) -> None:
        request = self.enqueue(pool, kind, slot, pages)
        if request is not None:
            try:
                await request.future
            except asyncio.CancelledError:
                await self.cancelled(request)
                raise
            return
        if in_memalloc():
            for i in range(0, len(pages), MEMALLOC_PAGES):
                chunk = pages[i : i + MEMALLOC_PAGES]
                await self.run(
                    pool,
                    build_ops(
                        self.layout, self.topology.cluster, kind, list(enumerate(chunk, slot + i))
                    ),
                )
            return
        await self.run(
            pool, build_ops(self.layout, self.topology.cluster, kind, list(enumerate(pages, slot)))
        )

    # --- coalescing ---------------------------------------------------------------------

    @staticmethod
    async def cancelled(request: Queued) -> None:
        """The caller of a queued ``request`` was cancelled.  If the request was
        already taken into a round, wait until that round ended before the cancellation
        propagates: its pages (a swap-out's source, a swap-in's destination) are in use until
        then, and the core may only issue another request on those slots afterwards.  A
        request still queued is skipped by the next round (its future is cancelled)."""
        if request.round_done is not None:
            await asyncio.wait({request.round_done})

    def _schedule_flush(self, pool: PagePool) -> None:
        if not self._flush_scheduled and self._rounds < self._rounds_max:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush, pool)

    def _flush(self, pool: PagePool) -> None:
        self._flush_scheduled = False
        pending = self._pending
        loop = asyncio.get_running_loop()
        while pending and self._rounds < self._rounds_max:
            group: list[Queued] = []
            pages = 0
            while pending:
                request = pending[0]
                n = len(request.pages)
                if group and pages + n > ROUND_PAGES:
                    break
                pending.popleft()
                if not request.future.done():  # done: the caller was cancelled while queued
                    group.append(request)
                    pages += n
            if not group:
                continue
            done = loop.create_future()
            for request in group:
                request.round_done = done
            self._rounds += 1
            task = loop.create_task(self._round(group, pool, done))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _round_ops(self, group: list[Queued]) -> list[Op]:
        """The commands of one coalesced round: its swap-ins' pages, then its swap-outs'."""
        gets: list[tuple[int, Any]] = []
        sets: list[tuple[int, Any]] = []
        for r in group:
            items = gets if r.kind is Kind.GET else sets
            if len(r.pages) == 1:
                items.append((r.slot, r.pages[0]))
            else:
                items.extend(enumerate(r.pages, r.slot))
        cluster = self.topology.cluster
        ops = build_ops(self.layout, cluster, Kind.GET, gets) if gets else []
        if sets:
            ops.extend(build_ops(self.layout, cluster, Kind.SET, sets))
        return ops

    async def _round(self, group: list[Queued], pool: PagePool, done: asyncio.Future[None]) -> None:
        try:
            if len(group) > 1:
                self.coalesced_rounds += 1
            await self.run(pool, self._round_ops(group))
        except Exception as exc:
            for request in group:
                if not request.future.done():
                    request.future.set_exception(exc)
        except BaseException:
            for request in group:
                request.future.cancel()
            raise
        else:
            for request in group:
                if not request.future.done():
                    request.future.set_result(None)
        finally:
            done.set_result(None)
            self._rounds -= 1
            if self._pending:
                self._schedule_flush(pool)

    async def close(self) -> None:
        """Cancel rounds still running (none are, after the area drained)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # --- one batch of ops, with retries -------------------------------------------------

    async def run(self, pool: PagePool, ops: list[Op]) -> None:  # noqa: PLR0912, PLR0915 - one retry loop
        """Run ``ops``: one pipelined round trip per node, retried until ``timeout``."""
        deadline = time.monotonic() + self.options.timeout
        backoff = _BACKOFF_FIRST
        todo = ops
        last: BaseException | None = None
        while todo:
            by_node: dict[str, tuple[Endpoint, list[Op]]] = {}
            failed_routing: list[Op] = []
            for op in todo:
                try:
                    if op.ask is not None:
                        endpoint = self.topology.endpoint(*op.ask)
                    else:
                        endpoint = self.topology.route(op.hash_slot)
                except _CONNECTION_FAILURES as exc:
                    last = exc
                    failed_routing.append(op)
                    continue
                by_node.setdefault(endpoint.name, (endpoint, []))[1].append(op)
            outcomes: list[list[BaseException | None] | BaseException]
            if len(by_node) == 1:  # one server: no task per node
                ((ep, node_ops),) = by_node.values()
                try:
                    outcomes = [await self._node_round(pool, ep, node_ops, deadline)]
                except Exception as exc:  # as gather(return_exceptions=True) would report it
                    outcomes = [exc]
            else:
                outcomes = await asyncio.gather(
                    *(
                        self._node_round(pool, ep, node_ops, deadline)
                        for ep, node_ops in by_node.values()
                    ),
                    return_exceptions=True,
                )
            retry: list[Op] = list(failed_routing)
            refresh = bool(failed_routing)
            for (_, node_ops), outcome in zip(by_node.values(), outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if isinstance(outcome, BackendIOError | RemoteProtocolError):
                        raise outcome
                    if isinstance(outcome, AuthenticationError | NoPermissionError):
                        raise self._fatal(outcome)
                    if isinstance(outcome, _CONNECTION_FAILURES):
                        last = outcome
                        retry.extend(node_ops)
                        refresh = True
                        continue
                    raise outcome
                for op, error in zip(node_ops, outcome, strict=True):
                    if error is None:
                        continue
                    last = error
                    if isinstance(error, MovedError):
                        op.ask = None
                        refresh = True
                    elif isinstance(error, AskError):
                        op.ask = error.node_addr
                    elif isinstance(error, _RETRYABLE_REPLIES):
                        op.ask = None
                        refresh = refresh or isinstance(error, ClusterDownError | ReadOnlyError)
                    elif isinstance(error, _WaitShortfall):
                        refresh = True
                    else:
                        raise self._fatal(error)
                    retry.append(op)
            if not retry:
                return
            self.retries += 1
            if time.monotonic() + backoff > deadline:
                assert last is not None
                raise RedisIOError(
                    f"redis {self.options.where}: {len(retry)} command(s) still failing after "
                    f"{self.options.timeout:g} s (timeout=); last error: {_first_line(last)}",
                    detail=last,
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)
            if refresh:
                try:
                    await self.topology.refresh()
                except (RedisError, RedisClusterException, OSError) as exc:
                    last = exc
            todo = retry

    def _fatal(self, error: BaseException) -> BackendIOError:
        if isinstance(error, BackendIOError):
            return error
        return RedisIOError(
            f"redis {self.options.where} (prefix {self.options.prefix}): {_first_line(error)}",
            detail=error,
        )

    async def _node_round(
        self, pool: PagePool, endpoint: Endpoint, ops: list[Op], deadline: float
    ) -> list[BaseException | None]:
        """One pipelined round trip to ``endpoint``; per op: None (done) or its error."""
        size = self.page_size
        charges: list[PoolBuffer] = []
        try:
            for op in ops:
                if op.kind is Kind.GET:
                    nbytes = len(op.keys) * size
                    buf = try_reply_charge(pool, nbytes, self._count_drop)
                    if buf is None:
                        buf = await pool.alloc(nbytes)
                    charges.append(buf)
                elif op.kind is Kind.SET:
                    charges.append(await request_charge(pool, len(op.keys) * size))
            wire: list[Command] = []
            for op in ops:
                if op.ask is not None:
                    wire.append(("ASKING",))
                wire.append(op.command())
            wanted = self._wait_for(endpoint, ops)
            if wanted is not None:
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                wait_ms = max(100, min(_WAIT_MS_MAX, remaining_ms))
                wire.append(("WAIT", wanted, wait_ms))
            replies = await endpoint.roundtrip(wire)
            self.round_trips += 1
            return self._settle(endpoint, ops, replies, wanted)
        finally:
            for buf in charges:
                buf.release()

    def _count_drop(self) -> None:
        self.dropped_reserve += 1

    def _wait_for(self, endpoint: Endpoint, ops: list[Op]) -> int | None:
        """Replicas a durable write round must confirm (``WAIT``), or None for no WAIT."""
        if not self.options.durable or all(op.kind is Kind.GET for op in ops):
            return None
        if self.options.replicas is not None:
            return self.options.replicas
        self._refresh_if_stale()
        return self.topology.replicas(endpoint)

    def _refresh_if_stale(self) -> None:
        """Re-read the replica counts in the background every REPLICAS_REFRESH seconds, so
        that "every replica the shard has" follows replicas that joined (a restarted master
        comes back as a replica of the one promoted in its place)."""
        now = time.monotonic()
        if now - self._replicas_read < REPLICAS_REFRESH:
            return
        self._replicas_read = now
        task = asyncio.ensure_future(self._quiet_refresh())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _quiet_refresh(self) -> None:
        # on failure, the next failing command refreshes again, and reports
        with contextlib.suppress(RedisError, RedisClusterException, OSError):
            await self.topology.refresh()

    def _settle(
        self, endpoint: Endpoint, ops: list[Op], replies: list[Any], wanted: int | None
    ) -> list[BaseException | None]:
        results: list[BaseException | None] = []
        at = 0
        for op in ops:
            if op.ask is not None:
                asking = replies[at]
                at += 1
                if isinstance(asking, ResponseError):
                    results.append(asking)
                    at += 1
                    continue
            reply = replies[at]
            at += 1
            if isinstance(reply, ResponseError):
                results.append(reply)
                continue
            if op.kind is Kind.GET:
                self._deliver(op, reply)
            results.append(None)
        if wanted is not None:
            confirmed = replies[at]
            if isinstance(confirmed, ResponseError) or int(confirmed) < wanted:
                shortfall = _WaitShortfall(
                    f"WAIT on {endpoint.name}: "
                    + (
                        _first_line(confirmed)
                        if isinstance(confirmed, ResponseError)
                        else f"{confirmed} of {wanted} replica(s) confirmed"
                    )
                )
                results = [
                    shortfall if r is None and op.kind is not Kind.GET else r
                    for op, r in zip(ops, results, strict=True)
                ]
        return results

    def _deliver(self, op: Op, reply: Any) -> None:
        size = self.page_size
        if not isinstance(reply, list) or len(reply) != len(op.dests):
            raise RemoteProtocolError(
                f"MGET of {len(op.keys)} keys answered {type(reply).__name__}"
            )
        for dest, value, key in zip(op.dests, reply, op.keys, strict=True):
            if value is None:
                dest[:] = self._zero
            elif len(value) == size:
                dest[:] = value
            else:
                raise RedisIOError(
                    f"redis key {key.decode()!r} holds {len(value)} bytes, not a {size}-byte "
                    "page: foreign data under this prefix"
                )


class _WaitShortfall(BackendIOError):
    """``WAIT`` confirmed fewer replicas than required (retried until the timeout)."""
