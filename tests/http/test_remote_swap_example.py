"""examples/remote_swap.py runs end to end: server child, http area, pager, clean SIGTERM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "remote_swap.py"


def test_remote_swap_example_round_trips_and_stops_the_server() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--pages", "512", "--resident", "32"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "swapped back in: contents match" in result.stdout
    assert "page server stopped (exit status 0)" in result.stdout
    assert "shutting down: completing in-flight writes" in result.stderr
