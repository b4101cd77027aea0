"""What the installed plugins are, read from entry-point metadata without importing them.

Three entry-point groups (``pyproject.toml`` of each distribution; see
docs/plugin-authors.md, "Register")::

    [project.entry-points.swapio]             # plugin name = its module
    zmem = "swapio_zmem"
    [project.entry-points."swapio.schemes"]   # URL scheme = the same module
    zmem = "swapio_zmem"
    [project.entry-points."swapio.commands"]  # CLI verb = the same module
    zmem = "swapio_zmem"
    [project.entry-points."swapio.about"]     # plugin name = its import-free "about" module
    zmem = "swapio_zmem._about"

A scheme or verb entry names its plugin by value: the module of the plugin's ``swapio`` entry
point (module names are unique in an environment).  A plugin with at least one ``schemes`` or
``commands`` entry is *declared*: the host imports it only when one of its schemes is
activated, one of its verbs runs, or a caller asks for every backend.  A plugin with neither
is *undeclared* (older plugins): the host must import it to learn what it serves, and does
so the first time it needs to know who serves a scheme.

An ``about`` entry (named like the plugin's ``swapio`` entry) names a module of four
constants — ``NAME``, ``VERSION``, ``SUMMARY``, ``CAPABILITIES`` — the rest of what the
plugin's ``swapio_backend`` returns.  :func:`load_about` runs that file by itself, without the
package's ``__init__`` (and so without the backend), which is how ``swapio backends`` lists a
declared plugin without importing it.

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
import importlib.util
import os
import re
import sys
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any, NamedTuple

PLUGIN_GROUP = "swapio"
SCHEME_GROUP = "swapio.schemes"
COMMAND_GROUP = "swapio.commands"
ABOUT_GROUP = "swapio.about"


class EntryPoint(NamedTuple):
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
                # only the metadata directories are sorted: a site-packages holds hundreds
                names = sorted(e.name for e in it if e.name.endswith(_METADATA_SUFFIXES))
        except OSError:
            continue
        for name in names:
            yield name.rpartition(".")[0].partition("-")[0], f"{entry or '.'}/{name}"


_METADATA_SUFFIXES = (".dist-info", ".egg-info")


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
    markers = [f"[{group}]" for group in wanted]
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for dist, path in _metadata_dirs():
        key = _normalize(dist)
        if key in seen:
            continue
        seen.add(key)
        try:
            with open(f"{path}/entry_points.txt", encoding="utf-8") as f:
                text = f.read()
        except OSError:
            continue
        if any(marker in text for marker in markers):  # skip other projects' files unparsed
            found.extend(ep for ep in _parse(text) if ep.group in wanted)
    return found


class About(NamedTuple):
    """A plugin's backend as its ``about`` module describes it (see :func:`load_about`)."""

    name: str
    version: str
    summary: str
    capabilities: tuple[str, ...]


class AboutError(Exception):
    """An ``about`` module that cannot be run or read; the message says what is wrong."""


def _source_of(module: str) -> str | None:
    """The ``.py`` file of ``module``, found without importing any package on its path.

    Only the top-level name is looked up through the import system (``find_spec`` of a
    top-level name imports nothing); the rest of the dotted name is a path below it.  None
    when the module is not a plain source file there (a zip, an extension, a namespace).
    """
    top, _, rest = module.partition(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        origin = spec.origin
        return origin if origin and origin.endswith(".py") and os.path.isfile(origin) else None
    for location in spec.submodule_search_locations or ():
        path = os.path.join(location, *rest.split(".")) + ".py"
        if os.path.isfile(path):
            return path
    return None


def _run_module(module: str) -> ModuleType:
    """Run ``module``'s source file on its own (no parent package imported, nothing added to
    ``sys.modules``), or import it normally when it is not a plain source file."""
    path = _source_of(module)
    if path is None:
        return importlib.import_module(module)
    spec = importlib.util.spec_from_file_location(module, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has one
        return importlib.import_module(module)
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)  # byte code cached in __pycache__ like any import
    return loaded


def load_about(ep: EntryPoint) -> About:
    """Read the ``about`` module ``ep`` names: four constants, nothing imported but it.

    ``NAME``, ``VERSION`` and ``SUMMARY`` are strings, ``CAPABILITIES`` a tuple (or list) of
    capability names.  The file is run by itself — its package's ``__init__`` is not, so a
    heavy package costs nothing here — which is why it must import nothing of its plugin.
    Raises :class:`AboutError` saying what is wrong.
    """
    module = ep.value.partition("[")[0].partition(":")[0].strip()
    try:
        loaded = _run_module(module)
    except Exception as exc:  # the module's own failure, reported as the plugin's
        raise AboutError(f"about module {module!r} failed: {type(exc).__name__}: {exc}") from exc
    values: dict[str, Any] = {}
    for key in ("NAME", "VERSION", "SUMMARY"):
        value = getattr(loaded, key, None)
        if not isinstance(value, str):
            raise AboutError(f"about module {module!r}: {key} must be a string, not {value!r}")
        values[key] = value
    caps = getattr(loaded, "CAPABILITIES", None)
    if not isinstance(caps, tuple | list) or not all(isinstance(c, str) for c in caps):
        raise AboutError(
            f"about module {module!r}: CAPABILITIES must be a tuple of names, not {caps!r}"
        )
    return About(values["NAME"], values["VERSION"], values["SUMMARY"], tuple(caps))


class PluginSpec(NamedTuple):
    """An installed plugin as its metadata describes it (nothing imported)."""

    name: str
    entry_point: EntryPoint
    schemes: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    #: the plugin's ``swapio.about`` entry (its backend's name, version, summary, capabilities)
    about: EntryPoint | None = None

    @property
    def declared(self) -> bool:
        """True if the metadata names the plugin's schemes or verbs (it is imported lazily)."""
        return bool(self.schemes or self.commands)


def discover(blocked: Iterable[str] = ()) -> dict[str, PluginSpec]:
    """Read the four entry-point groups; skip the plugins named in ``blocked``.

    A scheme or verb entry whose module no plugin entry names is ignored here; the plugin
    that does serve it is then found undeclaring it when imported (a :class:`PluginError`
    from the host, see :meth:`PluginSpec.declared`)."""
    found = read_entry_points((PLUGIN_GROUP, SCHEME_GROUP, COMMAND_GROUP, ABOUT_GROUP))
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
    about: dict[str, EntryPoint] = {}
    for ep in (e for e in found if e.group == ABOUT_GROUP):
        about.setdefault(ep.name, ep)
    return {
        ep.name: PluginSpec(
            ep.name,
            ep,
            tuple(schemes.get(ep.name, ())),
            tuple(commands.get(ep.name, ())),
            about.get(ep.name),
        )
        for ep in plugins
        if ep.name not in skip
    }
