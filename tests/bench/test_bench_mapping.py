"""The mapping workloads (map-50, map-seq): on request only, measured, skipped with a reason."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from swapio.bench import registry
from swapio.mapping import _uffd
from swapio.plugins import PluginHost
from tests.bench.conftest import SMALL, builtin_only, doc_of, invoke


def _results(doc: dict[str, Any], workload: str) -> dict[str, dict[str, Any]]:
    return {r["target"]: r for r in doc["results"] if r["workload"] == workload}


def test_the_mapping_workloads_are_not_in_the_default_run() -> None:
    assert "map-50" not in registry.CORE_WORKLOADS
    assert "map-seq" not in registry.CORE_WORKLOADS
    assert registry.ON_REQUEST_WORKLOADS == ("map-50", "map-seq")


def test_map_50_reports_faults_per_second_on_the_memory_backend(tmp_path: Path) -> None:
    host = builtin_only("memory")
    doc = doc_of(invoke(host, "--json", "-w", "map-50", "--dir", str(tmp_path), *SMALL))
    assert doc["failed"] == [], doc["failed"]
    extra = _results(doc, "map-50")["memory"]
    assert extra["faults"] > 0
    assert extra["faults_per_s"] > 0
    assert extra["resident_pages"] == 128  # half of --pages 256


def test_map_seq_is_measured_beside_numpy_memmap_of_the_same_file(tmp_path: Path) -> None:
    host = builtin_only("file")
    doc = doc_of(
        invoke(host, "--json", "-b", "file", "-w", "map-seq", "--dir", str(tmp_path), *SMALL)
    )
    assert doc["failed"] == [], doc["failed"]
    extra = _results(doc, "map-seq")["file"]
    assert extra["memmap_mib_s"] > 0
    assert extra["memmap_ratio"] > 0
    assert extra["readahead_pages"] > 0  # the scan was read in windows ahead of the faults
    assert list(tmp_path.iterdir()) == []  # the sibling file is gone


def test_an_area_the_bench_cannot_place_beside_is_skipped_with_the_reason(tmp_path: Path) -> None:
    host = PluginHost()
    doc = doc_of(
        invoke(host, "--json", "-b", "flashlog", "-w", "map-50", "--dir", str(tmp_path), *SMALL)
    )
    skipped = [s for s in doc["skipped"] if s["workload"] == "map-50"]
    assert skipped, doc
    assert "names no area beside it for the mapping (BenchTarget.mapped)" in skipped[0]["reason"]


def test_asked_for_mapping_workloads_only_a_target_that_cannot_run_them_starts_nothing(
    tmp_path: Path,
) -> None:
    host = PluginHost()
    doc = doc_of(
        invoke(host, "--json", "-b", "http", "-w", "map-50", "--dir", str(tmp_path), *SMALL)
    )
    assert doc["started"] == []  # no `swapio serve` started for a workload it cannot run
    (skip,) = doc["skipped"]
    assert "BenchTarget.mapped" in skip["reason"]


def test_map_seq_on_a_memory_area_is_skipped_for_want_of_a_file(tmp_path: Path) -> None:
    host = builtin_only("memory")
    doc = doc_of(invoke(host, "--json", "-w", "map-seq", "--dir", str(tmp_path), *SMALL))
    assert doc["failed"] == []
    (skip,) = [s for s in doc["skipped"] if s["workload"] == "map-seq"]
    assert "numpy.memmap of the same file" in skip["reason"]


def test_without_userfaultfd_the_workloads_are_skipped_naming_the_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a kernel with vm.unprivileged_userfaultfd=0 and no /dev/userfaultfd access says
    monkeypatch.setattr(_uffd, "_syscall_userfaultfd", lambda _flags: -errno.EPERM)
    monkeypatch.setattr(_uffd, "_from_device", lambda _flags: -errno.EACCES)
    host = builtin_only("memory")
    doc = doc_of(invoke(host, "--json", "-w", "map-50", "--dir", str(tmp_path), *SMALL))
    assert doc["failed"] == []
    (skip,) = [s for s in doc["skipped"] if s["workload"] == "map-50"]
    assert "vm.unprivileged_userfaultfd" in skip["reason"]
