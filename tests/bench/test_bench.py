"""``swapio bench``: selection errors, the JSON document, the table, the plot, the peers."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from swapio.bench.cli import bench
from swapio.bench.results import SCHEMA_VERSION, Kind, Latency, Result, percentile
from swapio.bench.targets import AiofilesTarget, RawFileTarget
from swapio.bench.workloads import BenchConfig, rand_in, rand_out, seq_in, seq_out
from swapio.cli import build_cli
from swapio.plugins import PluginHost

SMALL = ["--pages", "256", "--ops", "128", "--qd", "4", "--seconds", "0.5"]


@pytest.fixture
def cli() -> click.Group:
    group = build_cli(PluginHost())
    if "bench" not in group.commands:
        group.add_command(bench)
    return group


def run(cli: click.Group, *args: str) -> Any:
    return CliRunner().invoke(cli, ["bench", *args])


def test_unknown_backend_lists_the_valid_names(cli: click.Group) -> None:
    result = run(cli, "--backend", "tape")
    assert result.exit_code == 2
    assert "unknown backend 'tape'" in result.output
    assert "valid backends:" in result.output
    for name in ("file", "http", "memory"):
        assert name in result.output
    assert "Traceback" not in result.output


def test_unknown_workload_lists_the_valid_names(cli: click.Group) -> None:
    result = run(cli, "--workload", "seq-sideways")
    assert result.exit_code == 2
    assert "unknown workload 'seq-sideways'" in result.output
    assert "seq-out, seq-in, rand-out, rand-in, pager-50" in result.output


def test_unknown_peer_lists_the_valid_names(cli: click.Group) -> None:
    result = run(cli, "--peer", "dd")
    assert result.exit_code == 2
    assert "valid peers: raw-pwritev, aiofiles-naive" in result.output


def test_bad_url_option_is_a_usage_error(cli: click.Group) -> None:
    result = run(cli, "--url", "memory")
    assert result.exit_code == 2
    assert "--url expects BACKEND=URL" in result.output


def test_nfs_backend_without_server_is_a_usage_error(
    cli: click.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWAPIO_BENCH_NFS", raising=False)
    if "nfs" not in [b.info.name for b in PluginHost().backends()]:
        pytest.skip("nfs backend not installed in this checkout")
    result = run(cli, "--backend", "nfs")
    assert result.exit_code == 2
    assert "--nfs URL" in result.output


def test_json_document_has_the_documented_keys(cli: click.Group) -> None:
    result = run(cli, "--json", "-b", "memory,file", "-w", "seq-out,rand-in", *SMALL)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["config"]["qd"] == 4
    pairs = {(r["target"], r["workload"]) for r in doc["results"]}
    expected_targets = {"memory", "file", "raw-pwritev", "aiofiles-naive", "aiohttp-floor"}
    assert pairs == {(t, w) for t in expected_targets for w in ("seq-out", "rand-in")}
    for r in doc["results"]:
        assert {
            "target",
            "kind",
            "workload",
            "page_size",
            "pages",
            "seconds",
            "pages_per_s",
            "bw_bytes",
            "lat_ns",
        } <= set(r)
        peers = {"raw-pwritev", "aiofiles-naive", "aiohttp-floor"}
        assert r["kind"] == ("peer" if r["target"] in peers else "backend")
        assert set(r["lat_ns"]) == {"p50", "p99", "max"}
        assert r["lat_ns"]["p50"] <= r["lat_ns"]["p99"] <= r["lat_ns"]["max"]
        assert r["pages"] > 0
        assert r["bw_bytes"] == pytest.approx(r["pages_per_s"] * r["page_size"], rel=0.01)
        if r["workload"] == "rand-in":
            assert r["qd"] == 4


def test_http_backend_runs_against_an_in_process_server(cli: click.Group) -> None:
    result = run(cli, "--json", "--no-peers", "-b", "http,file", "-w", "seq-out,rand-in", *SMALL)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    http = [r for r in doc["results"] if r["target"] == "http"]
    assert {r["workload"] for r in http} == {"seq-out", "rand-in"}


def test_table_output_and_ratio_line(cli: click.Group) -> None:
    result = run(cli, "--no-peers", "-b", "http,file", "-w", "seq-out", *SMALL)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[1].split() == [
        "workload",
        "target",
        "kind",
        "pages",
        "pages/s",
        "MiB/s",
        "p50",
        "p99",
        "max",
    ]
    assert any(line.startswith("seq-out") and " http " in line for line in lines)
    assert "http/file seq-out throughput ratio:" in result.stdout


def test_plot_writes_a_png(cli: click.Group, tmp_path: Path) -> None:
    out = tmp_path / "bench.png"
    result = run(
        cli, "--no-peers", "-b", "memory", "-w", "seq-out,rand-in", "--plot", str(out), *SMALL
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_workload_layers_are_reported_as_skipped(cli: click.Group) -> None:
    result = run(cli, "--json", "--no-peers", "-b", "memory", "--no-reserve-demo", *SMALL)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    measured = {r["workload"] for r in doc["results"]}
    skipped = {s["workload"] for s in doc["skipped"] if s["target"] == "memory"}
    assert measured | skipped >= {
        "seq-out",
        "seq-in",
        "rand-out",
        "rand-in",
        "pager-50",
        "pressure",
    }
    assert all(s["reason"] for s in doc["skipped"])


def test_percentile_is_nearest_rank() -> None:
    ordered = list(range(1, 101))
    assert percentile(ordered, 50) == 50
    assert percentile(ordered, 99) == 99
    assert percentile([7], 99) == 7
    assert Latency.of([5, 1, 3]) == Latency(p50=3, p99=5, max=5)
    assert Latency.of([]) == Latency(0, 0, 0)


def test_result_rates_follow_pages_and_seconds() -> None:
    result = Result("t", Kind.PEER, "seq-out", 4096, pages=1000, seconds=0.5, samples=(1, 2))
    doc = result.to_json()
    assert doc["pages_per_s"] == 2000.0
    assert doc["bw_bytes"] == 2000 * 4096


async def test_peers_move_the_data_they_claim(tmp_path: Path) -> None:
    cfg = BenchConfig(pages=128, batch=16, qd=4, ops=64, seconds=5)
    raw = RawFileTarget.create(tmp_path / "raw", cfg.pages, cfg.page_size)
    naive = await AiofilesTarget.create(tmp_path / "naive", cfg.pages, cfg.page_size, cfg.qd)
    for target, path in ((raw, tmp_path / "raw"), (naive, tmp_path / "naive")):
        out = await seq_out(target, cfg)
        assert out.pages == 128
        data = path.read_bytes()
        # seq-out writes the same batch of random pages again and again.
        assert data[: 16 * 4096] == data[16 * 4096 : 32 * 4096] != bytes(16 * 4096)
        assert (await seq_in(target, cfg)).pages == 128
        assert (await rand_out(target, cfg)).pages == 64
        assert (await rand_in(target, cfg)).pages == 64
        await target.close()


def test_pressure_reports_reserve_statistics(cli: click.Group) -> None:
    result = run(
        cli,
        "--json",
        "--no-peers",
        "-b",
        "memory,http",
        "-w",
        "pressure",
        "--no-reserve-demo",
        *SMALL,
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    by = {r["target"]: r for r in doc["results"]}
    assert set(by) == {"memory", "http", "reply-model"}
    for r in by.values():
        assert r["completed"] is True
        assert {"reserve_pages", "peak_reserve_used_pages", "reserve_dips"} <= set(r)
    # The http client draws its memalloc request buffers from the reserve it declared.
    assert by["http"]["reserve_pages"] >= 33
    assert by["http"]["reserve_dips"] > 0
    assert by["http"]["peak_reserve_used_pages"] <= by["http"]["reserve_pages"]
    assert "without_reserve_stalled" not in by["reply-model"]


@pytest.mark.slow
def test_pressure_model_stalls_without_the_reserve(cli: click.Group) -> None:
    # The scheduler's model: the reserve is what makes progress possible (~30 s teardown).
    result = run(cli, "--json", "--no-peers", "-b", "memory", "-w", "pressure", *SMALL)
    assert result.exit_code == 0, result.output
    by = {r["target"]: r for r in json.loads(result.stdout)["results"]}
    assert by["reply-model"]["completed"] is True
    assert by["reply-model"]["without_reserve_stalled"] is True


def test_pager_workloads_report_hits_and_faults(cli: click.Group) -> None:
    result = run(cli, "--json", "--no-peers", "-b", "memory", "-w", "pager-50,pager-100", *SMALL)
    assert result.exit_code == 0, result.output
    by = {r["workload"]: r for r in json.loads(result.stdout)["results"]}
    assert by["pager-100"]["major_faults"] == 0
    assert by["pager-100"]["hit_ratio"] == 1.0
    assert by["pager-50"]["major_faults"] > 0
    assert 0 < by["pager-50"]["hit_ratio"] < 1
    assert by["pager-50"]["resident_pages"] == by["pager-50"]["working_set"] // 2


def test_plot_without_matplotlib_is_a_clear_error_before_running(
    cli: click.Group, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    result = run(cli, "-b", "memory", "--plot", str(tmp_path / "x.png"), *SMALL)
    assert result.exit_code == 2
    assert "--plot needs matplotlib: pip install 'swapio[plot]'" in result.output
    assert "workload" not in result.output  # refused before the run, not after it


def test_repeat_reports_the_median_run(cli: click.Group) -> None:
    result = run(
        cli, "--json", "--no-peers", "-b", "memory", "-w", "seq-out", "--repeat", "3", *SMALL
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["config"]["repeat"] == 3
    (r,) = doc["results"]
    runs = r["runs_pages_per_s"]
    assert len(runs) == 3
    assert r["pages_per_s"] == sorted(runs)[1]


def test_bad_page_size_is_refused_before_running(cli: click.Group) -> None:
    result = run(cli, "--page-size", "1000", "--backend", "memory")
    assert result.exit_code == 2
    assert "power of two" in result.output


def test_unwritable_plot_path_is_refused_before_running(cli: click.Group) -> None:
    result = run(cli, "--backend", "memory", "--plot", "/nonexistent-dir/x.png")
    assert result.exit_code == 2
    assert "does not exist" in result.output
