"""A third-party plugin joins ``swapio bench`` through the ``swapio_bench`` hook alone."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bench.conftest import SMALL, builtin_only, doc_of, invoke

EXAMPLE_SRC = Path(__file__).resolve().parents[2] / "examples" / "plugin-example" / "src"


@pytest.fixture
def zmem(monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.delitem(sys.modules, "swapio_zmem", raising=False)
    import swapio_zmem

    return swapio_zmem


def test_the_example_plugin_appears_in_the_default_run(zmem: object) -> None:
    host = builtin_only("memory")
    host.register(zmem, "zmem")
    # No -b: the default selection is every contributed target.
    doc = doc_of(invoke(host, "--json", "-w", "seq-out,rand-in", *SMALL))
    by = {(r["target"], r["workload"]): r for r in doc["results"]}
    assert ("zmem", "seq-out") in by
    assert ("zmem", "rand-in") in by
    assert by["zmem", "seq-out"]["durability"] == "volatile"
    assert by["zmem", "seq-out"]["kind"] == "backend"
    assert doc["failed"] == []
    assert zmem._stores == {}  # type: ignore[attr-defined]  # its placement cleaned up


def test_without_the_hook_a_backend_is_left_out_with_a_hint(zmem: object) -> None:
    host = builtin_only("memory")
    host.register(zmem, "zmem")
    host.unregister("zmem")
    plain = type(sys)("zmem_plain")
    for name in ("swapio_backend", "swapfile", "swap_out", "swap_in", "swap_discard"):
        setattr(plain, name, getattr(zmem, name))
    host.register(plain, "zmem")
    doc = doc_of(invoke(host, "--json", "-w", "seq-out", *SMALL))
    assert {r["target"] for r in doc["results"]} == {"memory"}
    reason = "its plugin contributes no bench target: pass --url zmem=URL"
    assert {"target": "zmem", "workload": "*", "reason": reason} in doc["skipped"]


def test_a_backend_without_the_hook_runs_with_url(zmem: object) -> None:
    host = builtin_only("memory")
    plain = type(sys)("zmem_plain")
    for name in ("swapio_backend", "swapfile", "swap_out", "swap_in", "swap_discard"):
        setattr(plain, name, getattr(zmem, name))
    host.register(plain, "zmem")
    doc = doc_of(
        invoke(host, "--json", "-b", "zmem", "--url", "zmem=zmem://given", "-w", "seq-out", *SMALL)
    )
    assert [(r["target"], r["durability"]) for r in doc["results"]] == [("zmem", "volatile")]
