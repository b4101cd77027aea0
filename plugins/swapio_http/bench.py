"""The http backend in ``swapio bench``: a ``swapio serve`` in its own process, and its peer.

The placement starts ``swapio serve`` (memory store: the remote-memory use case) on a free
loopback port in a separate Python process — the setup a user runs, and one that gives the
server the other core — with a fresh token in a file under the bench's directory, and puts
that token in ``$SWAPIO_TOKEN`` for the client while the run lasts.  On exit the server gets
SIGTERM (it completes in-flight writes and exits; its memory store goes with it).

Peer ``aiohttp-floor``: the HTTP transport alone, aiohttp client and server in the bench's
process — ``write`` POSTs the pages to a handler that reads the body and answers 16 bytes,
``read`` POSTs a page count and gets that many pages back.  No frames, no checks, no store:
the ceiling any page server built on aiohttp reaches on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from swapio.area import PageBuffer
from swapio.bench.hook import BenchPeer, BenchSite, BenchTarget, Durability, Kind, Target
from swapio.errors import BackendIOError

from ._auth import ENV_TOKEN, ENV_TOKEN_FILE
from .client import DEFAULT_CONNECTIONS

#: Seconds ``swapio serve`` may take to print its URL, and to exit after SIGTERM.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
LISTENING = "listening on "


@contextlib.contextmanager
def _client_token(token: str) -> Any:
    """``$SWAPIO_TOKEN`` = ``token`` (and no token file) while the run lasts."""
    saved = {k: os.environ.get(k) for k in (ENV_TOKEN, ENV_TOKEN_FILE)}
    os.environ[ENV_TOKEN] = token
    os.environ.pop(ENV_TOKEN_FILE, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@asynccontextmanager
async def serve(site: BenchSite) -> AsyncIterator[str]:
    """``swapio serve`` on 127.0.0.1 (free port) in its own process; its base URL."""
    token = secrets.token_urlsafe(24)
    token_file = site.directory / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if k not in (ENV_TOKEN, ENV_TOKEN_FILE)}
    log = site.directory / "serve.log"
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "swapio", "serve", "--bind", "127.0.0.1", "--port", "0",
            "--token-file", str(token_file),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        text = line.decode(errors="replace").strip()
        if not text.startswith(LISTENING):
            await _stop(proc)
            detail = log.read_text(errors="replace").strip()[-2000:]
            raise BackendIOError(f"swapio serve did not start (rc={proc.returncode}): {detail}")
        base = text.removeprefix(LISTENING)
        site.started(f"swapio serve on {base.removeprefix('http://')} (pid {proc.pid})")
        with _client_token(token):
            yield base
    finally:
        await _stop(proc)


@asynccontextmanager
async def _place(site: BenchSite) -> AsyncIterator[str]:
    connections = max(DEFAULT_CONNECTIONS, site.config.qd)
    async with serve(site) as base:
        yield f"{base}/areas/bench-{site.uid}?connections={connections}"


@dataclass
class AiohttpFloorTarget(Target):
    """Peer ``aiohttp-floor``: the transport alone (see the module docstring)."""

    runner: Any = None
    session: Any = None
    base: str = ""

    async def write(self, slot: int, pages: Sequence[PageBuffer]) -> None:
        async with self.session.post(f"{self.base}/w", data=b"".join(pages)) as response:
            await response.read()

    async def read(self, slot: int, views: Sequence[memoryview]) -> None:
        async with self.session.post(f"{self.base}/r", data=str(len(views))) as response:
            data = memoryview(await response.read())
        size = self.page_size
        for i, view in enumerate(views):
            view[:] = data[i * size : (i + 1) * size]

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.runner is not None:
            await self.runner.cleanup()


@asynccontextmanager
async def _floor(site: BenchSite, url: str) -> AsyncIterator[Target]:
    import aiohttp  # noqa: PLC0415 (imported when the peer runs)
    from aiohttp import web  # noqa: PLC0415

    cfg = site.config
    blob = bytes(cfg.page_size * max(cfg.batch, 1))

    async def sink(request: web.Request) -> web.Response:
        async for _chunk, _ in request.content.iter_chunks():
            pass
        return web.Response(body=b"\0" * 16)

    async def source(request: web.Request) -> web.Response:
        count = int(await request.text())
        return web.Response(body=blob[: count * cfg.page_size])

    app = web.Application(client_max_size=len(blob) + 1024)
    app.router.add_post("/w", sink)
    app.router.add_post("/r", source)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    target = AiohttpFloorTarget("aiohttp-floor", Kind.PEER, cfg.page_size, cfg.pages, runner=runner)
    try:
        site_ = web.TCPSite(runner, "127.0.0.1", 0)
        await site_.start()
        port = runner.addresses[0][1]
        connector = aiohttp.TCPConnector(limit=max(DEFAULT_CONNECTIONS, cfg.qd))
        target.session = aiohttp.ClientSession(connector=connector)
        target.base = f"http://127.0.0.1:{port}"
        yield target
    finally:
        await target.close()


PEERS = (
    BenchPeer(
        "aiohttp-floor",
        Durability.VOLATILE,
        "aiohttp client and server in one process, no swapio: the transport's ceiling",
        open=_floor,
    ),
)


def targets() -> list[BenchTarget]:
    """The ``http`` target: a page server in its own process, beside the aiohttp floor."""
    return [
        BenchTarget(
            name="http",
            backend="http",
            durability=Durability.REMOTE,
            place=_place,
            summary="swapio's page server (swapio serve, memory store) over loopback HTTP",
            peers=PEERS,
        )
    ]
