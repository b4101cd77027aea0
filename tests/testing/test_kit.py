"""The conformance kit as a plugin author meets it: suites run by pytest in subprocesses.

All suites start at once (module fixture) and each test reads one suite's outcome.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from .conftest import KitRun, finish, start_suite

HEADER = """
import itertools, time
import pytest
from swapio import PluginHost
from swapio.errors import BackendIOError
from swapio.testing import BackendTests

names = itertools.count()

class Memory(BackendTests):
    @pytest.fixture
    def area_url(self):
        return f"memory://kit-{next(names)}"
"""

# A memory backend under another scheme whose discard blocks the event loop for 0.25 s.
SLOWMEM = """
import time
import swapio
from swapio_memory import plugin as memory

@swapio.hookimpl
def swapio_backend():
    return swapio.BackendInfo("slowmem", "0", ("slowmem",), capabilities=("discard", "create"))

swapfile, swap_out, swap_in = memory.swapfile, memory.swap_out, memory.swap_in

@swapio.hookimpl
async def swap_discard(area, slot, count):
    time.sleep(0.25)
    await memory.swap_discard(area, slot, count)
"""

SUITES: dict[str, str] = {
    "plain": "class TestPlain(Memory): pass",
    "unsupported": """
class TestUnsupported(Memory):
    unsupported_page_sizes = {16384: "the test device has 4 KiB sectors"}
""",
    "no_clear_fault": """
class TestNoClear(Memory):
    async def inject_fault(self, area):
        pass
""",
    "one_shot_fault": """
class TestOneShot(Memory):
    async def inject_fault(self, area):
        self.saved = ops = area._ops
        shots = [1]

        def once(op):
            async def call(*args):
                if shots:
                    shots.pop()
                    raise BackendIOError("injected: the next I/O fails")
                return await op(*args)
            return call

        area._ops = type(ops)(**{**vars(ops), "swap_out": once(ops.swap_out),
                                 "swap_in": once(ops.swap_in)})

    async def clear_fault(self, area):
        area._ops = self.saved
""",
    "legacy_page_size": "class TestLegacy(Memory):\n    page_size = 4096",
    "slow": """
import slowmem

class Slow(BackendTests):
    @pytest.fixture
    def area_url(self):
        return f"slowmem://kit-{next(names)}"

    @pytest.fixture
    def host(self):
        host = PluginHost()
        host.register(slowmem, "slowmem")
        return host

class TestSlow(Slow):
    pass

class TestSlowAllowed(Slow):
    max_loop_stall = None
""",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KitRun]:
    root = tmp_path_factory.mktemp("suites")
    procs = {}
    for name, body in SUITES.items():
        source = HEADER + textwrap.dedent(body)
        procs[name] = start_suite(root / name, {"test_suite.py": source, "slowmem.py": SLOWMEM})
    procs["no_asyncio"] = start_suite(
        root / "no_asyncio", {"test_suite.py": HEADER + SUITES["plain"]}, plugins=()
    )
    return {name: finish(proc) for name, proc in procs.items()}


def _outcomes(run: KitRun, cls: str = r"\w+") -> dict[str, str]:
    """check id (``test_x[page4096]``) of class ``cls`` -> PASSED / FAILED / SKIPPED."""
    pattern = rf"::{cls}::(\w+\[page\d+\]) (PASSED|FAILED|SKIPPED)"
    return dict(re.findall(pattern, run.output))


def test_every_check_runs_at_two_page_sizes(runs: dict[str, KitRun]) -> None:
    outcomes = _outcomes(runs["plain"])
    checks = {key.split("[")[0] for key in outcomes}
    assert len(checks) == 14
    assert set(outcomes) == {f"{c}[page{s}]" for c in checks for s in (4096, 16384)}
    assert runs["plain"].returncode == 0, runs["plain"].output[-3000:]


def test_missing_inject_fault_is_a_skip_with_its_reason_printed(runs: dict[str, KitRun]) -> None:
    run = runs["plain"]
    assert _outcomes(run)["test_backend_errors_propagate[page4096]"] == "SKIPPED"
    summary = run.output.split("swapio conformance kit: checks not run", 1)[1]
    assert "2 x TestPlain does not implement inject_fault" in summary
    assert "override inject_fault and clear_fault" in summary


def test_unsupported_page_size_skips_with_the_authors_reason(runs: dict[str, KitRun]) -> None:
    run = runs["unsupported"]
    outcomes = _outcomes(run)
    assert {k for k, v in outcomes.items() if v == "SKIPPED"} >= {
        k for k in outcomes if k.endswith("[page16384]")
    }
    assert outcomes["test_round_trip_single_pages[page4096]"] == "PASSED"
    assert (
        "14 x TestUnsupported does not serve 16384-byte pages: the test device has 4 KiB sectors"
        in run.output
    )


def test_inject_fault_without_clear_fault_fails_the_check(runs: dict[str, KitRun]) -> None:
    run = runs["no_clear_fault"]
    assert _outcomes(run)["test_backend_errors_propagate[page4096]"] == "FAILED"
    assert "implements inject_fault but not clear_fault" in run.output


def test_a_one_shot_fault_does_not_satisfy_the_kit(runs: dict[str, KitRun]) -> None:
    run = runs["one_shot_fault"]
    assert _outcomes(run)["test_backend_errors_propagate[page4096]"] == "FAILED"
    assert "DID NOT RAISE" in run.output


def test_a_class_setting_page_size_is_warned(runs: dict[str, KitRun]) -> None:
    run = runs["legacy_page_size"]
    assert "KitWarning: TestLegacy sets page_size, which the kit no longer reads" in run.output
    assert run.output.count("KitWarning") == 1  # once per class, not once per check
    assert _outcomes(run)["test_round_trip_single_pages[page16384]"] == "PASSED"


def test_a_hook_blocking_the_loop_fails_with_hook_and_time(runs: dict[str, KitRun]) -> None:
    run = runs["slow"]
    outcomes = _outcomes(run, "TestSlow")
    for size in (4096, 16384):
        assert outcomes[f"test_discard_reads_zeros_and_spares_neighbours[page{size}]"] == "FAILED"
    assert re.search(r"swap_discard ran 0\.2\d\d s on the event loop without yielding", run.output)
    assert "TestSlow.max_loop_stall" in run.output
    # the other checks never call discard: they pass
    assert outcomes["test_round_trip_single_pages[page4096]"] == "PASSED"


def test_max_loop_stall_none_turns_the_watch_off(runs: dict[str, KitRun]) -> None:
    run = runs["slow"]
    assert set(_outcomes(run, "TestSlowAllowed").values()) == {"PASSED", "SKIPPED"}


def test_without_pytest_asyncio_the_suite_stops_with_the_install_command(
    runs: dict[str, KitRun],
) -> None:
    run = runs["no_asyncio"]
    assert run.returncode != 0
    assert "needs pytest-asyncio" in run.output
    assert "pip install 'swapio[testing]'" in run.output
    assert "PASSED" not in run.output
    assert "FAILED" not in run.output


def test_suite_files_are_written_fresh(tmp_path: Path) -> None:
    """The runner writes a pytest.ini, so a suite never picks up swapio's own configuration."""
    proc = start_suite(tmp_path, {"test_x.py": "def test_x():\n    pass\n"}, plugins=())
    run = finish(proc)
    assert run.returncode == 0
    assert f"rootdir: {tmp_path}" in run.output
