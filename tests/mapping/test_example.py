"""examples/numpy_out_of_core.py on the suite's nfs-ganesha: the paged array matches."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from swapio_nfs.ganesha import GaneshaServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "numpy_out_of_core.py"


def test_the_example_verifies_a_4x_array_on_nfs(ganesha: GaneshaServer) -> None:
    url = ganesha.url(f"ooc-{uuid.uuid4().hex[:12]}")
    args = [sys.executable, str(EXAMPLE), "--url", url, "--resident-mib", "1"]
    proc = subprocess.run(
        [*args, "--updates", "2000"], check=False, capture_output=True, text=True, timeout=240
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "arrays equal: True" in proc.stdout


def test_the_example_refuses_bad_arguments_in_one_line() -> None:
    args = [sys.executable, str(EXAMPLE), "--resident-mib", "0"]
    proc = subprocess.run(args, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
