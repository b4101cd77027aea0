"""``swapio bench`` measures redis through the swapio_bench hook, beside both peers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from swapio_redis.local import LocalRedis

SMALL = ["--pages", "256", "--ops", "256", "--repeat", "1", "--seconds", "0.1"]


def _bench(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "swapio", "bench", "--json", *args, *SMALL],
        capture_output=True,
        timeout=300,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    doc: dict[str, object] = json.loads(proc.stdout)
    return doc


def test_bench_starts_a_server_measures_redis_and_its_peers_then_stops_it() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWAPIO_REDIS_")}
    doc = _bench("-b", "redis", "-w", "seq-out,rand-in", env=env)
    results = doc["results"]
    assert isinstance(results, list)
    pairs = {(r["target"], r["workload"]) for r in results}
    assert pairs == {
        ("redis", "seq-out"),
        ("redis", "rand-in"),
        ("redis-py-per-page", "seq-out"),
        ("redis-py-per-page", "rand-in"),
        ("redis-benchmark", "rand-in"),
    }
    started = doc["started"]
    assert isinstance(started, list)
    assert len(started) == 1
    found = re.search(r"pid (\d+)", str(started[0]))
    assert found is not None
    pid = int(found.group(1))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the server it started is gone


def test_bench_on_a_given_server_removes_its_area(
    redis_server: LocalRedis, redis_password: str
) -> None:
    before = redis_server.cli("DBSIZE").strip()
    doc = _bench(
        "-b", "redis", "--no-peers", "-w", "seq-out", "--redis", f"redis://{redis_server.address}"
    )
    assert doc["started"] == []
    assert redis_server.cli("DBSIZE").strip() == before  # nothing left behind
