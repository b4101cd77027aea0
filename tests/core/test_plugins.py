"""Plugin discovery: entry points, kill switches, scheme conflicts, contract checks."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import pytest

import swapio
import swapio.plugins
from swapio.area import PageBuffer, SwapArea, SwapInfo
from swapio.discovery import PluginSpec
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


def _install(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    source: str,
    schemes: tuple[str, ...] = (),
    commands: tuple[str, ...] = (),
) -> str:
    """Make ``PluginHost()`` discover a plugin ``name`` (module source ``source``) beside the
    installed ones, as entry-point metadata with these schemes and verbs would."""
    module = f"swapio_test_{name}_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{module}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = metadata.EntryPoint(name=name, value=module, group="swapio")
    real = swapio.plugins.discover

    def discover(blocked: Iterable[str] = ()) -> dict[str, PluginSpec]:
        specs = real(blocked)
        if name not in set(blocked):
            specs[name] = PluginSpec(name, ep, schemes, commands)
        return specs

    monkeypatch.setattr(swapio.plugins, "discover", discover)
    return module


PLUGIN_SOURCE = """
import swapio
from swapio.area import SwapInfo

@swapio.hookimpl
def swapio_backend():
    return swapio.BackendInfo(name="{name}", version="1", schemes={schemes!r})

@swapio.hookimpl
async def swapfile(area, activate):
    return SwapInfo(pages=4, page_size=4096) if activate else None

@swapio.hookimpl
async def swap_out(area, slot, pages):
    return None

@swapio.hookimpl
async def swap_in(area, slot, pages):
    return None
"""


def test_creating_a_host_imports_no_plugin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    module = _install(
        monkeypatch, tmp_path, "lazy", "raise ImportError('imported too early')", ("lazy",)
    )
    host = PluginHost()
    assert "lazy" in host.schemes()
    assert host.declared_commands().get("bitmap") == "mdraid"
    assert module not in sys.modules


async def test_activating_a_scheme_imports_its_plugin_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = _install(monkeypatch, tmp_path, "other", "raise ImportError('not me')", ("other",))
    host = PluginHost()
    area = await host.activate("memory://lazy", create=swapio.CreateRequest(pages=4))
    await area.deactivate()
    assert area.owner == "memory"
    assert broken not in sys.modules


async def test_a_declared_plugin_failing_to_import_breaks_only_its_scheme(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _install(monkeypatch, tmp_path, "broken", "raise ImportError('half installed')", ("brk",))
    host = PluginHost()
    area = await host.activate("memory://fine", create=swapio.CreateRequest(pages=4))
    await area.deactivate()
    with pytest.raises(
        PluginError, match=r"'broken'.*half installed.*SWAPIO_DISABLED_PLUGINS=broken"
    ):
        await host.activate("brk://x")
    with pytest.raises(PluginError, match="'broken'"):
        host.backends()


def test_an_undeclared_plugin_failing_to_import_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _install(monkeypatch, tmp_path, "broken", "import no_such_module_x")
    with pytest.raises(PluginError, match="'broken'.*no_such_module_x"):
        PluginHost().owner("memory")


def test_an_undeclared_plugin_is_imported_to_learn_its_schemes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = PLUGIN_SOURCE.format(name="old", schemes=("oldstyle",))
    module = _install(monkeypatch, tmp_path, "old", source)
    host = PluginHost()
    assert host.owner("oldstyle").plugin_name == "old"
    assert module in sys.modules


def test_two_declared_plugins_claiming_a_scheme_conflict_before_either_is_imported(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    module = _install(monkeypatch, tmp_path, "dupe", "raise ImportError('imported')", ("file",))
    host = PluginHost()
    with pytest.raises(SchemeConflictError, match="'file' and 'dupe'|'dupe' and 'file'"):
        host.owner("memory")
    assert module not in sys.modules
    assert "file" in {b.info.name for b in PluginHost(blocked=["dupe"]).backends()}


def test_an_undeclared_plugin_claiming_a_declared_scheme_conflicts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _install(monkeypatch, tmp_path, "zzold", PLUGIN_SOURCE.format(name="x", schemes=("file",)))
    with pytest.raises(SchemeConflictError, match="'zzold' and 'file'|'file' and 'zzold'"):
        PluginHost().owner("file")


def test_a_plugin_serving_other_schemes_than_it_declares_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = PLUGIN_SOURCE.format(name="liar", schemes=("one", "two"))
    _install(monkeypatch, tmp_path, "liar", source, ("one",))
    with pytest.raises(
        PluginError, match=r"'liar' serves URL scheme\(s\) one, two .* declares one"
    ):
        PluginHost().owner("one")


def test_a_plugin_adding_other_verbs_than_it_declares_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = (
        "import click, swapio\n"
        "@swapio.hookimpl\n"
        "def swapio_add_commands(cli):\n"
        "    cli.add_command(click.Command('hello'))\n"
    )
    _install(monkeypatch, tmp_path, "verbs", source, commands=("bye",))
    host = PluginHost()
    assert host.declared_commands()["bye"] == "verbs"
    with pytest.raises(PluginError, match="'verbs' adds verb\\(s\\) hello .* declares bye"):
        host.plugin_commands("verbs")


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
