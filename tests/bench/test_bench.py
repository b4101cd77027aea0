"""``swapio bench``: selection, the report, repeats, the JSON document, what a run leaves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from swapio.bench.hook import Durability
from swapio.bench.results import SCHEMA_VERSION, Kind, Latency, Result, percentile
from swapio.bench.workloads import BenchConfig, rand_in, rand_out, seq_in, seq_out
from swapio.plugins import PluginHost
from tests.bench.conftest import SMALL, builtin_only, doc_of, invoke, memory_target_plugin

# --- selection errors ------------------------------------------------------------------


def test_unknown_backend_lists_the_valid_names(host: PluginHost) -> None:
    result = invoke(host, "--backend", "tape")
    assert result.exit_code == 2
    assert "unknown backend 'tape'" in result.output
    for name in ("file", "file-durable", "http", "memory", "nfs", "mirror", "flashlog"):
        assert name in result.output
    assert "Traceback" not in result.output


def test_unknown_workload_lists_core_and_plugin_workloads(host: PluginHost) -> None:
    result = invoke(host, "--workload", "seq-sideways")
    assert result.exit_code == 2
    assert "unknown workload 'seq-sideways'" in result.output
    assert "seq-out, seq-in, rand-out, rand-in, pager-50" in result.output
    assert "resync-1pct" in result.output  # contributed by the mirror's plugin


def test_unknown_peer_lists_the_valid_names(host: PluginHost) -> None:
    result = invoke(host, "--peer", "dd")
    assert result.exit_code == 2
    assert "raw-pwritev" in result.output
    assert "nfs-cp" in result.output


def test_bad_url_option_is_a_usage_error(host: PluginHost) -> None:
    result = invoke(host, "--url", "memory")
    assert result.exit_code == 2
    assert "--url expects BACKEND=URL" in result.output


def test_a_url_of_another_backends_scheme_is_a_usage_error(host: PluginHost) -> None:
    """(It used to run, fail, then try to remove the file backend's area at path '.'.)"""
    result = invoke(host, "--no-peers", "-b", "file", "--url", "file=memory://x")
    assert result.exit_code == 2
    assert "that is a memory URL, not a file one" in result.output


def test_a_url_of_an_unknown_scheme_is_a_usage_error(host: PluginHost) -> None:
    result = invoke(host, "--no-peers", "-b", "file", "--url", "file=nosuch://x")
    assert result.exit_code == 2
    assert "no backend serves URL scheme 'nosuch'" in result.output


def test_a_peer_of_an_unselected_backend_is_a_usage_error(host: PluginHost) -> None:
    result = invoke(host, "-b", "memory", "--peer", "nfs-cp", *SMALL)
    assert result.exit_code == 2
    assert "add -b nfs" in result.output


def test_bad_page_size_is_refused_before_running(host: PluginHost) -> None:
    result = invoke(host, "--page-size", "1000", "--backend", "memory")
    assert result.exit_code == 2
    assert "power of two" in result.output


def test_target_options_appear_in_the_help(host: PluginHost) -> None:
    result = invoke(host, "--help")
    assert result.exit_code == 0
    assert "--nfs URL" in result.output  # declared by the NFS plugin's bench target
    assert "SWAPIO_BENCH_NFS" in result.output


# --- what runs -------------------------------------------------------------------------


def test_a_backend_name_selects_only_that_target(host: PluginHost) -> None:
    doc = doc_of(invoke(host, "--json", "-b", "file", "--no-peers", "-w", "seq-out", *SMALL))
    assert {r["target"] for r in doc["results"]} == {"file"}
    doc = doc_of(invoke(host, "--json", "-b", "file-durable", "-w", "seq-out", *SMALL))
    assert {(r["target"], r["durability"]) for r in doc["results"]} == {("file-durable", "durable")}


def test_peers_run_only_the_requested_workloads(host: PluginHost) -> None:
    doc = doc_of(invoke(host, "--json", "-b", "file", "-w", "rand-in", *SMALL))
    assert {(r["target"], r["workload"]) for r in doc["results"]} == {
        ("file", "rand-in"),
        ("raw-pwritev", "rand-in"),
        ("aiofiles-naive", "rand-in"),
    }
    kinds = {r["target"]: r["kind"] for r in doc["results"]}
    assert kinds == {"file": "backend", "raw-pwritev": "peer", "aiofiles-naive": "peer"}


def test_resync_workload_is_accepted_alone_and_ranked_by_time(host: PluginHost) -> None:
    result = invoke(host, "-w", "resync-1pct", *SMALL)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ranked by time" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("resync-1pct")]
    targets = [row[1] for row in rows]
    assert set(targets) == {"mirror-resync", "copy_file_range", "cp", "cp+fdatasync"}
    seconds = [float(next(c for c in row if c.replace(".", "").isdigit())) for row in rows]
    assert seconds == sorted(seconds)
    assert not any(line.startswith(("seq-out", "rand-in")) for line in out.splitlines())


def test_resync_reports_seconds_and_bytes_copied(host: PluginHost) -> None:
    doc = doc_of(invoke(host, "--json", "-w", "resync-1pct", *SMALL))
    by = {r["target"]: r for r in doc["results"]}
    assert by["cp"]["bytes_copied"] == 64 << 20  # the whole leg
    # 1 % of the 1024 chunks of 64 KiB, rounded: 10 chunks, for swapio and copy_file_range.
    assert by["mirror-resync"]["bytes_copied"] == 10 * 65536
    assert by["copy_file_range"]["bytes_copied"] == 10 * 65536
    assert by["mirror-resync"]["durability"] == "durable"
    assert by["cp"]["durability"] == "page cache"
    assert all(r["seconds"] > 0 for r in doc["results"])


def test_http_runs_against_swapio_serve_in_its_own_process(host: PluginHost) -> None:
    doc = doc_of(invoke(host, "--json", "-b", "http", "--no-peers", "-w", "seq-out", *SMALL))
    (started,) = doc["started"]
    assert started.startswith("swapio serve on 127.0.0.1:")
    pid = int(started.rsplit("pid ", 1)[1].rstrip(")"))
    assert not Path(f"/proc/{pid}").exists()  # stopped after the run
    assert [r["target"] for r in doc["results"]] == ["http"]
    assert doc["results"][0]["durability"] == "remote"


def test_pager_workloads_report_hits_and_faults(host: PluginHost) -> None:
    result = invoke(
        host, "--json", "--no-peers", "-b", "memory", "-w", "pager-50,pager-100", *SMALL
    )
    by = {r["workload"]: r for r in doc_of(result)["results"]}
    assert by["pager-100"]["major_faults"] == 0
    assert by["pager-100"]["hit_ratio"] == 1.0
    assert by["pager-50"]["major_faults"] > 0
    assert 0 < by["pager-50"]["hit_ratio"] < 1


def test_pressure_reports_reserve_statistics(host: PluginHost) -> None:
    args = ["--json", "--no-peers", "-b", "memory,http", "-w", "pressure", "--no-reserve-demo"]
    doc = doc_of(invoke(host, *args, *SMALL))
    by = {r["target"]: r for r in doc["results"]}
    assert set(by) == {"memory", "http", "reply-model"}
    assert by["reply-model"]["kind"] == "model"
    for r in by.values():
        assert r["completed"] is True
    # The http client draws its memalloc request buffers from the reserve it declared.
    assert by["http"]["reserve_dips"] > 0
    assert by["http"]["peak_reserve_used_pages"] <= by["http"]["reserve_pages"]


@pytest.mark.slow
def test_pressure_model_stalls_without_the_reserve(host: PluginHost) -> None:
    doc = doc_of(invoke(host, "--json", "--no-peers", "-b", "memory", "-w", "pressure", *SMALL))
    by = {r["target"]: r for r in doc["results"]}
    assert by["reply-model"]["completed"] is True
    assert by["reply-model"]["without_reserve_stalled"] is True


# --- --url, --dir, skipping and failing ----------------------------------------------------


def test_url_area_is_removed_after_the_run_so_it_can_run_again(
    host: PluginHost, tmp_path: Path
) -> None:
    area = tmp_path / "given.swap"
    args = ["--json", "--no-peers", "-b", "file", "--url", f"file=file://{area}", "-w", "seq-out"]
    for _ in range(2):
        doc = doc_of(invoke(host, *args, *SMALL))
        assert doc["failed"] == []
        assert not area.exists()
        assert [r["target"] for r in doc["results"]] == ["file"]


def test_pressure_runs_on_url_targets(host: PluginHost) -> None:
    args = ["--json", "--no-peers", "-b", "memory", "--url", "memory=memory://given-area"]
    doc = doc_of(invoke(host, *args, "-w", "pressure", "--no-reserve-demo", *SMALL))
    assert {r["target"] for r in doc["results"]} == {"memory", "reply-model"}
    assert doc["skipped"] == []


def test_targets_get_a_directory_under_dir_and_nothing_is_left(tmp_path: Path) -> None:
    seen: list = []
    host = builtin_only("memory")
    host.register(memory_target_plugin("probe", seen=seen), "probe")
    doc = doc_of(invoke(host, "--json", "--dir", str(tmp_path), "-w", "seq-out", *SMALL))
    assert {r["target"] for r in doc["results"]} == {"memory", "probe"}
    (site,) = seen
    assert site.directory.is_relative_to(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_target_whose_software_is_absent_is_skipped_with_the_hint() -> None:
    host = builtin_only("memory")
    plugin = memory_target_plugin(
        "tape", needs=("no-such-daemon-xyz",), hint="apt-get install tape"
    )
    host.register(plugin, "tape")
    result = invoke(host, "-w", "seq-out", *SMALL)
    assert result.exit_code == 0, result.output
    assert "skipped tape (seq-out): no-such-daemon-xyz not installed (apt-get install tape)" in (
        result.stdout
    )


def test_a_target_that_fails_to_start_fails_the_run() -> None:
    host = builtin_only("memory")
    host.register(memory_target_plugin("broken", fail=True), "broken")
    result = invoke(host, "-w", "seq-out", *SMALL)
    assert result.exit_code == 1
    assert "FAILED broken (seq-out): RuntimeError: the server would not start" in result.stdout
    assert " memory " in result.stdout  # the other figures are still printed


def test_a_durability_claim_the_area_does_not_make_is_not_reported() -> None:
    host = builtin_only("memory")
    host.register(memory_target_plugin("boast", durability=Durability.DURABLE), "boast")
    doc = doc_of(invoke(host, "--json", "-b", "boast", "-w", "seq-out", *SMALL))
    assert [r["durability"] for r in doc["results"]] == ["page cache"]
    assert any("boast: declared durable" in w for w in doc["warnings"])


def test_two_plugins_contributing_one_target_name_is_a_plugin_error() -> None:
    host = builtin_only("memory")
    host.register(memory_target_plugin("memory"), "impostor")
    result = invoke(host, "-w", "seq-out", *SMALL)
    assert result.exit_code == 4
    assert "bench target 'memory' is contributed by two plugins" in result.output


# --- repeats and warnings ----------------------------------------------------------------


def test_repeat_reports_the_median_run_and_the_spread(host: PluginHost) -> None:
    args = ["--json", "--no-peers", "-b", "memory", "-w", "seq-out"]
    doc = doc_of(invoke(host, *args, *SMALL, "--repeat", "3"))
    assert doc["config"]["repeat"] == 3
    (r,) = doc["results"]
    runs = r["runs_pages_per_s"]
    assert len(runs) == 3 == r["repeat"]
    assert r["pages_per_s"] == sorted(runs)[1]
    assert r["spread_pct"] == pytest.approx(
        100 * (max(runs) - min(runs)) / sorted(runs)[1], abs=0.2
    )


def test_the_default_is_three_runs() -> None:
    assert BenchConfig().repeat == 3


# --- pieces --------------------------------------------------------------------------


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


async def test_file_peers_move_the_data_they_claim(tmp_path: Path) -> None:
    from swapio_file.bench import PEERS

    from swapio.bench.hook import BenchSite

    cfg = BenchConfig(pages=128, batch=16, qd=4, ops=64, seconds=5)
    site = BenchSite(tmp_path, "t", cfg)
    for peer in PEERS:
        assert peer.open is not None
        async with peer.open(site, "") as target:
            out = await seq_out(target, cfg)
            assert out.pages == 128
            (path,) = [p for p in tmp_path.iterdir() if p.suffix == ".swap"]
            data = path.read_bytes()
            # seq-out writes the same batch of random pages again and again.
            assert data[: 16 * 4096] == data[16 * 4096 : 32 * 4096] != bytes(16 * 4096)
            assert (await seq_in(target, cfg)).pages == 128
            assert (await rand_out(target, cfg)).pages == 64
            assert (await rand_in(target, cfg)).pages == 64
        assert list(tmp_path.iterdir()) == []


def test_schema_version_is_unchanged() -> None:
    # New keys do not bump it; a key changing meaning would (docs/BENCHMARKS.md, JSON).
    assert SCHEMA_VERSION == 1


def test_plot_without_matplotlib_is_a_clear_error_before_running(
    host: PluginHost, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    result = invoke(host, "-b", "memory", "--plot", str(tmp_path / "x.png"), *SMALL)
    assert result.exit_code == 2
    assert "--plot needs matplotlib: pip install 'swapio[plot]'" in result.output
    assert "workload" not in result.output  # refused before the run, not after it


def test_unwritable_plot_path_is_refused_before_running(host: PluginHost) -> None:
    result = invoke(host, "--backend", "memory", "--plot", "/nonexistent-dir/x.png")
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_json_is_one_document(host: PluginHost) -> None:
    result = invoke(host, "--json", "-b", "memory", "--no-peers", "-w", "seq-out", *SMALL)
    assert json.loads(result.stdout)["schema_version"] == SCHEMA_VERSION


def test_the_help_lists_the_workloads_and_peers_the_plugins_contribute(host: PluginHost) -> None:
    result = invoke(host, "--help")
    text = " ".join(result.output.split())
    assert "pager-seq" in text
    assert "pressure, map-50, map-seq, resync-1pct (repeat or comma" in text
    assert "default: all but map-50, map-seq (on request)." in text
    assert "raw-pwritev" in text
    assert "nfs-cp" in text
