"""``swapio flash format|inspect|gc``: make, examine and clean flashlog images.

Every verb takes ``--json`` (one JSON document on stdout).  Every verb opens the image
under its exclusive lock: on an image mounted by another process it fails with one line
("image ... is in use by another process", exit 3) and touches nothing.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

import click

from swapio.errors import UsageError
from swapio.output import emit_json
from swapio_flashlog.device import Geometry, image_geometry, image_size
from swapio_flashlog.log import FlashLog, LogOptions, LogReport

_UNITS = {"": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}


def parse_size(text: str) -> int:
    """``65536``, ``64KiB``, ``64k``, ``16MiB`` → bytes."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise UsageError(f"size {text!r} is not a number of bytes (e.g. 65536, 64KiB, 16MiB)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


class SizeType(click.ParamType):  # type: ignore[type-arg]
    name = "BYTES"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


SIZE = SizeType()


def _geometry(image: str, erase_block: int | None) -> Geometry | None:
    if erase_block is None:
        return None
    return image_geometry(image, image_size(image), erase_block)


@click.group()
def flash() -> None:
    """Format, inspect and garbage-collect flashlog (JFFS2) images."""


@flash.command("format")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--size", type=SIZE, required=True, help="flash size in bytes (e.g. 16MiB)")
@click.option(
    "--erase-block",
    type=SIZE,
    default="64KiB",
    show_default=True,
    help="erase block size in bytes (mkfs.jffs2 -e)",
)
@click.option(
    "--write-unit",
    type=SIZE,
    default="4",
    show_default=True,
    help="smallest programmable unit in bytes (NOR: 1-4, NAND: the page size)",
)
@click.option("--no-cleanmarkers", is_flag=True, help="do not write cleanmarkers (mkfs -n)")
@click.option(
    "--bad-block",
    "bad_blocks",
    type=int,
    multiple=True,
    help="mark erase block N bad; repeat for several",
)
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def format_cmd(
    image: str,
    size: int,
    erase_block: int,
    write_unit: int,
    no_cleanmarkers: bool,
    bad_blocks: tuple[int, ...],
    as_json: bool,
) -> None:
    """Create IMAGE: an erased flash of SIZE bytes (and its IMAGE.flash sidecar).

    \b
    Examples:
      swapio flash format /var/tmp/flash.img --size 16MiB
      swapio flash format nand.img --size 64MiB --erase-block 128KiB --write-unit 2KiB
      swapio flash format worn.img --size 4MiB --bad-block 3 --bad-block 17 --json
    """
    geometry = Geometry(size, erase_block, write_unit)
    log = FlashLog.format(image, geometry, LogOptions(cleanmarkers=not no_cleanmarkers), bad_blocks)
    log.close()
    if as_json:
        emit_json(
            {
                "image": image,
                "geometry": asdict(geometry),
                "blocks": geometry.blocks,
                "cleanmarkers": not no_cleanmarkers,
                "bad_blocks": sorted(set(bad_blocks)),
            }
        )
        return
    click.echo(
        f"{image}: {geometry.blocks} erase blocks of {erase_block} bytes, "
        f"{'no ' if no_cleanmarkers else ''}cleanmarkers"
    )


def _report_dict(report: LogReport) -> dict[str, Any]:
    states: dict[str, int] = {}
    for b in report.blocks:
        states[b.state] = states.get(b.state, 0) + 1
    return {
        "geometry": asdict(report.geometry),
        "cleanmarkers": report.cleanmarkers,
        "files": report.files,
        "nodes": sum(b.nodes for b in report.blocks),
        "live_nodes": sum(b.live_nodes for b in report.blocks),
        "live_bytes": sum(b.live for b in report.blocks),
        "dirty_bytes": sum(b.dirty for b in report.blocks),
        "free_bytes": sum(b.free for b in report.blocks),
        "block_states": states,
        "erase_count": {
            "min": report.erase_min,
            "mean": report.erase_mean,
            "max": report.erase_max,
        },
        "programmed_bytes": report.programmed_bytes,
        "host_bytes": report.host_bytes,
        "write_amplification": report.write_amplification,
        "blocks": [asdict(b) for b in report.blocks],
    }


@flash.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--erase-block", type=SIZE, default=None, help="for images without a sidecar")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def inspect(image: str, erase_block: int | None, as_json: bool) -> None:
    """Show nodes and live/obsolete/free space per erase block, wear and write amplification.

    \b
    Examples:
      swapio flash inspect /var/tmp/flash.img
      swapio flash inspect mkfs-image.jffs2 --erase-block 64KiB --json
    """
    log = FlashLog.open(image, _geometry(image, erase_block), readonly=True)
    try:
        doc = _report_dict(log.report())
    finally:
        log.close()
    if as_json:
        emit_json(doc)
        return
    g = doc["geometry"]
    click.echo(
        f"{image}: {g['size']} bytes, {len(doc['blocks'])} erase blocks of "
        f"{g['erase_block']} bytes, write unit {g['write_unit']}, "
        f"cleanmarkers {'yes' if doc['cleanmarkers'] else 'no'}"
    )
    for name, size in doc["files"].items():
        click.echo(f"  file {name}: {size} bytes")
    click.echo(
        f"  nodes {doc['nodes']} ({doc['live_nodes']} live); bytes live "
        f"{doc['live_bytes']}, dirty {doc['dirty_bytes']}, free {doc['free_bytes']}"
    )
    ec = doc["erase_count"]
    click.echo(f"  erase count min {ec['min']} mean {ec['mean']:.2f} max {ec['max']}")
    wa = doc["write_amplification"]
    click.echo(
        f"  write amplification {'n/a' if wa is None else f'{wa:.3f}'} "
        f"({doc['programmed_bytes']} programmed / {doc['host_bytes']} from the host)"
    )
    click.echo("  block state  erases nodes live   live-bytes dirty-bytes free-bytes summary")
    for b in doc["blocks"]:
        click.echo(
            f"  {b['index']:5d} {b['state']:<5s} {b['erase_count']:6d} {b['nodes']:5d} "
            f"{b['live_nodes']:5d} {b['live']:11d} {b['dirty']:11d} {b['free']:10d} "
            f"{'yes' if b['summarized'] else 'no'}"
        )


@flash.command()
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--erase-block", type=SIZE, default=None, help="for images without a sidecar")
@click.option("--steps", type=int, default=0, help="at most this many blocks (0: until clean)")
@click.option("--json", "as_json", is_flag=True, help="one JSON document on stdout")
def gc(image: str, erase_block: int | None, steps: int, as_json: bool) -> None:
    """Garbage-collect IMAGE: move live nodes out of dirty blocks and erase them.

    \b
    Examples:
      swapio flash gc /var/tmp/flash.img
      swapio flash gc /var/tmp/flash.img --steps 4 --json
    """
    log = FlashLog.open(image, _geometry(image, erase_block))
    done = 0
    try:
        before = len(log.free_blocks())
        while (steps == 0 or done < steps) and log.gc_step(wear_levelling=False):
            done += 1
            if steps == 0 and done > len(log.blocks):
                break
        after = len(log.free_blocks())
    finally:
        log.close()
    if as_json:
        emit_json(
            {
                "image": image,
                "collected_blocks": done,
                "free_blocks_before": before,
                "free_blocks_after": after,
            }
        )
        return
    click.echo(f"{image}: collected {done} erase block(s); free blocks {before} -> {after}")
