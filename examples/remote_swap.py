"""Run a page server and swap to it over HTTP.

Starts ``swapio serve`` in a child process (on loopback, a free port, a fresh token), creates
an ``http://`` swap area on it, swaps pages out and back in, runs a pager over the remote area,
then stops the server with SIGTERM (which completes in-flight writes before it exits).

    python examples/remote_swap.py [--pages 4096] [--resident 128]

On two machines: run ``swapio serve --bind ADDR --token-file FILE`` on the one with memory to
spare, export ``SWAPIO_TOKEN`` on the other and use ``http://ADDR:8700/areas/NAME``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time

from swapio import CreateRequest, PluginHost
from swapio.pager import Pager


def start_server(token: str) -> tuple[subprocess.Popen[str], str]:
    """``swapio serve --port 0`` with ``token``; return the process and its base URL."""
    env = dict(os.environ, SWAPIO_TOKEN=token)
    proc = subprocess.Popen(
        [sys.executable, "-m", "swapio", "serve", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "listening on http://127.0.0.1:PORT"
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait()
        proc.stdout.close()
        raise SystemExit(f"page server did not start: {line!r}")
    return proc, line.split()[-1]


async def main(pages: int, resident: int) -> None:
    token = secrets.token_urlsafe(24)
    proc, base = start_server(token)
    os.environ["SWAPIO_TOKEN"] = token  # the client reads its token from the environment
    try:
        host = PluginHost()
        url = f"{base}/areas/demo"
        area = await host.activate(url, create=CreateRequest(pages=pages))
        print(f"created {url}: {area.pages} pages of {area.page_size} bytes")

        data = os.urandom(area.page_size * 64)
        start = time.perf_counter()
        for slot in range(0, area.pages, 64):
            await area.write(slot, data)
        elapsed = time.perf_counter() - start
        print(
            f"swapped out {area.pages} pages in {elapsed:.2f} s "
            f"({area.pages * area.page_size / elapsed / 2**20:.0f} MiB/s)"
        )
        assert await area.read(64, 64) == data
        print("swapped back in: contents match")

        async with Pager(area, resident_pages=resident) as pager:
            for index in range(area.pages):
                await pager.write(index, index.to_bytes(8, "little"))
            for index in range(0, area.pages, 97):
                assert (await pager.read(index))[:8] == index.to_bytes(8, "little")
            stats = pager.stats()
            print(
                f"pager over the remote area: {stats.writebacks} writebacks, "
                f"{stats.major_faults} major faults, resident {stats.resident}/{resident}"
            )
        await area.deactivate()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
        print(f"page server stopped (exit status {proc.returncode})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=4096)
    parser.add_argument("--resident", type=int, default=128)
    args = parser.parse_args()
    asyncio.run(main(args.pages, args.resident))
