"""pytest plugin (entry point ``pytest11: swapio``): fixtures and reporting for backend authors.

* ``swapio_host``: a :class:`~swapio.plugins.PluginHost` with every installed plugin.
* A conformance check the kit did not run is never silent: the terminal summary lists every
  kit skip with its reason (``pytest -q`` shows skips only as ``s`` otherwise).
* A suite that collects :class:`~swapio.testing.BackendTests` without pytest-asyncio stops at
  once with the command that installs it, instead of failing every check.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from swapio.plugins import PluginHost

#: Must match swapio.testing.conformance.SKIP_PREFIX (not imported: the kit's module is
#: imported by a suite that uses it, never by pytest start-up).
_SKIP_PREFIX = "swapio kit: "
_INSTALL_HINT = "pip install 'swapio[testing]'"


@pytest.fixture
def swapio_host() -> PluginHost:
    """A :class:`~swapio.plugins.PluginHost` with every installed plugin loaded."""
    return PluginHost()


def _uses_kit(item: pytest.Item) -> bool:
    cls = getattr(item, "cls", None)
    return cls is not None and any(
        c.__name__ == "BackendTests" and c.__module__ == "swapio.testing.conformance"
        for c in cls.__mro__
    )


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Without pytest-asyncio every kit check would fail one by one: stop with the fix."""
    if config.pluginmanager.hasplugin("asyncio"):
        return
    if any(_uses_kit(item) for item in items):
        raise pytest.UsageError(
            "swapio's conformance kit (BackendTests) needs pytest-asyncio, which is not "
            f"installed or not enabled: {_INSTALL_HINT}"
        )


def _skip_reason(report: Any) -> str | None:
    longrepr = getattr(report, "longrepr", None)
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2]).removeprefix("Skipped: ")
        if reason.startswith(_SKIP_PREFIX):
            return reason.removeprefix(_SKIP_PREFIX)
    return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """List the conformance checks that did not run, and why (even under ``-q``)."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = _skip_reason(report)
        if reason is not None:
            reasons[reason] += 1
    if not reasons:
        return
    terminalreporter.section("swapio conformance kit: checks not run", sep="-")
    for reason, count in sorted(reasons.items()):
        terminalreporter.line(f"{count} x {reason}")
