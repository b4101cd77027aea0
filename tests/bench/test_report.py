"""The report: the JSON document against the shipped schema, the summary, warnings, the plot."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from PIL import Image

from swapio.bench import plot, summary
from swapio.bench.cli import _reliability_warnings
from swapio.bench.hook import Durability
from swapio.bench.results import Kind, Result, schema
from swapio.bench.runner import Outcome
from swapio.plugins import PluginHost
from tests.bench.conftest import SMALL, doc_of, invoke

#: Every workload, every kind of row (backend, peer, model, plugin workload), both classes of
#: failure-free outcome: the document the schema test checks key by key.
SCHEMA_RUN = ["--json", "-b", "memory,file,mirror", "--repeat", "2", *SMALL[:-2]]


@pytest.fixture(scope="module")
def full_doc() -> dict[str, Any]:
    return doc_of(invoke(PluginHost(), *SCHEMA_RUN, "--no-reserve-demo"))


def _declared(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref:
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        return _declared(target, root)
    return node


def _undeclared(doc: Any, node: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    node = _declared(node, root)
    out = []
    if isinstance(doc, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key, value in doc.items():
            if key in props:
                out += _undeclared(value, props[key], root, f"{where}.{key}")
            elif isinstance(extra, dict):
                out += _undeclared(value, extra, root, f"{where}.{key}")
            else:
                out.append(f"{where}.{key}")
    elif isinstance(doc, list) and "items" in node:
        for i, item in enumerate(doc):
            out += _undeclared(item, node["items"], root, f"{where}[{i}]")
    return out


def test_the_document_validates_against_the_shipped_schema(full_doc: dict[str, Any]) -> None:
    jsonschema.validate(full_doc, schema())


def test_every_key_of_the_document_is_declared_in_the_schema(full_doc: dict[str, Any]) -> None:
    assert {r["kind"] for r in full_doc["results"]} == {"backend", "peer", "model"}
    assert "resync-1pct" in {r["workload"] for r in full_doc["results"]}
    root = schema()
    assert _undeclared(full_doc, root, root, "$") == []


def test_the_schema_refuses_an_unknown_top_level_key(full_doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(full_doc)
    bad["mystery"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema())


def test_the_schema_requires_the_durability_of_every_result(full_doc: dict[str, Any]) -> None:
    bad = copy.deepcopy(full_doc)
    del bad["results"][0]["durability"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema())


def test_the_schema_ships_with_the_package() -> None:
    from importlib.resources import files

    assert files("swapio.bench").joinpath("schema.json").is_file()


def test_the_summary_answers_every_need(full_doc: dict[str, Any]) -> None:
    needs = {s["need"]: s for s in full_doc["summary"]}
    assert list(needs) == [n.key for n in summary.NEEDS]
    assert needs["fastest_durable"]["winner"]["target"] == "mirror"  # the only durable one
    assert needs["fastest_durable"]["runner_up"] is None
    assert needs["fastest_remote"]["winner"] is None
    assert "no remote backend" in needs["fastest_remote"]["reason"]


# --- the summary's ranking -----------------------------------------------------------


def _r(
    target: str, workload: str, pages_per_s: float, durability: Durability, **extra: Any
) -> Result:
    return Result(
        target, Kind.BACKEND, workload, 4096, int(pages_per_s), 1.0,
        samples=tuple(extra.pop("samples", ())), extra=extra, durability=durability,
    )  # fmt: skip


def _answer(key: str, results: list[Result]) -> dict[str, Any]:
    (need,) = [n for n in summary.NEEDS if n.key == key]
    return summary.answer(need, results)


def test_fastest_durable_ranks_only_durable_backends() -> None:
    results = [
        _r("ram", "seq-out", 9000, Durability.VOLATILE),
        _r("disk", "seq-out", 300, Durability.DURABLE),
        _r("raid", "seq-out", 200, Durability.DURABLE),
        _r("cache", "seq-out", 5000, Durability.PAGE_CACHE),
    ]
    answer = _answer("fastest_durable", results)
    assert (answer["winner"]["target"], answer["winner"]["value"]) == ("disk", 300)
    assert answer["runner_up"]["target"] == "raid"


def test_peers_never_win() -> None:
    peer = Result("tool", Kind.PEER, "seq-out", 4096, 10**6, 1.0, durability=Durability.REMOTE)
    answer = _answer("fastest_remote", [peer, _r("nfs-like", "seq-out", 10, Durability.REMOTE)])
    assert answer["winner"]["target"] == "nfs-like"


def test_lowest_p99_demand_read_prefers_the_lower_latency() -> None:
    slow = _r("a", "rand-in", 10, Durability.REMOTE, samples=[5_000_000] * 100)
    fast = _r("b", "rand-in", 10, Durability.DURABLE, samples=[100_000] * 100)
    answer = _answer("lowest_p99_demand_read", [slow, fast])
    assert [answer["winner"]["target"], answer["runner_up"]["target"]] == ["b", "a"]


def test_a_stalled_pressure_run_does_not_win() -> None:
    stalled = _r("a", "pressure", 900, Durability.VOLATILE, completed=False)
    done = _r("b", "pressure", 100, Durability.VOLATILE, completed=True)
    assert _answer("best_under_pressure", [stalled, done])["winner"]["target"] == "b"


def test_least_flash_wear_ranks_write_amplification_of_local_storage() -> None:
    results = [
        _r("log", "rand-out", 1, Durability.DURABLE, write_amplification=1.3),
        _r("raid", "rand-out", 1, Durability.DURABLE, write_amplification=2.1),
        _r("ram", "rand-out", 1, Durability.VOLATILE, write_amplification=0.0),
    ]
    answer = _answer("least_flash_wear", results)
    assert (answer["winner"]["target"], answer["runner_up"]["target"]) == ("log", "raid")


# --- warnings --------------------------------------------------------------------------


def _outcome(load: float, spreads: list[float]) -> Outcome:
    results = [
        _r(f"t{i}", "seq-out", 1, Durability.VOLATILE, spread_pct=s, repeat=3)
        for i, s in enumerate(spreads)
    ]
    machine = {"cpus": 2, "loadavg_1m": load, "loadavg_1m_end": load}
    return Outcome(results=results, meta={"machine": machine})


def test_no_warning_on_a_quiet_machine_with_steady_runs() -> None:
    assert _reliability_warnings(_outcome(0.3, [5.0, 12.0])) == []


def test_a_load_average_at_the_cpu_count_is_a_warning() -> None:
    (warning,) = _reliability_warnings(_outcome(2.5, [5.0]))
    assert warning.startswith("load average 2.50 on 2 CPUs")


def test_a_wide_spread_is_a_warning_naming_the_row() -> None:
    (warning,) = _reliability_warnings(_outcome(0.3, [5.0, 80.0]))
    assert "t1 seq-out (80%)" in warning
    assert "t0" not in warning


# --- the plot ----------------------------------------------------------------------------


def test_plot_decodes_and_has_a_panel_per_workload_and_the_resync(
    full_doc: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "bench.png"
    result = invoke(PluginHost(), "-b", "memory,mirror", "-w", "seq-out,rand-in,resync-1pct",
                    "--plot", str(out), *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        image.load()
        assert image.format == "PNG"
        panels = image.text[plot.PANELS_KEY].splitlines()
    assert [p.split(":")[0] for p in panels] == [
        "seq-out", "seq-out", "rand-in", "rand-in", "resync-1pct",
    ]  # fmt: skip
    assert "latency CDF" in panels[1]
    assert "seconds (less is better)" in panels[4]


def test_every_target_gets_its_own_colour_and_hatch() -> None:
    names = [f"t{i}" for i in range(45)]
    styles = plot.styles(names)
    assert len({(tuple(c), h) for c, h in styles.values()}) == 45
    # neighbours (tab20's light/dark pairs) differ in hatch, not only in shade
    assert all(styles[f"t{i}"][1] != styles[f"t{i + 1}"][1] for i in range(44))
