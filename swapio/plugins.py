"""Plugin discovery and area activation: the only module that touches pluggy.

Plugins come from the ``swapio`` entry-point group; swapio's built-in backends are registered
through the very same group, so nothing here special-cases them.  Environment switches (named
after pytest's and tox's):

* ``SWAPIO_DISABLE_PLUGIN_AUTOLOAD=1`` — load no entry points (register plugins by hand).
* ``SWAPIO_DISABLED_PLUGINS=a,b`` — block the named plugins (entry-point names).

A plugin that fails to import is a :class:`~swapio.errors.PluginError` naming the plugin and
its entry point; it is not silently skipped.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Any

import pluggy

from swapio import hookspecs
from swapio.area import BoundOps, CreateRequest, SwapArea
from swapio.errors import (
    LocationError,
    PluginError,
    SchemeConflictError,
)
from swapio.location import Location
from swapio.pool import PagePool

if TYPE_CHECKING:
    import click

ENTRY_POINT_GROUP = "swapio"
ENV_DISABLE_AUTOLOAD = "SWAPIO_DISABLE_PLUGIN_AUTOLOAD"
ENV_DISABLED_PLUGINS = "SWAPIO_DISABLED_PLUGINS"


@dataclass(frozen=True)
class BackendInfo:
    """A backend's self-description, returned by the ``swapio_backend`` hook.

    ``capabilities`` lists what areas of this backend can offer (``"durable"``,
    ``"discard"``, ``"create"``, ``"reserve"``); each area reports its own at activation.
    """

    name: str
    version: str
    schemes: tuple[str, ...]
    summary: str = ""
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Backend:
    """A registered backend: its info plus the plugin that provides it."""

    info: BackendInfo
    plugin_name: str
    plugin: Any


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


class PluginHost:
    """Loads plugins, owns the scheme table, activates areas.

    >>> host = PluginHost()                       # doctest: +SKIP
    >>> area = await host.activate("memory://x", create=CreateRequest(pages=16))
    """

    def __init__(
        self,
        *,
        autoload: bool | None = None,
        blocked: Iterable[str] = (),
        pool: PagePool | None = None,
    ) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        if autoload is None:
            autoload = os.environ.get(ENV_DISABLE_AUTOLOAD, "") in ("", "0")
        for name in (*_env_list(ENV_DISABLED_PLUGINS), *blocked):
            self._pm.set_blocked(name)
        self._pool = pool
        self._backends: dict[str, Backend] | None = None
        if autoload:
            self._load_entry_points()

    # --- registration -----------------------------------------------------------------

    def _load_entry_points(self) -> None:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            if self._pm.is_blocked(ep.name) or self._pm.has_plugin(ep.name):
                continue
            plugin = self._import(ep)
            self.register(plugin, ep.name)

    @staticmethod
    def _import(ep: EntryPoint) -> Any:
        try:
            return ep.load()
        except Exception as exc:  # any import failure is the plugin's, reported as such
            raise PluginError(
                f"plugin {ep.name!r} (entry point {ep.value!r}) failed to import: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def register(self, plugin: Any, name: str) -> None:
        """Register ``plugin`` under ``name`` (as an entry point would)."""
        if self._pm.is_blocked(name):
            return
        try:
            self._pm.register(plugin, name=name)
            self._pm.check_pending()
        except pluggy.PluginValidationError as exc:
            if self._pm.has_plugin(name):
                self._pm.unregister(name=name)
            raise PluginError(f"plugin {name!r} violates the swapio hook spec: {exc}") from exc
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} could not be registered: {exc}") from exc
        try:
            self._check_async_rules(name)
        except PluginError:
            self._pm.unregister(name=name)
            raise
        self._backends = None

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as ``name``."""
        self._pm.unregister(name=name)
        self._backends = None

    def _impls(self, hook: str, name: str) -> list[pluggy.HookImpl]:
        plugin = self._pm.get_plugin(name)
        caller = getattr(self._pm.hook, hook)
        return [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]

    def _check_async_rules(self, name: str) -> None:
        for hook in hookspecs.REGISTRATION_HOOKS:
            for impl in self._impls(hook, name):
                if inspect.iscoroutinefunction(impl.function):
                    raise PluginError(f"plugin {name!r}: {hook} must be synchronous, not async def")
        for hook in hookspecs.DATA_HOOKS:
            for impl in self._impls(hook, name):
                if not inspect.iscoroutinefunction(impl.function):
                    raise PluginError(f"plugin {name!r}: {hook} must be an async def")

    # --- backends ---------------------------------------------------------------------

    def _table(self) -> dict[str, Backend]:
        if self._backends is not None:
            return self._backends
        table: dict[str, Backend] = {}
        for name, plugin in self._pm.list_name_plugin():
            if name is None:
                continue
            results = [impl.function() for impl in self._impls("swapio_backend", name)]
            for info in results:
                if info is None:
                    continue
                if not isinstance(info, BackendInfo):
                    raise PluginError(
                        f"plugin {name!r}: swapio_backend returned {type(info).__name__}, "
                        "expected BackendInfo"
                    )
                missing = [h for h in hookspecs.REQUIRED_DATA_HOOKS if not self._impls(h, name)]
                if missing:
                    raise PluginError(
                        f"plugin {name!r} serves {', '.join(info.schemes)} but does not "
                        f"implement {', '.join(missing)}"
                    )
                for scheme in info.schemes:
                    other = table.get(scheme)
                    if other is not None:
                        raise SchemeConflictError(
                            f"URL scheme {scheme!r} is claimed by two plugins: "
                            f"{other.plugin_name!r} and {name!r} (block one with "
                            f"{ENV_DISABLED_PLUGINS})"
                        )
                    table[scheme] = Backend(info, name, plugin)
        self._backends = table
        return table

    def backends(self) -> list[Backend]:
        """Every registered backend, once each, sorted by name."""
        seen: dict[str, Backend] = {}
        for backend in self._table().values():
            seen.setdefault(backend.plugin_name, backend)
        return sorted(seen.values(), key=lambda b: b.info.name)

    def schemes(self) -> list[str]:
        """Every URL scheme some plugin serves."""
        return sorted(self._table())

    def owner(self, scheme: str) -> Backend:
        """The backend owning ``scheme``, or :class:`LocationError` listing the known ones."""
        table = self._table()
        try:
            return table[scheme]
        except KeyError:
            known = ", ".join(sorted(table)) or "none installed"
            raise LocationError(
                f"no backend serves URL scheme {scheme!r} (known schemes: {known})"
            ) from None

    def bind(self, scheme: str) -> BoundOps:
        """Resolve the owner of ``scheme`` once and bind its data-hook implementations."""
        backend = self.owner(scheme)
        found: dict[str, Any] = {}
        for hook in hookspecs.DATA_HOOKS:
            impls = self._impls(hook, backend.plugin_name)
            found[hook] = impls[0].function if impls else None
        return BoundOps(
            plugin_name=backend.plugin_name,
            swapfile=found["swapfile"],
            swap_out=found["swap_out"],
            swap_in=found["swap_in"],
            swap_discard=found["swap_discard"],
        )

    @property
    def pool(self) -> PagePool:
        """The pool areas use when the caller passes none (accounting only, never waits)."""
        if self._pool is None:
            self._pool = PagePool.unbounded()
        return self._pool

    async def activate(
        self,
        url: str | Location,
        *,
        create: CreateRequest | None = None,
        pool: PagePool | None = None,
    ) -> SwapArea:
        """Activate the swap area at ``url`` (creating it when ``create`` is given)."""
        location = url if isinstance(url, Location) else Location.parse(url)
        ops = self.bind(location.scheme)
        area = SwapArea(location, ops, pool or self.pool, host=self, create=create)
        await area._activate()
        return area

    # --- CLI --------------------------------------------------------------------------

    def add_commands(self, cli: click.Group) -> None:
        """Let every plugin add its CLI verbs."""
        self._pm.hook.swapio_add_commands(cli=cli)

    def plugin_names(self) -> Iterator[str]:
        """Names of the registered plugins."""
        for name, _ in self._pm.list_name_plugin():
            if name is not None:
                yield name
