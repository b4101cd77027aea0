"""``swapio_file.plugin.inline_writer``: the first step of the file backend's ``swap_out``,
public for stacked areas (the mirror's legs) — given for an active file area only."""

from __future__ import annotations

from pathlib import Path

from swapio_file.plugin import inline_writer

from swapio import CreateRequest, PluginHost
from swapio.testing import page_pattern

PAGE = 4096


async def test_an_active_file_area_has_an_inline_writer_that_writes_its_slots(
    tmp_path: Path,
) -> None:
    area = await PluginHost().activate(f"file://{tmp_path}/s", create=CreateRequest(pages=8))
    write = inline_writer(area)
    assert write is not None
    data = page_pattern(3, 0, PAGE)
    area.begin_request()
    try:
        done = write(3 * PAGE, [data])  # the owner thread is idle: run on the loop
    finally:
        area.end_request()
    assert done
    assert (tmp_path / "s").read_bytes()[3 * PAGE : 4 * PAGE] == data
    await area.deactivate()
    assert inline_writer(area) is None  # released: nothing to write through


async def test_an_area_of_another_plugin_has_no_inline_writer() -> None:
    area = await PluginHost().activate("memory://inline-writer", create=CreateRequest(pages=4))
    assert inline_writer(area) is None
    await area.deactivate()
