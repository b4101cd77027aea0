"""What the installed plugins are, read from entry-point metadata without importing them.

Three entry-point groups (``pyproject.toml`` of each distribution; see
docs/plugin-authors.md, "Register")::

    [project.entry-points.swapio]             # plugin name = its module
    zmem = "swapio_zmem"
    [project.entry-points."swapio.schemes"]   # URL scheme = the same module
    zmem = "swapio_zmem"
    [project.entry-points."swapio.commands"]  # CLI verb = the same module
    zmem = "swapio_zmem"

A scheme or verb entry names its plugin by value: the module of the plugin's ``swapio`` entry
point (module names are unique in an environment).  A plugin with at least one ``schemes`` or
``commands`` entry is *declared*: the host imports it only when one of its schemes is
activated, one of its verbs runs, or a caller asks for every backend.  A plugin with neither
is *undeclared* (older plugins): the host must import it to learn what it serves, and does
so the first time it needs to know who serves a scheme.

Reading the metadata is all this module does; the host (:mod:`swapio.plugins`) finds two
declared plugins claiming one scheme from these specs, before importing either.

The reading itself is :func:`read_entry_points`: the ``entry_points.txt`` of every
``*.dist-info`` / ``*.egg-info`` directory on ``sys.path``, first distribution of a name
winning — what :func:`importlib.metadata.entry_points` returns, without importing
:mod:`importlib.metadata` (and :mod:`email` with it), which alone costs a tenth of the
interpreter's start-up.  A ``sys.path`` entry that is not a directory (a zip file) makes it
fall back to :mod:`importlib.metadata` itself.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

PLUGIN_GROUP = "swapio"
SCHEME_GROUP = "swapio.schemes"
COMMAND_GROUP = "swapio.commands"


@dataclass(frozen=True)
class EntryPoint:
    """One ``name = module[:attr]`` line of a distribution's ``entry_points.txt``."""

    name: str
    value: str
    group: str

    def load(self) -> Any:
        """Import the module and return it, or the attribute the value names."""
        module, _, attr = self.value.partition("[")[0].partition(":")
        target: Any = importlib.import_module(module.strip())
        for part in attr.strip().split(".") if attr.strip() else ():
            target = getattr(target, part)
        return target


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _metadata_dirs() -> Iterator[tuple[str, str]]:
    """``(distribution name, metadata directory)`` in ``sys.path`` order."""
    for entry in sys.path:
        try:
            with os.scandir(entry or ".") as it:
                names = sorted(e.name for e in it)
        except OSError:
            continue
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            if dot and suffix in ("dist-info", "egg-info"):
                yield stem.partition("-")[0], os.path.join(entry or ".", name)


def _parse(text: str) -> Iterator[EntryPoint]:
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
        elif "=" in line and group:
            name, _, value = line.partition("=")
            yield EntryPoint(name.strip(), value.strip(), group)


def read_entry_points(groups: Iterable[str]) -> list[EntryPoint]:
    """The installed distributions' entry points in ``groups`` (see the module docstring)."""
    wanted = set(groups)
    if any(entry and not os.path.isdir(entry) and os.path.exists(entry) for entry in sys.path):
        from importlib import metadata  # noqa: PLC0415 - zip entries: the full implementation

        return [
            EntryPoint(ep.name, ep.value, ep.group)
            for group in sorted(wanted)
            for ep in metadata.entry_points(group=group)
        ]
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for dist, path in _metadata_dirs():
        key = _normalize(dist)
        if key in seen:
            continue
        seen.add(key)
        try:
            with open(os.path.join(path, "entry_points.txt"), encoding="utf-8") as f:
                found.extend(ep for ep in _parse(f.read()) if ep.group in wanted)
        except OSError:
            continue
    return found


@dataclass(frozen=True)
class PluginSpec:
    """An installed plugin as its metadata describes it (nothing imported)."""

    name: str
    entry_point: EntryPoint
    schemes: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()

    @property
    def declared(self) -> bool:
        """True if the metadata names the plugin's schemes or verbs (it is imported lazily)."""
        return bool(self.schemes or self.commands)


def discover(blocked: Iterable[str] = ()) -> dict[str, PluginSpec]:
    """Read the three entry-point groups; skip the plugins named in ``blocked``.

    A scheme or verb entry whose module no plugin entry names is ignored here; the plugin
    that does serve it is then found undeclaring it when imported (a :class:`PluginError`
    from the host, see :meth:`PluginSpec.declared`)."""
    found = read_entry_points((PLUGIN_GROUP, SCHEME_GROUP, COMMAND_GROUP))
    skip = set(blocked)
    plugins = sorted((e for e in found if e.group == PLUGIN_GROUP), key=lambda e: e.name)
    by_module: dict[str, str] = {}
    for ep in plugins:
        by_module.setdefault(ep.value.strip(), ep.name)
    schemes: dict[str, list[str]] = {}
    commands: dict[str, list[str]] = {}
    for group, table in ((SCHEME_GROUP, schemes), (COMMAND_GROUP, commands)):
        for ep in sorted((e for e in found if e.group == group), key=lambda e: e.name):
            owner = by_module.get(ep.value.strip())
            if owner is not None:
                table.setdefault(owner, []).append(ep.name)
    return {
        ep.name: PluginSpec(
            ep.name, ep, tuple(schemes.get(ep.name, ())), tuple(commands.get(ep.name, ()))
        )
        for ep in plugins
        if ep.name not in skip
    }
