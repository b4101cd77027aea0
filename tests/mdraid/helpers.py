"""Helpers for the md bitmap / mirror tests: real files, the real plugin host."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from swapio_mdraid import Bitmap
from swapio_mdraid._mirror import Mirror

from swapio.area import BoundOps, CreateRequest, SwapArea
from swapio.plugins import PluginHost

PAGE = 4096


def mirror_url(
    bitmap: str,
    legs: list[str],
    *,
    name: str = "m0",
    chunk: int = 65536,
    daemon: bool = False,
    resync: bool = True,
) -> str:
    query = [f"bitmap={quote(bitmap, safe='')}"]
    query += [f"leg{i}={quote(leg, safe='')}" for i, leg in enumerate(legs)]
    query += [f"chunk_size={chunk}", f"daemon={int(daemon)}", f"resync={int(resync)}"]
    return f"mirror://{name}?{'&'.join(query)}"


@dataclass
class MirrorFiles:
    """Paths of a two-leg mirror made of local files."""

    root: Path
    bitmap: Path
    legs: list[Path]
    chunk: int = 65536

    def url(self, *, daemon: bool = False, resync: bool = True) -> str:
        return mirror_url(
            str(self.bitmap),
            [str(p) for p in self.legs],
            chunk=self.chunk,
            daemon=daemon,
            resync=resync,
        )

    def read_bitmap(self) -> Bitmap:
        return Bitmap.decode(self.bitmap.read_bytes())

    def differing_chunks(self) -> list[int]:
        datas = [p.read_bytes() for p in self.legs]
        size = len(datas[0])
        out = []
        for chunk in range(-(-size // self.chunk)):
            window = slice(chunk * self.chunk, (chunk + 1) * self.chunk)
            if any(d[window] != datas[0][window] for d in datas[1:]):
                out.append(chunk)
        return out


async def create_mirror(host: PluginHost, files: MirrorFiles, pages: int = 64) -> SwapArea:
    return await host.activate(files.url(), create=CreateRequest(pages, PAGE))


def mirror_of(area: SwapArea) -> Mirror:
    mirror = area.private
    assert isinstance(mirror, Mirror)
    return mirror


def spy_leg_writes(area: SwapArea, spy: Callable[..., Awaitable[None]]) -> BoundOps:
    """Route every data write of leg ``area`` through ``spy(area, slot, pages, real=hook)``
    (the mirror calls a leg's own hook, ``area._ops``, not ``SwapArea.call_validated``);
    returns the ops to put back."""
    saved: BoundOps = area._ops
    real = saved.swap_out

    async def spied(leg: SwapArea, slot: int, pages: Sequence[object]) -> None:
        await spy(leg, slot, pages, real=real)

    area._ops = dataclasses.replace(saved, swap_out=spied)
    return saved


def page(fill: int) -> bytes:
    return bytes([fill]) * PAGE


def make_image(path: Path, size: int, fill: int = 0) -> None:
    with open(path, "wb") as fh:
        fh.write(bytes([fill]) * size)
        fh.flush()
        os.fsync(fh.fileno())


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run ``swapio ARGS`` in this process (fast).  Not from inside an event loop."""
    from click.testing import CliRunner

    from swapio.cli import build_cli

    result = CliRunner().invoke(build_cli(PluginHost()), list(args), catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def cli(*args: str, rc: int = 0) -> str:
    """Run ``swapio ARGS`` in this process, check the exit code, return stdout."""
    result = run_cli(*args)
    assert result.returncode == rc, (result.returncode, result.stdout, result.stderr)
    return result.stdout
