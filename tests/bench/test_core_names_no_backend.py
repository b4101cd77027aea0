"""The core knows no backend: everything the bench measures comes through ``swapio_bench``."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "swapio"
BENCH = CORE / "bench"
BUILTIN_PACKAGES = sorted(
    p.name for p in (ROOT / "plugins").iterdir() if p.name.startswith("swapio_")
)
#: Backend names, URL schemes, peers and servers of the built-in plugins, as words.
BUILTIN_NAMES = (
    "nfs", "flashlog", "mirror", "mdraid", "http", "https", "raw-pwritev", "aiofiles",
    "aiohttp", "nfs-cp", "pynfsclient", "ganesha", "rpcbind", "copy_file_range", "resync",
)  # fmt: skip
#: Names that are also plain English ("memory pressure"): only as a literal or a URL scheme.
GENERIC_NAMES = ("memory", "file", "file-durable", "cp", "serve")


def _core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def _code_tokens(path: Path) -> list[tokenize.TokenInfo]:
    """Names and string literals of ``path``, without comments and docstrings."""
    source = path.read_text()
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    out = []
    previous = tokenize.NEWLINE
    for tok in tokens:
        is_docstring = tok.type == tokenize.STRING and previous in (
            tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.NL,
        )  # fmt: skip
        if tok.type in (tokenize.NAME, tokenize.STRING) and not is_docstring:
            out.append(tok)
        if tok.type not in (tokenize.COMMENT, tokenize.NL):
            previous = tok.type
    return out


def test_the_builtin_plugin_packages_are_found() -> None:
    assert "swapio_nfs" in BUILTIN_PACKAGES
    assert len(BUILTIN_PACKAGES) >= 6


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_core_module_names_a_builtin_plugin_package(path: Path) -> None:
    text = path.read_text()
    for package in BUILTIN_PACKAGES:
        assert package not in text, f"{path.relative_to(ROOT)} names {package}"


@pytest.mark.parametrize("path", sorted(BENCH.rglob("*.py")), ids=lambda p: p.name)
def test_no_bench_module_names_a_builtin_backend_in_code(path: Path) -> None:
    words = re.compile(
        r"(?<![A-Za-z0-9_])(" + "|".join(re.escape(n) for n in BUILTIN_NAMES) + r")(?![A-Za-z0-9_])"
    )
    generic = re.compile(r"^[rbfu]*['\"](" + "|".join(GENERIC_NAMES) + r")(['\"]|://)")
    found = [
        f"line {tok.start[0]}: {tok.string}"
        for tok in _code_tokens(path)
        if (
            tok.type == tokenize.STRING
            and (words.search(tok.string.lower()) or generic.search(tok.string.lower()))
        )
        or (tok.type == tokenize.NAME and tok.string.lower() in BUILTIN_NAMES)
    ]
    assert not found, f"{path.name} names built-in backends: {found}"


def test_the_check_catches_a_named_backend(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('"""Docstrings may say nfs."""\n\nURL = "nfs://host/x"\n')
    strings = [t.string for t in _code_tokens(probe) if t.type == tokenize.STRING]
    assert strings == ['"nfs://host/x"']


def test_importing_the_bench_command_loads_no_plugin() -> None:
    import subprocess
    import sys

    code = (
        "import sys, swapio.bench.cli\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('swapio_'))\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
