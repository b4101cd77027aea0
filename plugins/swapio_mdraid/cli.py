"""``swapio bitmap create|examine|dirty|resync``: md write-intent bitmaps from the shell.

BITMAP and every leg are a path (image file, block device, bitmap file) or a swapio URL.
Exit codes (docs/bitmap-and-mirror.md): 0 done / in sync, 1 I/O failure (progress kept),
2 usage error, 3 input refused (bad bitmap, mismatched legs; nothing written),
8 ``--dry-run`` found work to do (mdadm ``--test`` style), 130 interrupted (progress kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click

from swapio.area import SwapArea
from swapio.errors import SwapioError
from swapio.output import emit_json, stderr_is_tty
from swapio.plugins import PluginHost
from swapio_mdraid import _locate
from swapio_mdraid._examine import examine_json, examine_lines
from swapio_mdraid._format import DEFAULT_DAEMON_SLEEP, Bitmap, parse_uuid
from swapio_mdraid._resync import ResyncReport, resync
from swapio_mdraid._store import BitmapStore
from swapio_mdraid.errors import BitmapParameterError

T = TypeVar("T")

EXIT_NEEDS_RESYNC = 8
EXIT_INTERRUPTED = 130

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str, what: str) -> int:
    """``4096``, ``64K``, ``1MiB``, ``2G``: binary units."""
    match = _SIZE.match(text)
    if not match:
        raise BitmapParameterError(f"{what} {text!r} is not a size (e.g. 4096, 64K, 1G)")
    unit = (match.group(2) or "").lower()[:1]
    return int(match.group(1)) * _UNITS[unit]


def _host(ctx: click.Context) -> PluginHost:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, PluginHost) else PluginHost()


def _run(body: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(body())


@click.group("bitmap")
def bitmap() -> None:
    """md write-intent bitmaps (Linux format): create, examine, dirty, resync."""


@bitmap.command("create")
@click.argument("bitmap_name", metavar="BITMAP")
@click.option("--sync-size", required=True, help="Bytes covered (the leg size), e.g. 1G.")
@click.option(
    "--chunk-size", required=True, help="Bytes per bit: a power of two >= 512; at most 2^21 chunks."
)
@click.option("--daemon-sleep", type=int, default=DEFAULT_DAEMON_SLEEP, show_default=True)
@click.option("--uuid", "uuid_text", default=None, help="32 hex digits (default: zeros).")
@click.option("--write-behind", type=int, default=0, show_default=True)
@click.option("--clean", is_flag=True, help="All bits clear (legs known identical).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def create(
    ctx: click.Context,
    bitmap_name: str,
    sync_size: str,
    chunk_size: str,
    daemon_sleep: int,
    uuid_text: str | None,
    write_behind: int,
    clean: bool,
    as_json: bool,
) -> None:
    """Create a version-4 bitmap; every bit set (full resync) unless --clean."""
    new = Bitmap.create(
        sync_size_bytes=parse_size(sync_size, "sync size"),
        chunk_size=parse_size(chunk_size, "chunk size"),
        daemon_sleep=daemon_sleep,
        uuid=parse_uuid(uuid_text) if uuid_text else bytes(16),
        write_behind=write_behind,
        all_dirty=not clean,
    )

    async def body() -> None:
        store = await BitmapStore.create(_host(ctx), bitmap_name, new)
        await store.close()

    _run(body)
    _report_examine(new, bitmap_name, as_json)


@bitmap.command("examine")
@click.argument("bitmap_name", metavar="BITMAP")
@click.option("--json", "as_json", is_flag=True, help="Add chunks, dirty, dirty_chunks.")
@click.pass_context
def examine(ctx: click.Context, bitmap_name: str, as_json: bool) -> None:
    """Print what `mdadm --examine-bitmap` prints."""

    async def body() -> Bitmap:
        store = await BitmapStore.open(_host(ctx), bitmap_name, read_only=True)
        await store.close()
        return store.bitmap

    _report_examine(_run(body), bitmap_name, as_json)


def _report_examine(found: Bitmap, name: str, as_json: bool) -> None:
    if as_json:
        emit_json(examine_json(found, name))
    else:
        click.echo("\n".join(examine_lines(found, name)))


@bitmap.command("dirty")
@click.argument("bitmap_name", metavar="BITMAP")
@click.option("--offset", required=True, help="First byte of the range.")
@click.option("--length", required=True, help="Bytes in the range.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def dirty(ctx: click.Context, bitmap_name: str, offset: str, length: str, as_json: bool) -> None:
    """Set the bits of every chunk covering a byte range (force it to resync)."""

    async def body() -> dict[str, Any]:
        store = await BitmapStore.open(_host(ctx), bitmap_name)
        try:
            chunks = store.bitmap.chunks_for_range(
                parse_size(offset, "offset"), parse_size(length, "length")
            )
            newly = [c for c in chunks if store.bitmap.set(c)]
            pages = sorted({store.bitmap.chunk_byte_offset(c) // store.page_size for c in newly})
            await store.write_pages(pages)
        finally:
            await store.close()
        return {
            "chunks": [chunks.start, chunks.stop - 1],
            "newly_dirty": len(newly),
            "dirty": store.bitmap.count_dirty(),
        }

    doc = _run(body)
    if as_json:
        emit_json(doc)
    else:
        first, last = doc["chunks"]
        click.echo(
            f"chunks {first}..{last} marked dirty ({doc['newly_dirty']} newly); "
            f"{doc['dirty']} dirty in total"
        )


def _identity(name: str) -> str:
    """What a leg is, whether given as a path or as a URL (a local file: its real path)."""
    path = _locate.local_path(name)
    return os.path.realpath(path) if path is not None else _locate.location_of(name).url


class _Bar:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = stderr_is_tty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


@bitmap.command("resync")
@click.argument("bitmap_name", metavar="BITMAP")
@click.option("--source", required=True, help="The leg to copy from.")
@click.option("--target", "targets", multiple=True, required=True, help="A leg to copy to.")
@click.option("--dry-run", is_flag=True, help="List what would be copied; write nothing.")
@click.option("--verify", is_flag=True, help="Compare every chunk; repair differences.")
@click.option("--max-speed", default=None, help="Bytes per second at most (e.g. 100M).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
@click.pass_context
def resync_command(
    ctx: click.Context,
    bitmap_name: str,
    source: str,
    targets: tuple[str, ...],
    dry_run: bool,
    verify: bool,
    max_speed: str | None,
    as_json: bool,
) -> None:
    """Copy every chunk whose bit is set from --source to each --target, clearing bits.

    \b
    Exit codes: 0 legs in sync; 1 I/O failure (progress kept, rerun);
    2 usage error; 3 input refused, nothing written; 8 --dry-run found work;
    130 interrupted (progress kept, rerun).
    """
    speed = parse_size(max_speed, "max speed") if max_speed else None
    names = [source, *targets]
    if len({_identity(n) for n in names}) != len(names):
        raise BitmapParameterError("a --target is the --source or is given twice")
    bar = _Bar("resync")

    async def body() -> ResyncReport:
        host = _host(ctx)
        areas: list[SwapArea] = []
        store = await BitmapStore.open(host, bitmap_name, read_only=dry_run)
        try:
            for name in names:
                areas.append(await _locate.activate(host, name))
            return await resync(
                store,
                areas[0],
                areas[1:],
                dry_run=dry_run,
                verify=verify,
                max_speed=speed,
                progress=bar,
            )
        finally:
            for area in areas:
                with contextlib.suppress(SwapioError):
                    await area.deactivate()
            await store.close()

    try:
        report = _run(body)
    except KeyboardInterrupt:
        bar.close()
        click.echo("swapio: resync interrupted; progress is kept, run it again", err=True)
        ctx.exit(EXIT_INTERRUPTED)
    bar.close()
    _report_resync(report, as_json)
    if dry_run and (report.would_copy or report.mismatched):
        ctx.exit(EXIT_NEEDS_RESYNC)


def _report_resync(report: ResyncReport, as_json: bool) -> None:
    if as_json:
        emit_json(dataclasses.asdict(report))
        return
    if report.dry_run:
        chunks = report.mismatched if report.verified else report.would_copy
        verb = "differ" if report.verified else "would be copied"
        click.echo(f"{len(chunks)} of {report.chunks} chunks {verb}")
        for chunk in chunks:
            start = chunk * report.chunk_size
            click.echo(f"chunk {chunk} bytes {start}..{start + report.chunk_size - 1}")
        return
    rate = report.bytes_copied / report.seconds / (1 << 20) if report.seconds else 0.0
    click.echo(
        f"resynced {report.copied} of {report.chunks} chunks ({report.bytes_copied} bytes, "
        f"{rate:.1f} MiB/s); events {report.events}, events cleared {report.events_cleared}"
    )
    if report.verified:
        click.echo(
            f"verified {report.verified} chunks: {len(report.mismatched)} differed "
            f"({len(report.mismatched_outside_bitmap)} outside the bitmap), repaired"
        )
