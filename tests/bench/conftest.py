"""Helpers of the bench tests: a CLI over a given plugin host, small sizes, hand-made plugins."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

import swapio
from swapio.bench.cli import bench
from swapio.bench.hook import BenchSite, BenchTarget, Durability
from swapio.cli import build_cli
from swapio.plugins import PluginHost

#: Small, quick runs: the tests check behaviour, never speed.
SMALL = ["--pages", "256", "--ops", "128", "--qd", "4", "--seconds", "0.2", "--repeat", "1"]


def cli_for(host: PluginHost) -> click.Group:
    group = build_cli(host)
    if "bench" not in group.commands:
        group.add_command(bench)
    return group


def invoke(host: PluginHost, *args: str) -> Result:
    return CliRunner().invoke(cli_for(host), ["bench", *args])


def doc_of(result: Result) -> dict[str, Any]:
    assert result.exit_code in (0, 1), result.output
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


@pytest.fixture
def host() -> PluginHost:
    return PluginHost()


def builtin_only(*names: str) -> PluginHost:
    """A host with only the named built-in plugins (entry-point names), loaded as usual."""
    from importlib.metadata import entry_points

    host = PluginHost(autoload=False)
    for ep in entry_points(group="swapio"):
        if ep.name in names:
            host.register(ep.load(), ep.name)
    return host


def memory_target_plugin(
    name: str,
    *,
    needs: tuple[str, ...] = (),
    hint: str = "",
    seen: list[BenchSite] | None = None,
    fail: bool = False,
    durability: Durability = Durability.VOLATILE,
) -> Any:
    """A plugin contributing a target ``name`` that places memory:// areas."""

    @asynccontextmanager
    async def place(site: BenchSite) -> AsyncIterator[str]:
        if seen is not None:
            seen.append(site)
        if fail:
            raise RuntimeError("the server would not start")
        yield f"memory://{name}-{site.uid}"

    @swapio.hookimpl
    def swapio_bench() -> list[BenchTarget]:
        return [BenchTarget(name, "memory", durability, place, needs=needs, install_hint=hint)]

    return SimpleNamespace(swapio_bench=swapio_bench)


Factory = Callable[..., Any]
