"""The example third-party plugin installs as its own distribution and is discovered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLE


@pytest.fixture(scope="module")
def installed(zmem_site: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(zmem_site)}


def test_installed_example_is_listed_by_swapio_backends(installed: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "swapio", "backends", "--json"],
        capture_output=True,
        env=installed,
        timeout=60,
        check=True,
    )
    names = {b["name"]: b for b in json.loads(proc.stdout)["backends"]}
    assert names["zmem"]["schemes"] == ["zmem"]
    assert names["zmem"]["version"] == "0.1.0"


def test_example_passes_the_conformance_kit(installed: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        capture_output=True,
        env=installed,
        timeout=300,
        check=False,
        cwd=EXAMPLE,
    )
    assert proc.returncode == 0, proc.stdout.decode()[-3000:]
    assert b"passed" in proc.stdout


def test_example_is_not_found_without_install() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "swapio", "backends", "--json"],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert "zmem" not in {b["name"] for b in json.loads(proc.stdout)["backends"]}
