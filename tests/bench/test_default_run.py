"""The default selection: every installed backend runs, and nothing it started is left."""

from __future__ import annotations

import subprocess
from pathlib import Path

from swapio.bench import registry
from swapio.plugins import PluginHost
from tests.bench.conftest import SMALL, doc_of, invoke


def _processes_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if text in line and "ps -eo" not in line]


def test_every_installed_backend_runs_and_nothing_is_left_behind(tmp_path: Path) -> None:
    host = PluginHost()
    found = registry.collect(host)
    doc = doc_of(invoke(host, "--json", "-w", "seq-out", "--dir", str(tmp_path), *SMALL))
    assert doc["failed"] == [], doc["failed"]
    assert doc["skipped"] == [], doc["skipped"]  # everything is installed on this machine
    measured = {r["target"] for r in doc["results"] if r["kind"] == "backend"}
    assert {"memory", "file", "file-durable", "nfs", "flashlog", "mirror", "http"} <= measured
    backends = {found.targets[name].backend for name in measured}
    assert backends == set(found.installed_backends)
    started = " ".join(doc["started"])
    assert "nfs-ganesha on 127.0.0.1:" in started
    assert "swapio serve on 127.0.0.1:" in started
    for pid in (int(p.split(")")[0]) for p in started.split("(pid ")[1:]):
        assert not Path(f"/proc/{pid}").exists()
    assert _processes_mentioning(str(tmp_path)) == []
    assert list(tmp_path.iterdir()) == []
