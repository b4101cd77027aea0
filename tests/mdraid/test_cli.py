"""`swapio bitmap create|examine|dirty`: options, human output and the JSON keys."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from swapio_mdraid import Bitmap
from swapio_mdraid._resync import ResyncReport
from swapio_mdraid.cli import parse_size
from swapio_mdraid.errors import BitmapParameterError

from tests.mdraid.helpers import cli

EXAMINE_KEYS = [
    "filename", "magic", "version", "uuid", "events", "events_cleared", "state", "state_text",
    "chunk_size", "daemon_sleep", "write_behind", "sync_size_sectors", "sync_size_bytes",
    "sectors_reserved", "nodes", "cluster_name", "chunks", "dirty", "dirty_chunks",
]  # fmt: skip


def test_create_with_every_option_and_examine_json(tmp_path: Path) -> None:
    path = tmp_path / "bm"
    cli("bitmap", "create", str(path), "--sync-size", "1M", "--chunk-size", "64K",
        "--daemon-sleep", "9", "--uuid", "00112233-4455-6677-8899-aabbccddeeff",
        "--write-behind", "100", "--clean")  # fmt: skip
    cli("bitmap", "dirty", str(path), "--offset", "64K", "--length", "128K")
    doc = json.loads(cli("bitmap", "examine", str(path), "--json"))
    assert list(doc) == EXAMINE_KEYS
    assert doc["magic"] == "6d746962"
    assert doc["version"] == 4
    assert doc["uuid"] == "00112233:44556677:8899aabb:ccddeeff"
    assert doc["chunk_size"] == 65536
    assert doc["daemon_sleep"] == 9
    assert doc["write_behind"] == 100
    assert doc["sync_size_sectors"] == 2048
    assert doc["sync_size_bytes"] == 1 << 20
    assert doc["chunks"] == 16
    assert doc["dirty"] == 2
    assert doc["dirty_chunks"] == [1, 2]
    assert doc["state_text"] == "OK"


def test_examine_prints_mdadm_lines(tmp_path: Path) -> None:
    path = tmp_path / "bm"
    cli("bitmap", "create", str(path), "--sync-size", "64M", "--chunk-size", "64K")
    out = cli("bitmap", "examine", str(path)).splitlines()
    assert out[0] == f"        Filename : {path}"
    assert "          Bitmap : 1024 bits (chunks), 1024 dirty (100.0%)" in out
    assert "       Sync Size : 65536 (64.00 MiB 67.11 MB)" in out


def test_dirty_reports_what_it_did(tmp_path: Path) -> None:
    path = tmp_path / "bm"
    cli("bitmap", "create", str(path), "--sync-size", "1M", "--chunk-size", "4K", "--clean")
    doc = json.loads(cli("bitmap", "dirty", str(path), "--offset", "4095", "--length", "2",
                         "--json"))  # fmt: skip
    assert doc == {"chunks": [0, 1], "newly_dirty": 2, "dirty": 2}
    again = cli("bitmap", "dirty", str(path), "--offset", "0", "--length", "12K")
    assert again.strip() == "chunks 0..2 marked dirty (1 newly); 3 dirty in total"


def test_bitmap_on_a_url_with_small_pages(tmp_path: Path) -> None:
    url = f"file://{quote(str(tmp_path / 'bm'))}?durable=1&page_size=512"
    cli("bitmap", "create", url, "--sync-size", "64M", "--chunk-size", "4K", "--clean")
    assert (tmp_path / "bm").stat().st_size == 256 + 2048 + 256  # 5 pages of 512 bytes
    cli("bitmap", "dirty", url, "--offset", str(16383 * 4096), "--length", "1")
    bitmap = Bitmap.decode((tmp_path / "bm").read_bytes())
    assert list(bitmap.dirty_chunks()) == [16383]


def test_bitmap_on_a_non_durable_url_is_refused_for_writing(tmp_path: Path) -> None:
    url = f"file://{quote(str(tmp_path / 'bm'))}"
    cli("bitmap", "create", url, "--sync-size", "1M", "--chunk-size", "4K", rc=3)
    assert not (tmp_path / "bm").exists()


@pytest.mark.parametrize(
    ("text", "value"),
    [("4096", 4096), ("64K", 65536), ("1MiB", 1 << 20), ("2g", 2 << 30), ("1T", 1 << 40)],
)
def test_sizes_take_binary_suffixes(text: str, value: int) -> None:
    assert parse_size(text, "size") == value


def test_bad_size_is_a_usage_error() -> None:
    with pytest.raises(BitmapParameterError, match="is not a size"):
        parse_size("12Q", "chunk size")


DOC = Path(__file__).resolve().parents[2] / "docs" / "bitmap-and-mirror.md"


def _doc_section(start: str, end: str) -> str:
    text = DOC.read_text()
    return text[text.index(start) : text.index(end, text.index(start))]


def test_every_examine_json_key_is_documented(tmp_path: Path) -> None:
    path = tmp_path / "bm"
    cli("bitmap", "create", str(path), "--sync-size", "1M", "--chunk-size", "64K")
    keys = set(json.loads(cli("bitmap", "examine", str(path), "--json")))
    table = _doc_section("`examine --json`", "`dirty --json`")
    documented = set(re.findall(r"`([a-z_]+)`", table))
    assert keys <= documented, keys - documented


def test_every_resync_json_key_is_documented() -> None:
    keys = {f.name for f in dataclasses.fields(ResyncReport)}
    paragraph = _doc_section("`resync --json`", "## Interop")
    documented = set(re.findall(r"`([a-z_]+)`", paragraph))
    assert keys <= documented, keys - documented
