"""examples/pager_dict.py: a dict far larger than the resident budget, paged to a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pager_dict.py"


def test_pager_dict_example_reads_back_every_sampled_record(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'dict.swap'}"
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--items", "5000", "--resident", "16", "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "5000 records in" in result.stdout
    assert "random reads all correct" in result.stdout
    writebacks = int(result.stdout.split("writebacks ")[1].split(",")[0])
    assert writebacks > 16  # the data did not fit: pages really went to the area
