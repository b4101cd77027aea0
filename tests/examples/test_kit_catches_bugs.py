"""The conformance kit catches the plugin bugs of the author trial (issue 14).

Each variant is the example plugin (examples/plugin-example) with one deliberate bug: the
installed distribution is copied, its module edited, and the example's own conformance suite
(the kit, nothing tuned) is run on it by pytest in a subprocess, in pytest-asyncio's strict
mode as a fresh plugin project would.  The kit must fail each variant, in the check that
covers the bug, and pass the unmodified plugin.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import EXAMPLE


@dataclass(frozen=True)
class Variant:
    """Replace each ``old`` (found exactly once) with ``new``; the kit must fail ``caught_by``."""

    edits: tuple[tuple[str, str], ...]
    caught_by: str  # a check that must fail
    only_at: str | None = None  # if set: every failing check ran at this page size
    says: str | None = None  # if set: the kit's output contains this


VARIANTS = {
    "off-by-one bounds": Variant(
        edits=(
            (
                "from swapio.errors import AreaExistsError, AreaNotFoundError, LocationError",
                "from swapio.errors import AreaExistsError, AreaNotFoundError, LocationError\n"
                "from swapio.errors import SlotRangeError",
            ),
            (
                "    def put(self, slot: int, pages: Sequence[PageBuffer]) -> None:\n",
                "    def put(self, slot: int, pages: Sequence[PageBuffer]) -> None:\n"
                "        if slot + len(pages) >= self.pages:  # off by one: > is right\n"
                "            raise SlotRangeError(f'slot {slot} is out of range')\n",
            ),
        ),
        caught_by="test_round_trip_single_pages",
    ),
    "short read": Variant(
        edits=(("for i, view in enumerate(views):", "for i, view in enumerate(views[:1]):"),),
        caught_by="test_merged_multi_page_requests",
    ),
    "ignored discard": Variant(
        edits=(("store.data.pop(s, None)", "store.data.get(s)  # forgets nothing"),),
        caught_by="test_discard_reads_zeros_and_spares_neighbours",
    ),
    "ignored page_size": Variant(
        edits=(
            (
                "ZStore(area.create.pages, area.create.page_size)",
                "ZStore(area.create.pages, 4096)",
            ),
        ),
        caught_by="test_create_reports_requested_geometry",
        only_at="page16384",
    ),
    "wrong count after reopen": Variant(
        edits=(
            (
                "return SwapInfo(pages=store.pages,",
                "return SwapInfo(pages=store.pages if area.create else len(store.data),",
            ),
        ),
        caught_by="test_data_survives_deactivate_and_reactivate",
        says="reports 3 pages",
    ),
    # The two checks issue 14 added, each with the bug it is there for:
    "no zero-fill into the caller's buffer": Variant(
        edits=(
            (
                "view[:] = zlib.decompress(blob) if blob is not None else bytes(self.page_size)",
                "if blob is not None:  # assumes the caller's buffer is zeroed\n"
                "                view[:] = zlib.decompress(blob)",
            ),
        ),
        caught_by="test_never_written_slots_read_zeros_into_dirty_buffers",
    ),
    "blocks the event loop": Variant(
        edits=(
            ("import asyncio\n", "import asyncio\nimport time\n"),
            (
                "    store: ZStore = area.private\n    for s in range(slot, slot + count):",
                "    store: ZStore = area.private\n    time.sleep(0.25)  # a blocking call\n"
                "    for s in range(slot, slot + count):",
            ),
        ),
        caught_by="test_discard_reads_zeros_and_spares_neighbours",
        says="swap_discard ran 0.2",
    ),
}


@dataclass(frozen=True)
class KitRun:
    returncode: int
    output: str

    @property
    def failed(self) -> list[str]:
        return re.findall(r"^FAILED \S+::(\w+\[\w+\])", self.output, re.MULTILINE)


def _edit(site: Path, variant: Variant) -> None:
    module = site / "swapio_zmem" / "__init__.py"
    source = module.read_text()
    for old, new in variant.edits:
        assert source.count(old) == 1, f"the example plugin changed: {old!r} not found once"
        source = source.replace(old, new)
    module.write_text(source)
    for cache in site.rglob("__pycache__"):
        shutil.rmtree(cache)


def _start_kit(site: Path) -> subprocess.Popen[str]:
    # only the plugins a fresh ``pip install 'swapio[testing]'`` brings: pytest-asyncio and
    # swapio's own (nothing else installed here is loaded)
    env = {**os.environ, "PYTHONPATH": str(site), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "asyncio",
            "-p",
            "swapio.testing.pytest_plugin",
            "-c",
            str(EXAMPLE / "pyproject.toml"),  # the plugin's own config: strict asyncio mode
            str(EXAMPLE / "tests"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=EXAMPLE,
    )


@pytest.fixture(scope="module")
def kit_runs(zmem_site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, KitRun]:
    """The kit run on the unmodified plugin (key ``""``) and on each variant, in parallel."""
    sites = {"": zmem_site}
    for name, variant in VARIANTS.items():
        site = tmp_path_factory.mktemp("variant")
        shutil.copytree(zmem_site, site, dirs_exist_ok=True)
        _edit(site, variant)
        sites[name] = site
    procs = {name: _start_kit(site) for name, site in sites.items()}
    runs = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        runs[name] = KitRun(proc.returncode, out)
    return runs


def test_unmodified_example_passes_every_check(kit_runs: dict[str, KitRun]) -> None:
    run = kit_runs[""]
    assert run.returncode == 0, run.output[-3000:]
    assert re.search(r"\b28 passed\b", run.output), run.output[-3000:]
    assert "skipped" not in run.output


@pytest.mark.parametrize("name", list(VARIANTS))
def test_kit_fails_the_broken_variant(kit_runs: dict[str, KitRun], name: str) -> None:
    run, variant = kit_runs[name], VARIANTS[name]
    assert run.returncode == 1, run.output[-3000:]
    assert any(f.startswith(variant.caught_by + "[") for f in run.failed), run.output[-3000:]
    if variant.only_at is not None:
        assert all(f.endswith(f"[{variant.only_at}]") for f in run.failed), run.failed
    if variant.says is not None:
        assert variant.says in run.output, run.output[-3000:]
