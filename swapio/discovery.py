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

Reading the metadata is all this module does; two declared plugins claiming one scheme are
found here, before either is imported (:func:`metadata_conflicts`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

PLUGIN_GROUP = "swapio"
SCHEME_GROUP = "swapio.schemes"
COMMAND_GROUP = "swapio.commands"


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
    found = entry_points()
    skip = set(blocked)
    plugins = sorted(found.select(group=PLUGIN_GROUP), key=lambda e: e.name)
    by_module: dict[str, str] = {}
    for ep in plugins:
        by_module.setdefault(ep.value.strip(), ep.name)
    schemes: dict[str, list[str]] = {}
    commands: dict[str, list[str]] = {}
    for group, table in ((SCHEME_GROUP, schemes), (COMMAND_GROUP, commands)):
        for ep in sorted(found.select(group=group), key=lambda e: e.name):
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


def metadata_conflicts(specs: Iterable[PluginSpec]) -> list[tuple[str, str, str]]:
    """``(scheme, first plugin, second plugin)`` for every scheme two declared plugins claim."""
    owner: dict[str, str] = {}
    conflicts: list[tuple[str, str, str]] = []
    for spec in specs:
        for scheme in spec.schemes:
            other = owner.setdefault(scheme, spec.name)
            if other != spec.name:
                conflicts.append((scheme, other, spec.name))
    return conflicts
