"""What ``mdadm --examine-bitmap`` prints, reproduced from a decoded bitmap.

Formats follow mdadm 4.2 ``ExamineBitmap()`` (``bitmap.c``) and ``human_size()``
(``util.c``): right-aligned labels of 16 columns, the chunk size in the largest whole
binary unit, the sync size in KiB followed by ``(x.xx GiB y.yy GB)``.  The JSON form adds
``chunks``, ``dirty`` and ``dirty_chunks``; docs/bitmap-and-mirror.md lists its keys.
"""

from __future__ import annotations

from typing import Any

from swapio_mdraid._format import Bitmap, format_uuid

_STATE_TEXT = {0: "OK", 2: "Out of date"}


def state_text(state: int) -> str:
    """mdadm ``bitmap_state()``: the whole state value mapped, ``Unknown`` otherwise."""
    return _STATE_TEXT.get(state, "Unknown")


def human_chunksize(nbytes: int) -> str:
    """mdadm ``human_chunksize()``: shift by 1024 while the value has higher bits."""
    suffixes = ("B", "KB", "MB", "GB", "TB")
    index = 0
    while nbytes >> 10 and index < len(suffixes) - 1:
        nbytes >>= 10
        index += 1
    return f"{nbytes} {suffixes[index]}"


def human_size(nbytes: int) -> str:
    """mdadm ``human_size()``: empty under 5000 KiB, else ``" (x.xx MiB y.yy MB)"`` or GiB/TiB."""
    if nbytes < 5000 * 1024:
        return ""
    if nbytes < 2 << 30:
        binary = (nbytes * 200 // (1 << 20) + 1) // 2
        decimal = (nbytes // (1000000 // 200) + 1) // 2
        units = ("MiB", "MB")
    elif nbytes < 2 << 40:
        binary = (nbytes * 200 // (1 << 30) + 1) // 2
        decimal = (nbytes // (1000000000 // 200) + 1) // 2
        units = ("GiB", "GB")
    else:
        binary = (nbytes * 200 // (1 << 40) + 1) // 2
        decimal = (nbytes // (1000000000000 // 200) + 1) // 2
        units = ("TiB", "TB")
    return (
        f" ({binary // 100}.{binary % 100:02d} {units[0]} "
        f"{decimal // 100}.{decimal % 100:02d} {units[1]})"
    )


def write_mode_text(write_behind: int) -> str:
    return f"Allow write behind, max {write_behind}" if write_behind else "Normal"


def examine_lines(bitmap: Bitmap, filename: str) -> list[str]:
    """The lines ``mdadm --examine-bitmap FILENAME`` prints for this bitmap."""
    sb = bitmap.superblock
    chunks = bitmap.chunks
    dirty = bitmap.count_dirty()
    percent = 100.0 * dirty / (chunks or 1)
    return [
        f"        Filename : {filename}",
        f"           Magic : {sb.magic:08x}",
        f"         Version : {sb.version}",
        f"            UUID : {format_uuid(sb.uuid)}",
        f"          Events : {sb.events}",
        f"  Events Cleared : {sb.events_cleared}",
        f"           State : {state_text(sb.state)}",
        f"       Chunksize : {human_chunksize(sb.chunksize)}",
        f"          Daemon : {sb.daemon_sleep}s flush period",
        f"      Write Mode : {write_mode_text(sb.write_behind)}",
        f"       Sync Size : {sb.sync_size // 2}{human_size(sb.sync_size * 512)}",
        f"          Bitmap : {chunks} bits (chunks), {dirty} dirty ({percent:2.1f}%)",
    ]


def examine_json(bitmap: Bitmap, filename: str) -> dict[str, Any]:
    """The machine-readable examine record (keys documented in docs/bitmap-and-mirror.md)."""
    sb = bitmap.superblock
    dirty_chunks = list(bitmap.dirty_chunks())
    return {
        "filename": filename,
        "magic": f"{sb.magic:08x}",
        "version": sb.version,
        "uuid": format_uuid(sb.uuid),
        "events": sb.events,
        "events_cleared": sb.events_cleared,
        "state": sb.state,
        "state_text": state_text(sb.state),
        "chunk_size": sb.chunksize,
        "daemon_sleep": sb.daemon_sleep,
        "write_behind": sb.write_behind,
        "sync_size_sectors": sb.sync_size,
        "sync_size_bytes": sb.sync_size_bytes,
        "sectors_reserved": sb.sectors_reserved,
        "nodes": sb.nodes,
        "cluster_name": sb.cluster_name.decode("utf-8", "replace"),
        "chunks": bitmap.chunks,
        "dirty": len(dirty_chunks),
        "dirty_chunks": dirty_chunks,
    }
