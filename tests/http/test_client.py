"""The http backend against a real page server on a loopback socket."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner
from swapio_http._wire import Limits
from swapio_http.cli import serve
from swapio_http.client import IncompleteBatchError, PageServerError
from swapio_http.server import STATE, build_app, start_server

from swapio.area import CreateRequest, SwapArea
from swapio.errors import AreaNotFoundError, LocationError, SwapTimeoutError
from swapio.memalloc import memalloc
from swapio.plugins import PluginHost
from swapio.pool import PagePool
from swapio.testing import BackendTests, page_pattern

from .conftest import TOKEN, GatedMemory, ThreadedServer, server_config

PAGE = 4096


def pattern(slot: int) -> bytes:
    return page_pattern(slot, 0, PAGE)


class TestHttpConformance(BackendTests):
    """The conformance kit, over a real socket to a server running in another thread."""

    @pytest.fixture
    def area_url(
        self, threaded_server: ThreadedServer, token_env: str, request: pytest.FixtureRequest
    ) -> str:
        name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
        return f"{threaded_server.url}/areas/{name}?frame_pages=8"

    async def inject_fault(self, area: SwapArea) -> None:
        client = area.private
        self._saved = client.options
        client.options = dataclasses.replace(client.options, base_url="http://127.0.0.1:1")

    async def clear_fault(self, area: SwapArea) -> None:
        area.private.options = self._saved


async def test_batch_is_split_into_parallel_frames(live_server: Any, token_env: str) -> None:
    host = PluginHost()
    url = f"{live_server.url}/areas/batch?frame_pages=4&connections=4"
    area = await host.activate(url, create=CreateRequest(64, PAGE))
    try:
        assert area.capabilities.max_pages_per_request == 16
        data = b"".join(pattern(s) for s in range(50))
        await area.write(3, data)
        assert await area.read(3, 50) == data
        server_area = next(iter(live_server.runner.app[STATE].areas.values()))
        assert await server_area.read(3, 50) == data
    finally:
        await area.deactivate()


async def test_declares_reserve_need_and_uses_the_pool(live_server: Any, token_env: str) -> None:
    pool = PagePool(budget_pages=4096, page_size=PAGE)
    base = pool.reserve_pages
    host = PluginHost(pool=pool)
    area = await host.activate(
        f"{live_server.url}/areas/res?frame_pages=8", create=CreateRequest(32, PAGE)
    )
    caps = area.capabilities
    # One frame (header + 8 pages) rounds up to 9 pool pages, plus one page for the other
    # buffer of the request (the reply header of a swap_out, the request of a swap_in).
    assert (caps.reserve_pages_per_request, caps.memalloc_requests) == (10, 2)
    assert pool.reserve_pages == base + 20
    with memalloc():
        await area.write(0, pattern(0) * 8)
    assert await area.read(0, 8) == pattern(0) * 8
    assert pool.stats.allocations >= 2
    assert pool.used_pages == 0
    await area.deactivate()
    assert pool.reserve_pages == base


async def test_open_missing_area_is_not_found(live_server: Any, token_env: str) -> None:
    with pytest.raises(AreaNotFoundError, match="404"):
        await PluginHost().activate(f"{live_server.url}/areas/absent")


async def test_wrong_token_is_refused_at_activation(
    live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWAPIO_TOKEN", "wrong-token-0123456789abcdef")
    with pytest.raises(PageServerError, match="401 unauthorized") as info:
        await PluginHost().activate(f"{live_server.url}/areas/x", create=CreateRequest(4, PAGE))
    assert info.value.status == 401


async def test_token_in_url_is_refused(live_server: Any) -> None:
    with pytest.raises(LocationError, match="never put a token in the URL"):
        await PluginHost().activate(f"{live_server.url}/areas/x?token={TOKEN}")


async def test_url_without_areas_path_is_refused(token_env: str) -> None:
    with pytest.raises(LocationError, match=r"expected http\[s\]://HOST"):
        await PluginHost().activate("http://127.0.0.1:1/scratch")


def _abort_after(allowed: int) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware: let ``allowed`` frames through, then drop every connection (a crash)."""
    seen = 0

    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        nonlocal seen
        if request.path.endswith("/io"):
            seen += 1
            if seen > allowed:
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
        return await handler(request)

    return middleware


async def test_server_dying_mid_batch_reports_unfinished_pages(token_env: str) -> None:
    app = build_app(server_config())
    app.middlewares.insert(0, _abort_after(3))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    host = PluginHost()
    url = f"http://127.0.0.1:{port}/areas/dying?frame_pages=4&connections=8"
    area = await host.activate(url, create=CreateRequest(64, PAGE))
    data = b"".join(pattern(s) for s in range(32))
    with pytest.raises(IncompleteBatchError) as info:
        await area.write(0, data)
    error = info.value
    assert len(error.completed) == 3
    assert len(error.failed) == 5
    assert sorted(error.completed + error.failed) == [(s, 4) for s in range(0, 32, 4)]
    assert "5 of 8 frames did not complete" in str(error)
    server_area = next(iter(app[STATE].areas.values()))
    for slot, count in error.completed:
        assert await server_area.read(slot, count) == data[slot * PAGE : (slot + count) * PAGE]
    for slot, count in error.failed:
        assert await server_area.read(slot, count) == bytes(count * PAGE)
    await area.private.close_session()
    await runner.cleanup()


def _spawn_server(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "swapio", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line + proc.stderr.read()
    return proc, line.split()[-1]


async def test_server_process_killed_with_frames_in_flight(token_env: str) -> None:
    proc, base = _spawn_server(dict(os.environ))
    host = PluginHost()
    area = await host.activate(
        f"{base}/areas/k?frame_pages=8&timeout=20", create=CreateRequest(64, PAGE)
    )
    await area.write(0, pattern(0) * 8)
    proc.send_signal(signal.SIGSTOP)  # frozen: requests are sent, no answer comes back
    batch = asyncio.create_task(area.write(0, b"".join(pattern(s) for s in range(64))))
    await asyncio.sleep(0.3)
    assert not batch.done()
    proc.send_signal(signal.SIGKILL)  # killed with every frame of the batch in flight
    proc.wait(10)
    with pytest.raises(IncompleteBatchError) as info:
        await batch
    assert info.value.completed == ()
    assert info.value.failed_slots == list(range(64))
    assert "8 of 8 frames did not complete; slots not done: 0..7, 8..15" in str(info.value)
    await area.private.close_session()


async def test_sigterm_shuts_the_server_down_cleanly(token_env: str) -> None:
    proc, base = _spawn_server(dict(os.environ))
    area = await PluginHost().activate(f"{base}/areas/t", create=CreateRequest(8, PAGE))
    await area.write(1, pattern(1))
    assert await area.read(1) == pattern(1)
    await area.private.close_session()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "shutting down" in err


def test_serve_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWAPIO_TOKEN", raising=False)
    monkeypatch.delenv("SWAPIO_TOKEN_FILE", raising=False)
    result = CliRunner().invoke(serve, ["--port", "0"])
    assert result.exit_code == 2
    assert "no token" in result.output


def test_insecure_loopback_refuses_a_public_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWAPIO_TOKEN", raising=False)
    monkeypatch.delenv("SWAPIO_TOKEN_FILE", raising=False)
    result = CliRunner().invoke(serve, ["--bind", "0.0.0.0", "--insecure-loopback"])
    assert result.exit_code == 2
    assert "only loopback addresses" in result.output


def test_short_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWAPIO_TOKEN", "short")
    proc = subprocess.run(
        [sys.executable, "-m", "swapio", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("swapio: error: ")
    assert "at least 16" in proc.stderr
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "text"),
    [(bytes(range(128, 256)), "not UTF-8 text"), (b"", "holds no token")],
)
def test_bad_token_file_is_one_line_error(tmp_path: Path, content: bytes, text: str) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "swapio", "serve", "--port", "0", "--token-file", str(token_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("swapio: error: ")
    assert text in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "args", [["--max-area-bytes", "-1"], ["--drain-timeout", "-1"], ["--max-areas", "0"]]
)
def test_negative_limits_are_usage_errors(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "swapio", "serve", "--insecure-loopback", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "Invalid value" in proc.stderr


async def test_insecure_loopback_serves_anonymous_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SWAPIO_TOKEN", raising=False)
    monkeypatch.delenv("SWAPIO_TOKEN_FILE", raising=False)
    from swapio_http._auth import TokenSet

    server = await start_server(server_config(tokens=TokenSet()), port=0)
    try:
        area = await PluginHost().activate(
            f"{server.url}/areas/anon", create=CreateRequest(4, PAGE)
        )
        await area.write(0, pattern(0))
        assert await area.read(0) == pattern(0)
        await area.deactivate()
    finally:
        await server.stop()


async def test_memalloc_frames_are_capped_to_keep_the_reserve_small(token_env: str) -> None:
    server = await start_server(server_config(limits=Limits(max_pages=256)), port=0)
    pool = PagePool(budget_pages=8192, page_size=PAGE)
    area = await PluginHost(pool=pool).activate(
        f"{server.url}/areas/cap?frame_pages=128", create=CreateRequest(256, PAGE)
    )
    # 28-byte header + 32 pages -> 33 pool pages, plus the reply's receive buffer (1 page),
    # whatever the ordinary frame size.
    assert area.capabilities.reserve_pages_per_request == 34
    data = b"".join(pattern(s) for s in range(100))
    with memalloc():
        await area.write(0, data)
    assert pool.stats.peak_used_pages <= 34
    assert await area.read(0, 100) == data
    await area.deactivate()
    await server.stop()


async def test_concurrent_small_requests_share_http_requests(token_env: str) -> None:
    posts = 0

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        nonlocal posts
        posts += request.path.endswith("/io")
        return await handler(request)

    app = build_app(server_config(limits=Limits(max_pages=256)))
    app.middlewares.insert(0, count)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/areas/co?connections=4"
    area = await PluginHost().activate(url, create=CreateRequest(128, PAGE))
    await area.write(0, b"".join(pattern(s) for s in range(128)))
    posts = 0
    slots = list(range(0, 128, 3))
    pages = await asyncio.gather(*(area.read(s) for s in slots))
    assert [bytes(p) for p in pages] == [pattern(s) for s in slots]
    assert posts < len(slots) // 4  # 43 single-page reads in a handful of requests
    await area.deactivate()
    await runner.cleanup()


async def test_a_kept_alive_connection_the_server_dropped_is_replaced(
    live_server: Any, token_env: str
) -> None:
    area = await PluginHost().activate(
        f"{live_server.url}/areas/stale?connections=1", create=CreateRequest(8, PAGE)
    )
    try:
        await area.write(0, pattern(0))
        guard = live_server.runner.app[STATE].guard
        for transport in list(guard._by_transport):
            transport.abort()  # the server drops its kept-alive page connection
        await area.write(1, pattern(1))  # sent on it before the client notices: sent again
        assert await area.read(0, 2) == pattern(0) + pattern(1)
    finally:
        await area.deactivate()


async def test_a_page_request_without_an_answer_times_out(
    server_host: PluginHost, gated: GatedMemory, token_env: str
) -> None:
    server = await start_server(server_config("gated"), port=0, host=server_host)
    try:
        area = await PluginHost().activate(
            f"{server.url}/areas/hang?timeout=0.5", create=CreateRequest(8, PAGE)
        )
        with pytest.raises(SwapTimeoutError, match="no answer within 0.5 s"):
            await asyncio.wait_for(area.write(0, pattern(0)), 10)  # the store never returns
        gated.gate.set()
        await area.deactivate()
    finally:
        await server.stop()
