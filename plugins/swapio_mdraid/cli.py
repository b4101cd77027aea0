"""``swapio bitmap create|examine|dirty|resync``: md write-intent bitmaps from the shell.

BITMAP and every leg are a path (image file, block device, bitmap file) or a swapio URL.
Exit codes (docs/bitmap-and-mirror.md): 0 done / in sync, 1 I/O failure (progress kept),
2 usage error, 3 input refused (bad bitmap, mismatched legs; nothing written),
8 ``--dry-run`` found work to do (mdadm ``--test`` style), 9 ``--verify`` found chunks that
differed although their bit was clear, 130 interrupted (progress kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any, TextIO, TypeVar

import click

from swapio.area import SwapArea
from swapio.errors import SwapioError
from swapio.output import emit_json, stderr_is_tty
from swapio.plugins import PluginHost
from swapio_mdraid import _locate
from swapio_mdraid._format import DEFAULT_DAEMON_SLEEP, Bitmap, parse_uuid
from swapio_mdraid._resync import ResyncReport, resync
from swapio_mdraid._store import BitmapStore
from swapio_mdraid.errors import BitmapParameterError

T = TypeVar("T")

EXIT_NEEDS_RESYNC = 8
EXIT_OUTSIDE_BITMAP = 9
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
#: Text output shows at most this many chunk ranges (all of them with --list or --json).
RANGES_SHOWN = 20

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtpe])?(i?b)?\s*(/s)?\s*$", re.IGNORECASE)
_POWERS = "kmgtpe"


def parse_size(text: str, what: str, *, rate: bool = False) -> int:
    """A size as ``dd`` and ``numfmt`` read it: ``K``/``M``/``G``... and ``KiB``/``MiB``...
    are powers of 1024, ``kB``/``KB``/``MB``/``GB``... powers of 1000; a fraction is allowed
    when a unit makes it whole bytes (``1.5M``); ``rate``: a trailing ``/s`` is accepted."""
    match = _SIZE.match(text)
    if not match or (match.group(4) and not rate) or (match.group(3) and not match.group(2)):
        example = "8M/s, 1.5MB/s, 100M" if rate else "4096, 64K, 1.5MiB, 2GB"
        raise BitmapParameterError(f"{what} {text!r} is not a size (e.g. {example})")
    number, prefix, suffix = match.group(1), match.group(2), (match.group(3) or "").lower()
    power = _POWERS.index(prefix.lower()) + 1 if prefix else 0
    base = 1000 if suffix == "b" else 1024
    whole, _, frac = number.partition(".")
    scale = 1
    for _ in range(power):
        scale *= base
    value = int(whole) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
    if frac and int(frac) * scale % 10 ** len(frac):
        raise BitmapParameterError(f"{what} {text!r} is not a whole number of bytes")
    return value


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
@click.option(
    "--daemon-sleep",
    type=int,
    default=DEFAULT_DAEMON_SLEEP,
    show_default=True,
    help="Seconds between the daemon's lazy-clear passes (md's daemon_sleep).",
)
@click.option(
    "--uuid", "uuid_text", default=None, help="32 hex digits (default: a random UUID, as mdadm)."
)
@click.option(
    "--write-behind",
    type=int,
    default=0,
    show_default=True,
    help="Stored and printed as mdadm does (0: Normal); not used by swapio.",
)
@click.option("--clean", is_flag=True, help="All bits clear (legs known identical).")
@click.option("--json", "as_json", is_flag=True, help="Print what examine --json prints.")
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
    """Create a version-4 bitmap; every bit set (full resync) unless --clean.

    \b
    Examples:
      swapio bitmap create /var/tmp/m0.bitmap --sync-size 1G --chunk-size 64K
      swapio bitmap create m0.bitmap --sync-size 256MiB --chunk-size 1M --clean
    """
    new = Bitmap.create(
        sync_size_bytes=parse_size(sync_size, "sync size"),
        chunk_size=parse_size(chunk_size, "chunk size"),
        daemon_sleep=daemon_sleep,
        uuid=parse_uuid(uuid_text) if uuid_text else _random_uuid(),
        write_behind=write_behind,
        all_dirty=not clean,
    )

    async def body() -> None:
        store = await BitmapStore.create(_host(ctx), bitmap_name, new)
        await store.close()

    _run(body)
    _report_examine(new, bitmap_name, as_json)


def _random_uuid() -> bytes:
    import uuid  # noqa: PLC0415 - only create needs it (5 ms of imports on every verb)

    return uuid.uuid4().bytes


@bitmap.command("examine")
@click.argument("bitmap_names", metavar="BITMAP...", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Add chunks, dirty, dirty_chunks.")
@click.pass_context
def examine(ctx: click.Context, bitmap_names: tuple[str, ...], as_json: bool) -> None:
    """Print what `mdadm --examine-bitmap` prints, for each BITMAP in turn.

    With several files, --json prints one list of documents.

    \b
    Examples:
      swapio bitmap examine /var/tmp/m0.bitmap
      swapio bitmap examine a.bitmap b.bitmap --json
    """

    async def body(name: str) -> Bitmap:
        store = await BitmapStore.open(_host(ctx), name, read_only=True)
        await store.close()
        return store.bitmap

    found = [(name, _run(lambda name=name: body(name))) for name in bitmap_names]  # type: ignore[misc]
    if len(found) == 1:
        _report_examine(found[0][1], found[0][0], as_json)
    elif as_json:
        from swapio_mdraid._examine import examine_json  # noqa: PLC0415 - examine only

        emit_json([examine_json(bitmap, name) for name, bitmap in found])
    else:
        from swapio_mdraid._examine import examine_lines  # noqa: PLC0415 - examine only

        click.echo("\n\n".join("\n".join(examine_lines(b, name)) for name, b in found))


def _report_examine(found: Bitmap, name: str, as_json: bool) -> None:
    from swapio_mdraid._examine import examine_json, examine_lines  # noqa: PLC0415

    if as_json:
        emit_json(examine_json(found, name))
    else:
        click.echo("\n".join(examine_lines(found, name)))


@bitmap.command("dirty")
@click.argument("bitmap_name", metavar="BITMAP")
@click.option("--offset", required=True, help="First byte of the range.")
@click.option("--length", required=True, help="Bytes in the range.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
@click.pass_context
def dirty(ctx: click.Context, bitmap_name: str, offset: str, length: str, as_json: bool) -> None:
    """Set the bits of every chunk covering a byte range (force it to resync).

    \b
    Examples:
      swapio bitmap dirty m0.bitmap --offset 0 --length 1G     # a new leg: copy it all
      swapio bitmap dirty m0.bitmap --offset 3M --length 64K
    """

    async def body() -> dict[str, Any]:
        store = await BitmapStore.open(_host(ctx), bitmap_name)
        _note_padding(store)
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


def _note_padding(store: BitmapStore) -> None:
    """Say so when opening grew an mdadm-sized bitmap file (never silently)."""
    if store.padded is not None:
        old, new = store.padded
        click.echo(
            f"swapio: note: {store.name}: padded from {old} to {new} bytes with zeros (a swap "
            "area is whole pages; mdadm ignores bytes past the bits)",
            err=True,
        )


def _identity(name: str) -> str:
    """What a leg is, whether given as a path or as a URL (a local file: its real path)."""
    path = _locate.local_path(name)
    return os.path.realpath(path) if path is not None else _locate.location_of(name).url


def _iec(nbytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024:
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{nbytes:.0f} B"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


class _Bar:
    """A one-line progress bar on stderr, only when stderr is a terminal.

    Chunks done / to do, percent, bytes, rate and ETA; redrawn at most ``HZ`` times a
    second (and once at the end).  ``clock`` and ``stream`` are for the tests.
    """

    HZ = 10

    def __init__(
        self,
        label: str,
        chunk_size: int = 0,
        *,
        enabled: bool | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.chunk_size = chunk_size
        self.enabled = stderr_is_tty() if enabled is None else enabled
        self.stream = stream or sys.stderr
        self.clock = clock
        self.start = clock()
        self.last = -1.0
        self.shown = False
        self.draws = 0

    def note(self, text: str) -> None:
        """A line above the bar (the resume note), only where the bar is drawn."""
        if self.enabled:
            self.stream.write(f"{text}\n")
            self.stream.flush()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if done < total and now - self.last < 1 / self.HZ:
            return
        self.last = now
        width = 24
        total = max(total, 1)
        filled = width * done // total
        elapsed = max(now - self.start, 1e-9)
        nbytes = done * self.chunk_size
        rate = nbytes / elapsed
        left = (total - done) * elapsed / done if done else 0.0
        self.stream.write(
            f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"{100 * done / total:5.1f}% {_iec(nbytes)} {_iec(rate)}/s ETA {left:4.1f} s "
        )
        self.stream.flush()
        self.shown = True
        self.draws += 1

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")


@bitmap.command("resync")
@click.argument("bitmap_name", metavar="BITMAP")
@click.option("--source", required=True, help="The leg to copy from.")
@click.option(
    "--target",
    "targets",
    multiple=True,
    required=True,
    help="A leg to copy to; repeat it for several.",
)
@click.option("--dry-run", is_flag=True, help="List what would be copied; write nothing.")
@click.option("--verify", is_flag=True, help="Compare every chunk; repair differences.")
@click.option("--max-speed", default=None, help="Bytes per second at most (e.g. 100M, 8M/s).")
@click.option("--list", "full_list", is_flag=True, help="List every chunk, not merged ranges.")
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
    full_list: bool,
    as_json: bool,
) -> None:
    """Copy every chunk whose bit is set from --source to each --target, clearing bits.

    \b
    Exit codes: 0 legs in sync; 1 I/O failure (progress kept, rerun);
    2 usage error; 3 input refused, nothing written; 8 --dry-run found work;
    9 --verify found differences outside the bitmap; 130 interrupted (progress kept, rerun);
    143 terminated by SIGTERM (progress kept, rerun).

    \b
    Examples:
      swapio bitmap resync m0.bitmap --source m0-a.img --target m0-b.img
      swapio bitmap resync m0.bitmap --source a.img --target b.img --target c.img
      swapio bitmap resync m0.bitmap --source a.img --target b.img --dry-run --list
      swapio bitmap resync m0.bitmap --source a.img --target b.img --verify --json
      swapio bitmap resync m0.bitmap --source a.img --target b.img --max-speed 50M/s
    """
    speed = parse_size(max_speed, "max speed", rate=True) if max_speed is not None else None
    if speed == 0:
        raise BitmapParameterError("--max-speed 0 would copy nothing; omit it for no limit")
    names = [source, *targets]
    if len({_identity(n) for n in names}) != len(names):
        raise BitmapParameterError("a --target is the --source or is given twice")
    bar = _Bar("resync")
    partial: list[ResyncReport] = []
    terminated = False

    def started(report: ResyncReport) -> None:
        partial.append(report)
        bar.chunk_size = report.chunk_size
        clean = report.chunks - report.dirty_before
        if not (dry_run or verify):
            bar.note(
                f"resync: {report.dirty_before} dirty chunks to copy; {clean} of "
                f"{report.chunks} already clean"
            )

    async def body() -> ResyncReport:
        nonlocal terminated
        task = asyncio.current_task()
        assert task is not None

        def terminate() -> None:
            nonlocal terminated
            terminated = True
            task.cancel()

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, terminate)
        host = _host(ctx)
        areas: list[SwapArea] = []
        store = await BitmapStore.open(host, bitmap_name, read_only=dry_run)
        _note_padding(store)
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
                started=started,
                names=names,
            )
        finally:
            for area in areas:
                with contextlib.suppress(SwapioError):
                    await area.deactivate()
            await store.close()

    try:
        report = _run(body)
    except (KeyboardInterrupt, asyncio.CancelledError):
        bar.close()
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        if as_json and partial:
            partial[0].interrupted = True
            emit_json(dataclasses.asdict(partial[0]))
        click.echo(f"swapio: resync {how}; progress is kept, run it again", err=True)
        ctx.exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
    bar.close()
    _report_resync(report, as_json, full_list)
    if report.mismatched_outside_bitmap:
        ctx.exit(EXIT_OUTSIDE_BITMAP)
    if dry_run and (report.would_copy or report.mismatched):
        ctx.exit(EXIT_NEEDS_RESYNC)


def chunk_ranges(chunks: list[int]) -> list[tuple[int, int]]:
    """Sorted chunk indices as ``(first, last)`` runs of consecutive chunks."""
    out: list[tuple[int, int]] = []
    for chunk in chunks:
        if out and out[-1][1] + 1 == chunk:
            out[-1] = (out[-1][0], chunk)
        else:
            out.append((chunk, chunk))
    return out


def _range_lines(
    chunks: list[int], chunk_size: int, full: bool, outside: frozenset[int] = frozenset()
) -> list[str]:
    """One line per run of chunks (every chunk with ``full``), at most RANGES_SHOWN."""
    runs = [(c, c) for c in chunks] if full else chunk_ranges(chunks)
    lines = []
    for first, last in runs if full else runs[:RANGES_SHOWN]:
        count = last - first + 1
        what = f"chunk {first}" if count == 1 else f"chunks {first}..{last} ({count})"
        mark = ""
        if outside:
            n = sum(1 for c in range(first, last + 1) if c in outside)
            mark = f"  <- {n} outside the bitmap" if n else ""
        start, end = first * chunk_size, (last + 1) * chunk_size - 1
        lines.append(f"  {what} bytes {start}..{end}{mark}")
    if not full and len(runs) > RANGES_SHOWN:
        lines.append(f"  ... {len(runs) - RANGES_SHOWN} more ranges (--list or --json for all)")
    return lines


def _report_resync(report: ResyncReport, as_json: bool, full: bool = False) -> None:
    if as_json:
        emit_json(dataclasses.asdict(report))
        return
    outside = frozenset(report.mismatched_outside_bitmap)
    size = report.chunk_size
    if report.dry_run:
        chunks = report.mismatched if report.verified else report.would_copy
        verb = "differ" if report.verified else "would be copied"
        click.echo(
            f"{len(chunks)} of {report.chunks} chunks {verb}, in "
            f"{len(chunk_ranges(chunks))} ranges"
            + (f"; {len(outside)} of them outside the bitmap" if outside else "")
        )
        for line in _range_lines(chunks, size, full, outside):
            click.echo(line)
        return
    rate = report.bytes_copied / report.seconds / (1 << 20) if report.seconds else 0.0
    clean = report.chunks - report.dirty_before
    click.echo(
        f"resynced {report.copied} dirty chunks ({report.bytes_copied} bytes, {rate:.1f} MiB/s); "
        f"the other {clean} of {report.chunks} were clean; events {report.events}, "
        f"events cleared {report.events_cleared}"
    )
    if report.verified:
        click.echo(
            f"verified {report.verified} chunks: {len(report.mismatched)} differed "
            f"({len(outside)} outside the bitmap), repaired"
        )
        for line in _range_lines(report.mismatched, size, full, outside):
            click.echo(line)
        if outside:
            click.echo(
                "swapio: warning: chunks differed whose bit was clear: the bitmap did not "
                "cover every write (exit 9)",
                err=True,
            )
