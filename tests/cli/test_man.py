"""Manual pages: one per verb, generated from the click commands, shipped in swapio/man/
identical to a fresh rendering, and rendered by man(1) without warnings."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from functools import cache
from importlib.resources import files
from pathlib import Path

import click
import pytest

from swapio.cli import build_cli, exitcodes, manpage
from swapio.plugins import PluginHost

SWAPIO = [sys.executable, "-m", "swapio"]
README = Path(__file__).parents[2] / "README.md"
SECTIONS = ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXAMPLES", "EXIT STATUS")
#: as in test_help.py: the owner has not written this verb's examples yet
EXAMPLES_PENDING: set[str] = set()


@cache
def cli() -> click.Group:
    return build_cli(PluginHost())


@cache
def generated() -> dict[str, str]:
    return manpage.pages(cli())


def shipped() -> dict[str, str]:
    folder = files("swapio.man")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".1")
    }


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWAPIO, *args], capture_output=True, text=True, timeout=60, check=False)


def render(source: str) -> tuple[str, str]:
    """(text, warnings) of a page as man(1) shows it; groff if man-db is missing."""
    env = {**os.environ, "MANWIDTH": "80", "MAN_DISABLE_SECCOMP": "1"}
    if shutil.which("man"):
        argv = ["man", "--warnings", "-l", "-"]
    else:
        assert shutil.which("groff"), "neither man nor groff is installed"
        argv = ["groff", "-man", "-Tutf8", "-ww"]
    proc = subprocess.run(
        argv, input=source, capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, proc.stderr


def test_every_verb_has_a_page() -> None:
    names = set(generated())
    assert {
        "swapio.1",
        "swapio-backends.1",
        "swapio-create.1",
        "swapio-info.1",
        "swapio-read.1",
        "swapio-write.1",
        "swapio-discard.1",
        "swapio-bench.1",
        "swapio-completion.1",
        "swapio-man.1",
        "swapio-serve.1",
        "swapio-flash.1",
        "swapio-flash-format.1",
        "swapio-flash-inspect.1",
        "swapio-flash-gc.1",
        "swapio-bitmap.1",
        "swapio-bitmap-create.1",
        "swapio-bitmap-examine.1",
        "swapio-bitmap-dirty.1",
        "swapio-bitmap-resync.1",
    } <= names


def test_shipped_pages_are_the_generated_ones() -> None:
    """Change a verb's help and this fails until `make man` regenerates swapio/man/."""
    ship = shipped()
    assert sorted(ship) == sorted(generated()), "run `make man`"
    for name, text in generated().items():
        assert ship[name] == text, f"swapio/man/{name} is stale: run `make man`"


def test_a_changed_help_changes_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    info = cli().commands["info"]
    monkeypatch.setattr(info, "help", f"{info.help}\n\nA sentence added later.")
    page = manpage.pages(cli())["swapio-info.1"]
    assert page != shipped()["swapio-info.1"]
    assert "A sentence added later." in page


@pytest.mark.parametrize("name", sorted(generated()))
def test_each_page_renders_without_warnings_and_has_every_section(name: str) -> None:
    text, warnings = render(generated()[name])
    assert warnings == ""
    headings = [line for line in text.splitlines() if re.fullmatch(r"[A-Z][A-Z ]+", line)]
    expected = [s for s in SECTIONS if not (s == "EXAMPLES" and name in EXAMPLES_PENDING)]
    assert [h for h in headings if h in SECTIONS] == expected


def test_a_page_shows_the_verbs_options_examples_and_exit_codes() -> None:
    text, _ = render(generated()["swapio-bitmap-resync.1"])
    assert "swapio bitmap resync [OPTIONS] BITMAP" in text
    assert "--target TEXT" in text
    assert "repeat it for several" in text
    assert "swapio bitmap resync m0.bitmap --source a.img --target b.img --target c.img" in text
    assert "memory pressure: an allocation timed out" in text
    assert "swapio-bitmap(1)" in text


def test_a_broken_page_is_reported_by_the_renderer() -> None:
    _, warnings = render('.TH "X" "1"\n.SH NAME\nx \\- y\n.XY not a macro\n')
    assert "XY" in warnings


def test_exit_status_is_the_readme_table() -> None:
    section = README.read_text(encoding="utf-8").split("### Exit codes", 1)[1]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section.split("\n\n###", 1)[0], re.M)
    assert rows == [(str(code), meaning) for code, meaning in exitcodes.TABLE]


def test_swapio_man_prints_the_page_of_a_verb() -> None:
    proc = run("man", "bitmap", "resync")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == generated()["swapio-bitmap-resync.1"]


def test_swapio_man_of_an_unknown_verb_is_a_one_line_error() -> None:
    proc = run("man", "nosuch")
    assert proc.returncode == 2
    assert proc.stderr == "swapio: error: no manual page for 'swapio nosuch': no such verb\n"


def test_swapio_man_install_writes_pages_man_finds(tmp_path: Path) -> None:
    proc = run("man", "--install", str(tmp_path / "man1"))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "man1").iterdir()) == sorted(generated())
    if shutil.which("man"):
        shown = subprocess.run(
            ["man", "-M", str(tmp_path), "swapio-flash-format"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"},
        )
        assert shown.returncode == 0, shown.stderr
        assert "mark erase block N bad; repeat for several" in shown.stdout


def test_help_imports_neither_the_man_nor_the_completion_machinery() -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "swapio", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "swapio.cli.group" in imported  # the probe sees swapio's modules
    assert "swapio.cli.manpage" not in imported
    assert "swapio.cli.completion" not in imported
    assert "man" in proc.stdout
    assert "completion" in proc.stdout
