"""Capability names in ``BackendInfo`` are checked: a typo is an error naming the known names."""

from __future__ import annotations

import types

import pytest

import swapio
from swapio.area import CAPABILITY_NAMES, Capabilities
from swapio.errors import PluginError
from swapio.plugins import BackendInfo, PluginHost


def test_the_known_names() -> None:
    assert set(CAPABILITY_NAMES) == {"create", "discard", "durable", "reserve"}


def test_known_names_are_accepted_in_any_order() -> None:
    info = BackendInfo("zmem", "1", ("zmem",), capabilities=("discard", "create"))
    assert info.capabilities == ("discard", "create")


def test_a_typo_names_the_backend_the_closest_name_and_every_known_name() -> None:
    with pytest.raises(PluginError) as info:
        BackendInfo("zmem", "1", ("zmem",), capabilities=("durable", "dicsard"))
    assert str(info.value) == (
        "backend 'zmem': unknown capability 'dicsard' (did you mean 'discard'?); "
        "known: create, discard, durable, reserve"
    )


def test_a_single_string_is_refused() -> None:
    with pytest.raises(PluginError, match=r"not the string 'discard' \(write \('discard',\)\)"):
        Capabilities.check_names("discard", "zmem")


def test_a_plugin_with_a_typo_fails_when_the_host_asks_who_it_is() -> None:
    plugin = types.ModuleType("typo_plugin")

    @swapio.hookimpl
    def swapio_backend() -> BackendInfo:
        return BackendInfo("typo", "1", ("typo",), capabilities=("creat",))

    plugin.swapio_backend = swapio_backend  # type: ignore[attr-defined]
    host = PluginHost(autoload=False)
    host.register(plugin, "typo")
    with pytest.raises(PluginError, match="unknown capability 'creat' \\(did you mean 'create'"):
        host.backends()


def test_every_installed_backend_uses_known_names() -> None:
    for backend in PluginHost().backends():
        assert set(backend.info.capabilities) <= set(CAPABILITY_NAMES), backend.info.name
