"""``swapio flash format|inspect|gc`` through the real ``swapio`` command group."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from swapio_flashlog.device import Geometry
from swapio_flashlog.log import FlashLog

from swapio.cli import build_cli
from swapio.plugins import PluginHost


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def swapio(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(build_cli(PluginHost()), list(args))
    return result.exit_code, result.stdout, result.stderr


def test_format_then_inspect_json(runner: CliRunner, tmp_path: Path) -> None:
    image = tmp_path / "f.img"
    rc, out, _ = swapio(runner, "flash", "format", str(image), "--size", "1MiB")
    assert rc == 0
    assert "16 erase blocks of 65536 bytes" in out
    rc, out, _ = swapio(runner, "flash", "inspect", str(image), "--json")
    assert rc == 0
    doc = json.loads(out)
    assert doc["geometry"] == {"size": 1 << 20, "erase_block": 65536, "write_unit": 4}
    assert doc["block_states"] == {"free": 16}
    assert doc["erase_count"] == {"min": 0, "mean": 0.0, "max": 0}
    assert doc["write_amplification"] is None


def test_inspect_reports_files_space_wear_and_write_amplification(
    runner: CliRunner, tmp_path: Path
) -> None:
    image = tmp_path / "f.img"
    log = FlashLog.format(str(image), Geometry(1 << 20, 65536))
    ino = log.create_file("/swapfile", 64 * 4096)
    rng = random.Random(1)
    for _ in range(400):
        log.write(ino, rng.randrange(64) * 4096, rng.randbytes(4096))
    log.close()
    rc, out, _ = swapio(runner, "flash", "inspect", str(image), "--json")
    doc = json.loads(out)
    assert rc == 0
    assert doc["files"] == {"swapfile": 64 * 4096}
    assert doc["live_nodes"] >= 64
    assert doc["nodes"] > doc["live_nodes"]
    assert doc["erase_count"]["max"] > 0
    assert doc["host_bytes"] == 400 * 4096
    assert doc["write_amplification"] > 1.0
    rc, text, _ = swapio(runner, "flash", "inspect", str(image))
    assert "write amplification" in text
    assert "file swapfile: 262144 bytes" in text


def test_gc_frees_blocks_and_keeps_data(runner: CliRunner, tmp_path: Path) -> None:
    image = tmp_path / "f.img"
    log = FlashLog.format(str(image), Geometry(1 << 20, 65536))
    ino = log.create_file("/swapfile", 64 * 4096)
    for round_ in range(3):
        for slot in range(64):
            log.write(ino, slot * 4096, bytes([round_ + 1]) * 4096)
    log.close()
    rc, out, _ = swapio(runner, "flash", "gc", str(image))
    assert rc == 0
    before, after = (int(x) for x in out.rsplit("free blocks ", 1)[1].split(" -> "))
    assert after > before
    log = FlashLog.open(str(image), readonly=True)
    out_buf = bytearray(4096)
    log.read(log.lookup("/swapfile"), 10 * 4096, memoryview(out_buf))
    assert out_buf == bytes([3]) * 4096
    log.close()


def test_user_errors_print_one_line_and_exit_non_zero(runner: CliRunner, tmp_path: Path) -> None:
    image = tmp_path / "f.img"
    image.write_bytes(b"not flash" * 1000)
    for args in (
        ["flash", "inspect", str(tmp_path / "missing.img")],
        ["flash", "format", str(image), "--size", "1MiB"],
        ["flash", "format", str(tmp_path / "g.img"), "--size", "100KiB"],
        ["flash", "inspect", str(image), "--erase-block", "4096"],
    ):
        rc, _out, err = swapio(runner, *args)
        assert rc != 0, args
        assert err.count("\n") == 1, (args, err)
        assert err.startswith("swapio: error: ")
        assert "Traceback" not in err


def test_the_installed_command_has_the_flash_verbs(tmp_path: Path) -> None:
    image = tmp_path / "f.img"
    subprocess.run(
        [
            "swapio",
            "flash",
            "format",
            str(image),
            "--size",
            "512KiB",
            "--erase-block",
            "64KiB",
            "--no-cleanmarkers",
        ],
        check=True,
    )
    out = subprocess.run(
        ["swapio", "flash", "inspect", str(image), "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(out)["cleanmarkers"] is False
