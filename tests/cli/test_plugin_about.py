"""``swapio backends`` lists plugins from their metadata and ``about`` modules, importing none.

A plugin's ``swapio.about`` entry names a module of constants (``NAME``, ``VERSION``,
``SUMMARY``, ``CAPABILITIES``) that swapio runs on its own, without the plugin's package; the
plugin is imported only when it is used (or ``--check``), and then must match it.  Imports
are read from ``sys.modules`` of a real ``swapio`` process (never timed).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from swapio.plugins import PluginHost

from .imports import run_swapio as run

PLUGIN_PACKAGES = {
    "swapio_memory",
    "swapio_file",
    "swapio_nfs",
    "swapio_flashlog",
    "swapio_mdraid",
    "swapio_http",
    "swapio_redis",
}
BUILT_IN = {"memory", "file", "nfs", "flashlog", "mirror", "http", "redis"}


def plugin_modules(imported: set[str]) -> set[str]:
    return {m for m in imported if m.split(".")[0] in PLUGIN_PACKAGES | {"swapio_fake"}}


PLUGIN_SOURCE = """\
import swapio
from swapio.area import Capabilities, SwapInfo


@swapio.hookimpl
def swapio_backend():
    return swapio.BackendInfo(
        name="fake", version="{version}", schemes=("fake",), summary="a fake backend",
        capabilities=("create",),
    )


@swapio.hookimpl
async def swapfile(area, activate):
    if activate:
        return SwapInfo(pages=4, page_size=4096, capabilities=Capabilities())
    return None


@swapio.hookimpl
async def swap_out(area, slot, pages):
    pass


@swapio.hookimpl
async def swap_in(area, slot, pages):
    pass
"""

ABOUT_SOURCE = """\
NAME = "fake"
VERSION = "1.0"
SUMMARY = "a fake backend"
CAPABILITIES = ("create",)
"""

ENTRY_POINTS = """\
[swapio]
fake = swapio_fake.plugin
[swapio.schemes]
fake = swapio_fake.plugin
[swapio.about]
fake = swapio_fake._about
"""


def fake_plugin(
    root: Path,
    *,
    init: str = "",
    plugin: str = PLUGIN_SOURCE.format(version="1.0"),
    about: str = ABOUT_SOURCE,
    entry_points: str = ENTRY_POINTS,
) -> dict[str, str]:
    """A distribution ``fake`` (package ``swapio_fake``) on PYTHONPATH; its environment."""
    dist = root / "fake-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)
    package = root / "swapio_fake"
    package.mkdir()
    (package / "__init__.py").write_text(init)
    (package / "plugin.py").write_text(plugin)
    (package / "_about.py").write_text(about)
    return {**os.environ, "PYTHONPATH": str(root)}


def listed(stdout: str) -> dict[str, dict[str, object]]:
    return {b["name"]: b for b in json.loads(stdout)["backends"]}


def test_backends_lists_every_built_in_backend_without_importing_a_plugin() -> None:
    code, out, err, imported = run("backends", "--json")
    assert code == 0, err
    assert set(listed(out)) >= BUILT_IN
    assert plugin_modules(imported) == set()
    assert not {m for m in imported if m.split(".")[0] in ("aiohttp", "redis", "yarl")}


def test_every_built_in_about_module_says_what_its_plugin_serves() -> None:
    host = PluginHost()
    described = {info.name: (plugin, info) for plugin, info in host.describe()}
    host.backends()  # imports every plugin: each is checked against its about module
    imported = {info.name: (plugin, info) for plugin, info in host.describe()}
    assert set(described) >= BUILT_IN
    assert described == imported


def test_backends_check_imports_every_plugin() -> None:
    code, out, err, imported = run("backends", "--check", "--json")
    assert code == 0, err
    assert set(listed(out)) >= BUILT_IN
    assert {m.split(".")[0] for m in plugin_modules(imported)} == PLUGIN_PACKAGES


def test_the_about_module_is_run_without_its_package(tmp_path: Path) -> None:
    env = fake_plugin(tmp_path, init="raise ImportError('package imported')\n")
    code, out, err, imported = run("backends", "--json", env=env)
    assert code == 0, err
    assert listed(out)["fake"] == {
        "name": "fake",
        "version": "1.0",
        "schemes": ["fake"],
        "capabilities": ["create"],
        "summary": "a fake backend",
        "plugin": "fake",
    }
    assert plugin_modules(imported) == set()


def test_a_broken_plugin_with_an_about_module_is_listed_and_fails_check_and_use(
    tmp_path: Path,
) -> None:
    env = fake_plugin(tmp_path, init="raise ImportError('half installed')\n")
    code, out, err, _ = run("backends", "--json", env=env)
    assert code == 0, err
    assert "fake" in listed(out)
    for args in (("backends", "--check"), ("info", "fake://x")):
        code, _, err, _ = run(*args, env=env)
        assert code == 4, err
        assert err.count("\n") == 0, err
        assert "plugin 'fake'" in err
        assert "half installed" in err
        assert "SWAPIO_DISABLED_PLUGINS=fake" in err


def test_a_plugin_that_contradicts_its_about_module_fails_backends_check(
    tmp_path: Path,
) -> None:
    env = fake_plugin(tmp_path, plugin=PLUGIN_SOURCE.format(version="2.0"))
    code, out, err, _ = run("backends", "--json", env=env)
    assert code == 0, err
    assert listed(out)["fake"]["version"] == "1.0"  # what the metadata says, unimported
    code, _, err, _ = run("backends", "--check", env=env)
    assert code == 4, err
    assert err.count("\n") == 0, err
    assert "plugin 'fake'" in err
    assert "version '2.0' (about: '1.0')" in err


def test_using_a_plugin_does_not_read_its_about_module(tmp_path: Path) -> None:
    env = fake_plugin(tmp_path, about="raise RuntimeError('about read')\n")
    code, out, err, _ = run("info", "fake://x", "--json", env=env)
    assert code == 0, err
    assert json.loads(out)["backend"] == "fake"


@pytest.mark.parametrize(
    ("about", "complaint"),
    [
        ("raise RuntimeError('bad about')\n", "RuntimeError: bad about"),
        (ABOUT_SOURCE.replace('VERSION = "1.0"', "VERSION = 1"), "VERSION must be a string"),
        (ABOUT_SOURCE.replace("CAPABILITIES", "CAPS"), "CAPABILITIES must be a tuple"),
        (ABOUT_SOURCE.replace('("create",)', '("dicsard",)'), "unknown capability 'dicsard'"),
    ],
)
def test_a_bad_about_module_names_the_plugin_and_the_way_out(
    tmp_path: Path, about: str, complaint: str
) -> None:
    env = fake_plugin(tmp_path, about=about)
    code, _, err, _ = run("backends", env=env)
    assert code == 4, err
    assert err.count("\n") == 0, err
    assert "'fake'" in err
    assert complaint in err
    code, _, err, _ = run("backends", env={**env, "SWAPIO_DISABLED_PLUGINS": "fake"})
    assert code == 0, err


def test_a_scheme_conflict_is_found_by_backends_before_importing_either(
    tmp_path: Path,
) -> None:
    env = fake_plugin(
        tmp_path,
        init="raise ImportError('imported although only metadata was needed')\n",
        entry_points=ENTRY_POINTS.replace("[swapio.schemes]\nfake", "[swapio.schemes]\nfile"),
    )
    code, _, err, imported = run("backends", env=env)
    assert code == 4, err
    assert "URL scheme 'file' is claimed by two plugins: 'fake' and 'file'" in err
    assert plugin_modules(imported) == set()


def test_a_plugin_without_an_about_module_is_imported_to_be_listed(tmp_path: Path) -> None:
    env = fake_plugin(tmp_path, entry_points=ENTRY_POINTS.partition("[swapio.about]")[0])
    code, out, err, imported = run("backends", "--json", env=env)
    assert code == 0, err
    assert listed(out)["fake"]["summary"] == "a fake backend"
    assert {m.split(".")[0] for m in plugin_modules(imported)} == {"swapio_fake"}
