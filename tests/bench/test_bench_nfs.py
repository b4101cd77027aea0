"""``swapio bench --nfs``: the nfs backend and its peers against a real nfs-ganesha."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from swapio.bench import nfs_peers
from swapio.bench.cli import bench
from swapio.cli import build_cli
from swapio.plugins import PluginHost
from tests.nfs.conftest import GaneshaServer


def test_nfs_backend_and_peers_run_in_one_bench(ganesha: GaneshaServer) -> None:
    cli: click.Group = build_cli(PluginHost())
    if "bench" not in cli.commands:
        cli.add_command(bench)
    export_url = (
        f"nfs://{ganesha.host}{ganesha.export}?nfsport={ganesha.nfsport}"
        f"&mountport={ganesha.mountport}"
    )
    before = set(ganesha.export.iterdir())
    args = ["bench", "--json", "-b", "nfs", "-w", "seq-out,seq-in,rand-in", "--nfs", export_url]
    args += ["--peer", "nfs-cp,pynfsclient", "--pages", "256", "--ops", "64", "--qd", "4"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    pairs = {(r["target"], r["workload"]) for r in doc["results"]}
    assert {("nfs", "seq-out"), ("nfs", "seq-in"), ("nfs", "rand-in")} <= pairs
    assert {("nfs-cp", "seq-out"), ("nfs-cp", "seq-in")} <= pairs
    assert {("pynfsclient", "seq-out"), ("pynfsclient", "rand-in")} <= pairs
    assert doc["skipped"] == []
    assert all(r["pages"] > 0 and r["seconds"] > 0 for r in doc["results"])
    # The run removed what it created on the export.
    assert set(ganesha.export.iterdir()) == before


def test_a_reachable_server_is_found_through_rpcbind(ganesha: GaneshaServer) -> None:
    # ganesha registers NFS v3 and MOUNT v3 with rpcbind when it starts; restart it so the
    # registration is ours even if another server on this machine registered since.
    ganesha.restart()
    url = nfs_peers.discover()
    assert url is not None
    export = nfs_peers.NfsExport.parse(url)
    assert export.host == "127.0.0.1"
    assert (export.nfsport, export.mountport) == (ganesha.nfsport, ganesha.mountport)
    assert export.path == str(ganesha.export)  # the writable one, not the read-only export
