"""Plugin discovery: entry points, kill switches, scheme conflicts, contract checks."""

from __future__ import annotations

import types
from collections.abc import Sequence

import pytest

import swapio
from swapio.area import PageBuffer, SwapArea, SwapInfo
from swapio.errors import LocationError, PluginError, SchemeConflictError
from swapio.plugins import PluginHost


def make_plugin(name: str, schemes: tuple[str, ...]) -> types.SimpleNamespace:
    @swapio.hookimpl
    def swapio_backend() -> swapio.BackendInfo:
        return swapio.BackendInfo(name=name, version="1", schemes=schemes)

    @swapio.hookimpl
    async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
        return SwapInfo(pages=4, page_size=4096) if activate else None

    @swapio.hookimpl
    async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        return None

    @swapio.hookimpl
    async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
        return None

    return types.SimpleNamespace(
        swapio_backend=swapio_backend, swapfile=swapfile, swap_out=swap_out, swap_in=swap_in
    )


def test_builtin_backends_come_from_entry_points() -> None:
    names = {b.info.name for b in PluginHost().backends()}
    assert {"memory", "file"} <= names


def test_autoload_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWAPIO_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert PluginHost().backends() == []


def test_named_plugins_can_be_blocked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWAPIO_DISABLED_PLUGINS", "memory")
    names = {b.info.name for b in PluginHost().backends()}
    assert "memory" not in names
    assert "file" in names


def test_two_plugins_claiming_a_scheme_is_an_error_naming_both() -> None:
    host = PluginHost(autoload=False)
    host.register(make_plugin("one", ("dup",)), "plugin-one")
    host.register(make_plugin("two", ("dup",)), "plugin-two")
    with pytest.raises(SchemeConflictError, match="plugin-one.*plugin-two"):
        host.backends()


def test_unknown_scheme_lists_known_ones() -> None:
    host = PluginHost(autoload=False)
    host.register(make_plugin("one", ("alpha",)), "p1")
    with pytest.raises(LocationError, match="'beta'.*alpha"):
        host.owner("beta")


def test_sync_data_hook_is_rejected() -> None:
    plugin = make_plugin("one", ("x",))

    @swapio.hookimpl
    def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
        return None

    plugin.swap_in = swap_in
    with pytest.raises(PluginError, match="swap_in must be an async def"):
        PluginHost(autoload=False).register(plugin, "bad")


def test_async_registration_hook_is_rejected() -> None:
    plugin = make_plugin("one", ("x",))

    @swapio.hookimpl
    async def swapio_backend() -> swapio.BackendInfo:
        return swapio.BackendInfo(name="x", version="1", schemes=("x",))

    plugin.swapio_backend = swapio_backend
    with pytest.raises(PluginError, match="must be synchronous"):
        PluginHost(autoload=False).register(plugin, "bad")


def test_misspelled_argument_is_rejected_by_spec_validation() -> None:
    plugin = make_plugin("one", ("x",))

    @swapio.hookimpl
    async def swap_out(area: SwapArea, slot: int, buffers: Sequence[PageBuffer]) -> None:
        return None

    plugin.swap_out = swap_out
    with pytest.raises(PluginError, match="violates the swapio hook spec"):
        PluginHost(autoload=False).register(plugin, "bad")


def test_unknown_hook_is_rejected() -> None:
    plugin = make_plugin("one", ("x",))

    @swapio.hookimpl
    def swap_sideways() -> None:
        return None

    plugin.swap_sideways = swap_sideways
    with pytest.raises(PluginError):
        PluginHost(autoload=False).register(plugin, "bad")


def test_owner_without_data_hooks_is_rejected() -> None:
    plugin = make_plugin("one", ("x",))
    del plugin.swap_in
    host = PluginHost(autoload=False)
    host.register(plugin, "half")
    with pytest.raises(PluginError, match="does not implement swap_in"):
        host.backends()


def test_plugin_failing_to_import_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    broken = metadata.EntryPoint(name="broken", value="no_such_module_x.plugin", group="swapio")
    real = metadata.entry_points

    def fake(**kw: str) -> list[metadata.EntryPoint]:
        return [*real(**kw), broken] if kw.get("group") == "swapio" else list(real(**kw))

    monkeypatch.setattr("swapio.plugins.entry_points", fake)
    with pytest.raises(PluginError, match="'broken'.*no_such_module_x"):
        PluginHost()


async def test_activation_binds_the_owner_once() -> None:
    calls: list[str] = []
    plugin = make_plugin("one", ("x",))

    @swapio.hookimpl
    async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
        calls.append(f"out:{slot}")

    plugin.swap_out = swap_out
    other = make_plugin("two", ("y",))
    host = PluginHost(autoload=False)
    host.register(plugin, "p1")
    host.register(other, "p2")
    area = await host.activate("x://a")
    assert area.owner == "p1"
    await area.write(1, bytes(4096))
    assert calls == ["out:1"]
    await area.deactivate()
