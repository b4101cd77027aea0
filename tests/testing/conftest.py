"""Run small suites that use the conformance kit, each in its own pytest subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KitRun:
    returncode: int
    output: str


def start_suite(
    directory: Path, files: dict[str, str], plugins: tuple[str, ...] = ("asyncio",)
) -> subprocess.Popen[str]:
    """Write ``files`` into ``directory`` and start pytest there, in strict asyncio mode, with
    only ``plugins`` and swapio's pytest plugin loaded (as a fresh ``swapio[testing]`` has)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (directory / name).write_text(text)
    args = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"]
    for plugin in (*plugins, "swapio.testing.pytest_plugin"):
        args += ["-p", plugin]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": str(directory)}
    return subprocess.Popen(
        args,
        cwd=directory,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> KitRun:
    out, _ = proc.communicate(timeout=600)
    return KitRun(proc.returncode, out)
