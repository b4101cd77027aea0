"""``swapio[testing]`` brings what the conformance kit needs (pytest, pytest-asyncio), no more."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin-example"


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower()


def test_testing_extra_is_pytest_and_pytest_asyncio_only() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert sorted(_name(r) for r in extras["testing"]) == ["pytest", "pytest-asyncio"]


@pytest.mark.slow
def test_a_fresh_venv_with_the_extra_runs_the_kit(tmp_path: Path) -> None:
    """``pip install 'swapio[testing]'`` + the example plugin in an empty venv: the kit passes."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path
        )

    installed = run(*pip, f"{ROOT}[testing]")
    assert installed.returncode == 0, installed.stderr[-3000:]
    example = run(*pip, "--no-deps", str(EXAMPLE))
    assert example.returncode == 0, example.stderr[-3000:]
    listed = run(str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze")
    names = {line.split("==")[0].lower() for line in listed.stdout.split()}
    assert {"pytest", "pytest-asyncio", "swapio", "swapio-zmem"} <= names
    assert not names & {"mypy", "ruff", "hypothesis", "pytest-aiohttp"}
    kit = run(
        str(venv / "bin" / "python"),
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        str(EXAMPLE / "pyproject.toml"),
        str(EXAMPLE / "tests"),
    )
    assert kit.returncode == 0, kit.stdout[-3000:]
    assert "28 passed" in kit.stdout
