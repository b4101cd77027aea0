"""The handler process: owns the swap area, the pager and the fault resolver.

Started by :class:`swapio.mapping.Mapping` as ``python -m swapio.mapping._handler FD`` (FD:
its end of the control socketpair), in a session of its own (a Ctrl-C aimed at the program
does not kill it).  Protocol (:mod:`swapio.mapping._channel`): ``open`` → activate the area,
reply with its geometry; ``attach`` (+ memfd and userfaultfd by SCM_RIGHTS) → fork the
watchdog, start serving faults, reply; then ``sync`` / ``stats`` / ``close`` requests.  If
the program goes away (EOF on the channel) the handler writes every dirty page back — the
memfd it holds still has them — and exits.  A fault it cannot serve (the area failed) is
fatal: it exits without standing the watchdog down, so the program gets bus errors instead
of waiting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import mmap
import os
import resource
import signal
import socket
import sys
import traceback
from typing import Any

from swapio.area import CreateRequest, SwapArea
from swapio.errors import SwapioError, UsageError
from swapio.location import Location, area_page_size
from swapio.mapping import _watchdog
from swapio.mapping._affinity import Follower
from swapio.mapping._channel import LineDecoder, Message, encode
from swapio.mapping._faults import FaultServer
from swapio.mapping._resolver import Resolver
from swapio.mapping._spin import MAX_WINDOW as MAX_POLL
from swapio.mapping._spin import SpinSelector, default_window
from swapio.pager import Pager
from swapio.plugins import PluginHost
from swapio.pool import PagePool


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (every thread: the loop, the
    reaper, the area's owner threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _error(exc: BaseException) -> Message:
    return {"ok": False, "kind": type(exc).__name__, "error": str(exc) or repr(exc)}


class _Sync:
    """Blocking message I/O on the socket, used before the event loop serves it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = LineDecoder()
        self.pending: list[Message] = []

    def receive(self) -> tuple[Message, list[int]]:
        fds: list[int] = []
        while not self.pending:
            data, got, _flags, _addr = socket.recv_fds(self.sock, 65536, 4)
            fds.extend(got)
            if not data:
                raise EOFError("the program closed the channel")
            self.pending.extend(self.decoder.feed(data))
        return self.pending.pop(0), fds

    def send(self, message: Message) -> None:
        self.sock.sendall(encode(message))


class Handler:
    """One mapping's handler (see the module docstring)."""

    def __init__(self, sock: socket.socket, selector: SpinSelector | None = None) -> None:
        self.chan = _Sync(sock)
        self.selector = selector
        self.area: SwapArea | None = None
        self.pager: Pager | None = None
        self.resolver: Resolver | None = None
        self.program_pid = 0
        self.stored = False  # the area was opened with its data (not created)
        self._watchdog: tuple[int, int] | None = None
        self.server: FaultServer | None = None
        self.follower: Follower | None = None

    # ------------------------------------------------------------------ set-up
    async def open(self, req: Message) -> Message:
        url = str(req["url"])
        location = Location.parse(url)
        create = (
            CreateRequest(int(req["create"]), int(req["page_size"])) if req.get("create") else None
        )
        page_size = area_page_size(location, create)
        if page_size % mmap.PAGESIZE:
            raise UsageError(
                f"a mapping needs pages that are a multiple of {mmap.PAGESIZE} bytes; "
                f"{url} has {page_size}-byte pages"
            )
        cache = int(req["cache_pages"])
        pool = PagePool.for_resident(cache, page_size)
        self.area = area = await PluginHost().activate(location, create=create, pool=pool)
        self.pager = Pager(
            area,
            resident_pages=cache,
            readahead=min(64, 1 << max(0, (cache // 4).bit_length() - 1)),
            stored=create is None,
        )
        self.stored = create is None
        self.program_pid = int(req["pid"])
        return {
            "ok": True,
            "pages": area.pages,
            "page_size": area.page_size,
            "durable": area.capabilities.durable,
        }

    def attach(self, req: Message, fds: list[int]) -> Message:
        if len(fds) != 2 or self.area is None or self.pager is None:
            raise UsageError("attach needs the memfd and the userfaultfd")
        memfd, uffd = fds
        base = int(req["address"])
        size = self.area.pages * self.area.page_size
        os.set_blocking(uffd, False)
        self._watchdog = _watchdog.start(uffd, memfd, base, size)
        self.resolver = Resolver(
            uffd=uffd,
            memfd=memfd,
            base=base,
            pages=self.area.pages,
            page_size=self.area.page_size,
            budget=int(req["budget_pages"]),
            batch=int(req["batch_pages"]),
            pager=self.pager,
            write_protect=bool(req["write_protect"]),
            stored=self.stored,
        )
        poll = req.get("poll")  # None: auto (where there is a second CPU)
        polling = False
        if self.selector is not None:
            if poll is not None:
                self.selector.set_maximum(MAX_POLL if poll else 0.0)
            polling = self.selector.policy.maximum > 0
        colocate = req.get("colocate")  # None: auto (only where the loop does not poll)
        if colocate is True or (colocate is None and not polling):
            self.follower = Follower(self.program_pid, auto=colocate is None)
        return {"ok": True, "handler_pid": os.getpid(), "watchdog_pid": self._watchdog[0]}

    # ------------------------------------------------------------------ serving
    async def serve(self, sock: socket.socket) -> None:
        assert self.resolver is not None
        loop = asyncio.get_running_loop()
        self.server = server = FaultServer(self.resolver)
        sock.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        # everything allocated so far lives as long as the handler: keep the collector off it
        gc.collect()
        gc.freeze()
        if self.follower is not None:
            self.follower.start(loop)
        faults = server.start()
        control = loop.create_task(self._control(reader, writer))
        done, _ = await asyncio.wait({faults, control}, return_when=asyncio.FIRST_COMPLETED)
        if faults in done:
            control.cancel()
            faults.result()  # a fault that could not be served: fatal
        else:
            faults.cancel()
            control.result()

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                assert self.server is not None
                async with self.server.exclusive():
                    await self._finish()  # the program is gone: keep what it wrote
                return
            req = LineDecoder().feed(line)[0]
            op = req.get("op")
            assert self.server is not None
            try:
                async with self.server.exclusive():
                    if op == "sync":
                        assert self.resolver is not None
                        reply: Message = {"ok": True, "pages": await self.resolver.sync()}
                    elif op == "stats":
                        reply = {"ok": True, **self.stats()}
                    elif op == "close":
                        await self._finish()
                        reply = {"ok": True}
                    else:
                        reply = {"ok": False, "kind": "UsageError", "error": f"unknown op {op!r}"}
            except Exception as exc:  # reported to the program, which raises it
                reply = _error(exc)
            writer.write(encode(reply))
            await writer.drain()
            if op == "close":
                return

    def stats(self) -> dict[str, Any]:
        assert self.resolver is not None
        assert self.pager is not None
        r = self.resolver
        return {
            "resolver": r.stats.as_dict(),
            "installed": r.installed,
            "punch": {"calls": r.punch_calls, "batched": r.batched_punch},
            "region_rss": r.region_rss(self.program_pid),
            "handler_cpu": None if self.follower is None else self.follower.cpu,
            "handler_cpu_s": _cpu_seconds(),
            "cpu_moves": 0 if self.follower is None else self.follower.moves,
            "poll": None
            if self.selector is None
            else {
                "window_us": self.selector.policy.window * 1e6,
                "caught": self.selector.polls_caught,
                "blocked": self.selector.blocks,
            },
            "pager": {
                "major_faults": self.pager.stats().major_faults,
                "minor_faults": self.pager.stats().minor_faults,
                "writebacks": self.pager.stats().writebacks,
                "resident": self.pager.resident,
            },
        }

    async def _finish(self) -> None:
        """Write back every dirty page, close the pager and the area, stand down."""
        if self.follower is not None:
            self.follower.stop()
        if self.resolver is not None:
            await self.resolver.sync()
            await self.resolver.close()
        if self.pager is not None:
            await self.pager.close()
            self.pager = None
        if self.area is not None:
            await self.area.deactivate()
            self.area = None
        if self._watchdog is not None:
            _watchdog.stand_down(*self._watchdog)
            self._watchdog = None

    async def abort(self) -> None:
        """Best-effort release of the area after a fatal error (the watchdog stays armed)."""
        if self.resolver is not None:
            with contextlib.suppress(Exception):
                await self.resolver.close()
        if self.pager is not None:
            with contextlib.suppress(Exception):
                await self.pager.close(timeout=5)
        if self.area is not None:
            with contextlib.suppress(Exception):
                await self.area.deactivate(timeout=5)


async def _main(sock: socket.socket, selector: SpinSelector | None) -> int:
    handler = Handler(sock, selector)
    chan = handler.chan
    try:
        req, _ = chan.receive()
        try:
            chan.send(await handler.open(req))
        except (SwapioError, OSError, ValueError, KeyError) as exc:
            chan.send(_error(exc))
            return 1
        req, fds = chan.receive()
        try:
            chan.send(handler.attach(req, fds))
        except (SwapioError, OSError, ValueError, KeyError) as exc:
            chan.send(_error(exc))
            await handler.abort()
            return 1
    except (EOFError, ConnectionError):
        await handler.abort()
        return 1
    try:
        await handler.serve(sock)
    except Exception as exc:
        print(f"swapio mapping handler: cannot serve the mapping: {exc}", file=sys.stderr)
        traceback.print_exc()
        await handler.abort()
        return 1
    return 0


def main(argv: list[str]) -> int:
    """Entry point: ``argv[0]`` is the control socket's descriptor number."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[0]))
    selector = SpinSelector(default_window())
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selector)) as runner:
        return runner.run(_main(sock, selector))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
