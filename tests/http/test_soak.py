"""Soak: ``swapio serve`` in its own process under the abuse patterns of issue 15.

While a legitimate client (token A) keeps writing and reading, another token (B) and
unauthenticated peers run, at once: 1,100 idle connections and 50 slowloris heads against a
server whose open-file limit is lowered to 1,024; 32 stalled maximal uploads (all but the
last byte of a 16 MiB body); create/delete cycles under new names.  The server runs with its
default limits except the per-token store quota (lowered so the cycles reach it quickly).
Asserted: the legitimate client's p99 stays under 2 s and it never fails, the server's RSS
stays under its buffer pool plus a fixed allowance, the stores on disk stay within the quota,
and the server logs no "Too many open files".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from swapio_http._wire import Op, RequestHeader, encode_request_header

from swapio.area import CreateRequest
from swapio.plugins import PluginHost

from .conftest import OTHER_TOKEN, TOKEN

PAGE = 4096
QUOTA = 64 << 20
BUFFER_BYTES = 256 << 20  # the default --buffer-bytes
RSS_ALLOWANCE = 200 << 20  # interpreter, aiohttp, connection state
ABUSE_SECONDS = 12.0


def _lower_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return None


async def idle_connections(port: int, count: int, held: list[asyncio.StreamWriter]) -> None:
    for _ in range(count):
        pair = await _open(port)
        if pair is not None:
            held.append(pair[1])


async def slowloris(port: int, count: int, stop: asyncio.Event) -> None:
    writers = [pair[1] for pair in [await _open(port) for _ in range(count)] if pair]
    while not stop.is_set():
        for writer in writers:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.write(b"X-Slow: 1\r\n" if writer.transport.get_write_buffer_size() else b"G")
        await asyncio.sleep(0.5)
    for writer in writers:
        writer.close()


async def stalled_upload(port: int, stop: asyncio.Event) -> None:
    pages = 256
    body_size = 28 + pages * PAGE
    header = encode_request_header(RequestHeader(Op.SWAP_OUT, 0, pages, PAGE))
    pair = await _open(port)
    if pair is None:
        return
    _, writer = pair
    writer.write(
        f"POST /areas/b0/io HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {OTHER_TOKEN}\r\n"
        f"Content-Type: application/x-swapio-frame\r\nContent-Length: {body_size}\r\n\r\n".encode()
        + header
    )
    with contextlib.suppress(ConnectionError):
        chunk = bytes(1 << 20)
        left = body_size - len(header) - 1
        while left > 0 and not stop.is_set():
            writer.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
            await writer.drain()
        await stop.wait()
    writer.close()


async def create_delete_cycles(url: str, stop: asyncio.Event, refused: list[int]) -> None:
    import aiohttp

    headers = {"Authorization": f"Bearer {OTHER_TOKEN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        cycle = 0
        while not stop.is_set():
            doc = {"pages": 4096, "page_size": PAGE}  # 16 MiB each
            async with session.put(f"{url}/areas/cycle{cycle}", json=doc) as response:
                if response.status == 429:
                    refused.append(cycle)
                    await asyncio.sleep(0.2)
                    continue
                assert response.status == 201, await response.text()
            async with session.delete(f"{url}/areas/cycle{cycle}") as response:
                assert response.status == 204
            cycle += 1


async def test_legitimate_client_survives_abuse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tokens").write_text(f"{TOKEN}\n{OTHER_TOKEN}\n")
    store = tmp_path / "store"
    store.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "swapio", "serve", "--port", "0",
            "--token-file", str(tmp_path / "tokens"),
            "--store", f"file://{store}/{{owner}}-{{area}}.swap",
            "--max-bytes-per-token", str(QUOTA),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_lower_nofile,  # noqa: PLW1509 (no threads yet in this test)
        env={**os.environ, "SWAPIO_TOKEN": "", "SWAPIO_TOKEN_FILE": ""},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        port = int(url.rsplit(":", 1)[1])
        monkeypatch.setenv("SWAPIO_TOKEN", TOKEN)
        legit = await PluginHost().activate(
            f"{url}/areas/legit?timeout=10", create=CreateRequest(256, PAGE)
        )
        # token B's area for the stalled uploads
        import aiohttp

        async with (
            aiohttp.ClientSession() as session,
            session.put(
                f"{url}/areas/b0",
                json={"pages": 256, "page_size": PAGE},
                headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
            ) as response,
        ):
            assert response.status == 201
        stop = asyncio.Event()
        held: list[asyncio.StreamWriter] = []
        refused: list[int] = []
        abuse = [
            asyncio.create_task(idle_connections(port, 1100, held)),
            asyncio.create_task(slowloris(port, 50, stop)),
            asyncio.create_task(create_delete_cycles(url, stop, refused)),
            *(asyncio.create_task(stalled_upload(port, stop)) for _ in range(32)),
        ]
        latencies: list[float] = []
        peak_rss = 0
        data = os.urandom(8 * PAGE)
        deadline = time.monotonic() + ABUSE_SECONDS
        slot = 0
        while time.monotonic() < deadline:
            start = time.perf_counter()
            await legit.write(slot, data)
            assert await legit.read(slot, 8) == data
            latencies.append(time.perf_counter() - start)
            slot = (slot + 8) % 256
            peak_rss = max(peak_rss, _rss(proc.pid))
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*abuse, return_exceptions=True)
        for writer in held:
            writer.close()
        await legit.deactivate()
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99)]
        disk = sum(f.stat().st_blocks * 512 for f in store.iterdir())
        assert len(latencies) > 20
        assert p99 < 2.0, f"legitimate p99 {p99:.3f} s"
        assert refused, "the create/delete cycles never reached the quota"
        assert peak_rss < BUFFER_BYTES + RSS_ALLOWANCE, f"server RSS peaked at {peak_rss >> 20} MiB"
        assert disk <= 2 * QUOTA + (1 << 20), f"stores hold {disk >> 20} MiB on disk"
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        os.environ.pop("SWAPIO_TOKEN", None)
    assert "Too many open files" not in err
    assert "Traceback" not in err
