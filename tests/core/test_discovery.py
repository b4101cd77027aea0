"""swapio.discovery: plugin metadata read without importing plugins or importlib.metadata."""

from __future__ import annotations

import os.path
from importlib import metadata
from pathlib import Path

import pytest

from swapio.discovery import EntryPoint, discover, read_entry_points

GROUPS = ("swapio", "swapio.schemes", "swapio.commands", "console_scripts", "pytest11")


def _triples(eps: list[EntryPoint]) -> list[tuple[str, str, str]]:
    return sorted((ep.group, ep.name, ep.value) for ep in eps)


def test_reads_what_importlib_metadata_reads() -> None:
    reference = [
        EntryPoint(ep.name, ep.value, ep.group)
        for group in GROUPS
        for ep in metadata.entry_points(group=group)
    ]
    assert _triples(read_entry_points(GROUPS)) == _triples(reference)


def test_the_first_distribution_of_a_name_on_sys_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for root, value in (("a", "first_mod"), ("b", "second_mod")):
        dist = tmp_path / root / "Same_Name-1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "entry_points.txt").write_text(f"# comment\n[swapio]\nsame = {value}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    found = [ep for ep in read_entry_points(["swapio"]) if ep.name == "same"]
    assert [ep.value for ep in found] == ["first_mod"]


def test_an_entry_point_loads_its_module_or_attribute() -> None:
    assert EntryPoint("p", "os.path", "swapio").load() is os.path
    assert EntryPoint("p", "os.path:join", "swapio").load() is os.path.join


def test_builtin_plugins_declare_their_schemes_and_verbs() -> None:
    specs = discover()
    assert specs["file"].schemes == ("file",)
    assert specs["mdraid"].commands == ("bitmap",)
    assert specs["http"].declared


def test_blocked_plugins_are_not_discovered() -> None:
    assert "memory" not in discover(["memory"])
