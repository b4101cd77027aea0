"""``swapio bench`` and NFS: its own nfs-ganesha by default, ``--nfs URL`` to point elsewhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

from swapio_nfs.ganesha import GaneshaServer

from swapio.plugins import PluginHost
from tests.bench.conftest import SMALL, doc_of, invoke

NFS_WORKLOADS = "seq-out,seq-in,rand-in"


def _ganesha_pids_under(directory: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True)
    return [
        line
        for line in out.stdout.splitlines()
        if "ganesha.nfsd" in line and str(directory) in line
    ]


def test_default_run_starts_nfs_ganesha_on_loopback_and_stops_it(tmp_path: Path) -> None:
    host = PluginHost()
    args = ["--json", "-b", "nfs", "-w", NFS_WORKLOADS, "--dir", str(tmp_path), *SMALL]
    doc = doc_of(invoke(host, *args))
    assert doc["failed"] == [], doc["failed"]
    (started,) = doc["started"]
    assert started.startswith("nfs-ganesha on 127.0.0.1:")
    pairs = {(r["target"], r["workload"]) for r in doc["results"]}
    assert {("nfs", w) for w in NFS_WORKLOADS.split(",")} <= pairs
    assert {("nfs-cp", "seq-out"), ("nfs-cp", "seq-in")} <= pairs
    assert {("pynfsclient", "seq-out"), ("pynfsclient", "rand-in")} <= pairs
    assert {r["durability"] for r in doc["results"]} == {"remote"}
    assert _ganesha_pids_under(tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_peers_add_no_row_for_an_unrequested_workload(ganesha: GaneshaServer) -> None:
    root = f"nfs://{ganesha.host}{ganesha.export}?nfsport={ganesha.nfsport}&mountport={ganesha.mountport}"
    doc = doc_of(
        invoke(PluginHost(), "--json", "-b", "nfs", "-w", "seq-out", "--nfs", root, *SMALL)
    )
    pairs = {(r["target"], r["workload"]) for r in doc["results"]}
    assert pairs == {("nfs", "seq-out"), ("nfs-cp", "seq-out"), ("pynfsclient", "seq-out")}


def test_nfs_url_points_elsewhere_starts_nothing_and_cleans_up(ganesha: GaneshaServer) -> None:
    root = f"nfs://{ganesha.host}{ganesha.export}?nfsport={ganesha.nfsport}&mountport={ganesha.mountport}"
    before = set(ganesha.export.iterdir())
    args = ["--json", "-b", "nfs", "-w", NFS_WORKLOADS, "--nfs", root, "--repeat", "2"]
    doc = doc_of(invoke(PluginHost(), *args, *SMALL[:-2]))
    assert doc["failed"] == []
    assert doc["skipped"] == []
    assert doc["started"] == []
    assert all(r["pages"] > 0 and r["seconds"] > 0 for r in doc["results"])
    assert set(ganesha.export.iterdir()) == before  # the run removed what it created


def test_nfs_url_from_the_environment(ganesha: GaneshaServer, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    root = f"nfs://{ganesha.host}{ganesha.export}?nfsport={ganesha.nfsport}&mountport={ganesha.mountport}"
    monkeypatch.setenv("SWAPIO_BENCH_NFS", root)
    doc = doc_of(invoke(PluginHost(), "--json", "-b", "nfs", "--no-peers", "-w", "seq-out", *SMALL))
    assert doc["started"] == []
    assert [r["target"] for r in doc["results"]] == ["nfs"]


def test_an_nfs_url_area_is_removed_after_the_run(ganesha: GaneshaServer) -> None:
    url = ganesha.url("bench-given.swap")
    args = ["--json", "-b", "nfs", "--no-peers", "-w", "seq-out", "--url", f"nfs={url}"]
    for _ in range(2):  # a second run with the same URL finds nothing in the way
        doc = doc_of(invoke(PluginHost(), *args, *SMALL))
        assert doc["failed"] == []
        assert not [w for w in doc["warnings"] if "already exists" in w]
        assert [r["target"] for r in doc["results"]] == ["nfs"]
        assert not (ganesha.export / "bench-given.swap").exists()
