"""The procedures of docs/bitmap-and-mirror.md ("Replacing a failed leg", "Growing the legs"),
run exactly as written: the shell block of each section, with ``D`` a temporary directory."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from swapio_mdraid import Bitmap

from tests.mdraid.helpers import PAGE, cli, page

DOC = Path(__file__).resolve().parents[2] / "docs" / "bitmap-and-mirror.md"
MIB = 1 << 20


def procedure(title: str) -> str:
    """The first ``sh`` block under the heading ``### {title}``."""
    text = DOC.read_text()
    section = text[text.index(f"### {title}\n") :]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match is not None, f"no sh block under {title!r}"
    return match.group(1)


def run_block(block: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        env={**os.environ, "D": str(directory)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def url(directory: Path, second: str = "m0-b.img") -> str:
    d = directory
    return f"mirror://m0?bitmap={d}/m0.bitmap&leg0={d}/m0-a.img&leg1={d}/{second}"


def test_replacing_a_failed_leg_as_documented(tmp_path: Path) -> None:
    m = url(tmp_path)
    cli("create", m, "--pages", str(16 * MIB // PAGE))
    data = page(0x5A) * 8
    (tmp_path / "data").write_bytes(data)
    cli("write", m, "--slot", "100", "--count", "8", "--from", str(tmp_path / "data"))
    (tmp_path / "m0-b.img").unlink()  # the disk died
    done = run_block(procedure("Replacing a failed leg"), tmp_path)
    assert done.returncode == 0, done.stderr
    new, old = (tmp_path / "m0-c.img").read_bytes(), (tmp_path / "m0-a.img").read_bytes()
    assert new == old
    assert new[100 * PAGE : 108 * PAGE] == data
    assert Bitmap.decode((tmp_path / "m0.bitmap").read_bytes()).count_dirty() == 0


def test_growing_the_legs_as_documented(tmp_path: Path) -> None:
    m = url(tmp_path)
    cli("create", m, "--pages", str(16 * MIB // PAGE))
    (tmp_path / "data").write_bytes(page(0x77))
    cli("write", m, "--slot", "7", "--from", str(tmp_path / "data"))
    done = run_block(procedure("Growing the legs"), tmp_path)
    assert done.returncode == 0, done.stderr
    for leg in ("m0-a.img", "m0-b.img"):
        assert (tmp_path / leg).stat().st_size == 32 * MIB
    assert f"{32 * MIB // PAGE}" in cli("info", m)
    assert (tmp_path / "m0-a.img").read_bytes() == (tmp_path / "m0-b.img").read_bytes()
    assert (tmp_path / "m0-a.img").read_bytes()[7 * PAGE : 8 * PAGE] == page(0x77)
