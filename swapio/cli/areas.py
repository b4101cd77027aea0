"""The core verbs: ``backends``, ``create``, ``info``, ``read``, ``write``, ``discard``.

A ``dd`` for swap areas: every verb activates the area named by a URL, does one thing, and
deactivates it (draining), so a verb that fails leaves the area as it was.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, BinaryIO, TypeVar

import click

from swapio.area import DEFAULT_PAGE_SIZE, CreateRequest, SwapArea, check_page_size
from swapio.errors import AreaError, PageSizeError, UsageError
from swapio.location import Location, url_page_size
from swapio.output import emit_bytes, emit_json, say
from swapio.plugins import PluginHost

T = TypeVar("T")


def _host(ctx: click.Context) -> PluginHost:
    host = ctx.find_object(PluginHost)
    assert host is not None
    return host


def _with_area(ctx: click.Context, url: str, body: Callable[[SwapArea], Awaitable[T]]) -> T:
    host = _host(ctx)

    async def run() -> T:
        area = await host.activate(url)
        try:
            return await body(area)
        finally:
            await area.deactivate()

    return asyncio.run(run())


def _area_document(area: SwapArea) -> dict[str, Any]:
    caps = area.capabilities
    return {
        "url": area.location.url,
        "backend": area.owner,
        "pages": area.pages,
        "page_size": area.page_size,
        "bytes": area.pages * area.page_size,
        "capabilities": {**asdict(caps), "reserve_need": caps.reserve_need},
    }


def _check_range(area: SwapArea, slot: int, count: int) -> None:
    if count < 1:
        raise UsageError(f"--count must be at least 1, got {count}")
    if slot < 0 or slot + count > area.pages:
        raise AreaError(
            f"slots {slot}..{slot + count - 1} are out of range: {area.location.url} has "
            f"{area.pages} slots (0..{area.pages - 1})"
        )


slot_option = click.option("--slot", type=int, required=True, help="First slot (from 0).")
count_option = click.option(
    "--count", type=int, default=1, show_default=True, help="Number of pages from --slot on."
)
json_option = click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")


@click.command()
@json_option
@click.option(
    "--check",
    is_flag=True,
    help="Import every plugin too: fail (exit 4) if one does not import or does not match "
    "what its metadata declares.",
)
@click.pass_context
def backends(ctx: click.Context, as_json: bool, check: bool) -> None:
    """List installed backends: name, version, URL schemes, capabilities.

    Plugins that describe themselves in their metadata are listed without being imported;
    --check imports them all.

    \b
    Examples:
      swapio backends
      swapio backends --json
      swapio backends --check
    """
    host = _host(ctx)
    if check:
        host.backends()
    rows: list[dict[str, Any]] = [
        {
            "name": info.name,
            "version": info.version,
            "schemes": list(info.schemes),
            "capabilities": list(info.capabilities),
            "summary": info.summary,
            "plugin": plugin,
        }
        for plugin, info in host.describe()
    ]
    if as_json:
        emit_json({"backends": rows})
        return
    say_table(
        ("NAME", "VERSION", "SCHEMES", "CAPABILITIES", "SUMMARY"),
        [
            (
                str(row["name"]),
                str(row["version"]),
                ",".join(row["schemes"]),
                ",".join(row["capabilities"]) or "-",
                str(row["summary"]),
            )
            for row in rows
        ],
    )


def say_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Print ``rows`` under ``header`` in left-aligned columns two spaces apart (the last
    column is not padded)."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    for row in (header, *rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        say("  ".join([*cells, row[-1]]).rstrip())


@click.command()
@click.argument("url")
@click.option("--pages", type=int, required=True, help="Number of slots (pages) in the area.")
@click.option(
    "--page-size",
    type=int,
    default=None,
    help=f"Bytes per page (default: the URL's page_size, else {DEFAULT_PAGE_SIZE}).",
)
@json_option
@click.pass_context
def create(ctx: click.Context, url: str, pages: int, page_size: int | None, as_json: bool) -> None:
    """Create a new swap area at URL (never overwrites an existing store).

    \b
    Examples:
      swapio create file:///var/tmp/a.swap --pages 1024
      swapio create 'file:///var/tmp/b.swap?durable=1' --pages 256 --page-size 16384
      swapio create nfs://127.0.0.1/srv/export/swapfile --pages 4096 --json
    """
    if page_size is None:
        page_size = url_page_size(Location.parse(url)) or DEFAULT_PAGE_SIZE
    check_page_size(page_size)
    request = CreateRequest(pages=pages, page_size=page_size)
    host = _host(ctx)

    async def run() -> dict[str, Any]:
        area = await host.activate(url, create=request)
        try:
            return _area_document(area)
        finally:
            await area.deactivate()

    doc = asyncio.run(run())
    if as_json:
        emit_json(doc)
    else:
        say(f"created {url}: {pages} pages of {page_size} bytes ({doc['backend']})")


@click.command()
@click.argument("url")
@json_option
@click.pass_context
def info(ctx: click.Context, url: str, as_json: bool) -> None:
    """Show an area's geometry and capabilities.

    \b
    Examples:
      swapio info file:///var/tmp/a.swap
      swapio info file:///var/tmp/a.swap --json
    """

    async def body(area: SwapArea) -> dict[str, Any]:
        return _area_document(area)

    doc = _with_area(ctx, url, body)
    if as_json:
        emit_json(doc)
        return
    for key, value in doc.items():
        if key == "capabilities":
            for cap, v in value.items():
                say(f"{cap:>25} : {v}")
        else:
            say(f"{key:>25} : {value}")


def _read_input(source: str | None, expected: int) -> bytes:
    stream: BinaryIO
    if source is None or source == "-":
        if sys.stdin is None:
            raise UsageError("write reads its data from stdin, which is closed (use --from)")
        stream = sys.stdin.buffer
        data = stream.read(expected + 1)
    else:
        try:
            with open(source, "rb") as stream:
                data = stream.read(expected + 1)
        except OSError as exc:
            raise UsageError(f"cannot read --from {source}: {exc.strerror}") from None
    if len(data) != expected:
        got = f"more than {expected}" if len(data) > expected else str(len(data))
        raise PageSizeError(f"write needs exactly {expected} bytes of input, got {got}")
    return data


@click.command()
@click.argument("url")
@slot_option
@count_option
@click.option("--from", "source", type=str, default=None, help="Input file (default stdin).")
@json_option
@click.pass_context
def write(
    ctx: click.Context, url: str, slot: int, count: int, source: str | None, as_json: bool
) -> None:
    """Write COUNT pages from stdin (or --from FILE) to slots SLOT.. of URL.

    The input must be exactly COUNT pages; nothing is written otherwise.

    \b
    Examples:
      head -c 4096 /dev/urandom | swapio write file:///var/tmp/a.swap --slot 3
      swapio write file:///var/tmp/a.swap --slot 0 --count 2 --from pages.bin --json
    """

    async def body(area: SwapArea) -> dict[str, Any]:
        _check_range(area, slot, count)
        data = _read_input(source, count * area.page_size)  # all input before any write
        await area.write(slot, data)
        return {"url": url, "slot": slot, "count": count, "bytes": len(data)}

    doc = _with_area(ctx, url, body)
    if as_json:
        emit_json(doc)


@click.command()
@click.argument("url")
@slot_option
@count_option
@click.option("--to", "target", type=str, default=None, help="Output file (default stdout).")
@click.pass_context
def read(ctx: click.Context, url: str, slot: int, count: int, target: str | None) -> None:
    """Read COUNT pages from slots SLOT.. of URL to stdout (or --to FILE).

    \b
    Examples:
      swapio read file:///var/tmp/a.swap --slot 3 | od -A d -t x1 | head
      swapio read file:///var/tmp/a.swap --slot 0 --count 2 --to pages.bin
    """

    async def body(area: SwapArea) -> bytes:
        _check_range(area, slot, count)
        return bytes(await area.read(slot, count))

    data = _with_area(ctx, url, body)
    if target is None or target == "-":
        emit_bytes(data)
        return
    try:
        with open(target, "wb") as out:
            out.write(data)
    except OSError as exc:
        raise UsageError(f"cannot write --to {target}: {exc.strerror}") from None


@click.command()
@click.argument("url")
@slot_option
@count_option
@json_option
@click.pass_context
def discard(ctx: click.Context, url: str, slot: int, count: int, as_json: bool) -> None:
    """Discard COUNT slots from SLOT (they read as zeros afterwards).

    \b
    Examples:
      swapio discard file:///var/tmp/a.swap --slot 3
      swapio discard file:///var/tmp/a.swap --slot 0 --count 16 --json
    """

    async def body(area: SwapArea) -> None:
        _check_range(area, slot, count)
        await area.discard(slot, count)

    _with_area(ctx, url, body)
    if as_json:
        emit_json({"url": url, "slot": slot, "count": count, "discarded": True})


CORE_COMMANDS = (backends, create, info, write, read, discard)
