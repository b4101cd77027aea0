"""Loading the redis plugin does not import redis-py: only activating a redis area does."""

from __future__ import annotations

import subprocess
import sys


def imported_modules(*args: str) -> tuple[str, set[str]]:
    """The output of ``python -X importtime -m swapio ARGS`` and the modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "swapio", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, {
        line.rpartition("|")[2].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }


def test_swapio_backends_lists_redis_without_importing_redis_py() -> None:
    listing, modules = imported_modules("backends")
    assert "redis+cluster" in listing  # the plugin was loaded and asked for its backend
    assert sorted(m for m in modules if m == "redis" or m.startswith("redis.")) == []
