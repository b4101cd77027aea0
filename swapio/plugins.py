"""Plugin discovery and area activation: the only module that touches pluggy.

Plugins come from the ``swapio`` entry-point group; swapio's built-in backends are registered
through the very same group, so nothing here special-cases them.  A plugin whose metadata
declares its URL schemes and CLI verbs (:mod:`swapio.discovery`) is imported only when one of
its schemes is activated, one of its verbs runs, or a caller asks for every backend; a plugin
that declares neither is imported the first time the host needs to know who serves a scheme.
A declared plugin that also names an ``about`` module is listed by :meth:`PluginHost.describe`
(``swapio backends``) from that module alone; :meth:`PluginHost.load_all` (``swapio backends
--check``, ``swapio bench``) checks that each plugin's ``swapio_backend`` matches it.
Environment switches (named after pytest's and tox's):

* ``SWAPIO_DISABLE_PLUGIN_AUTOLOAD=1`` — load no entry points (register plugins by hand).
* ``SWAPIO_DISABLED_PLUGINS=a,b`` — block the named plugins (entry-point names).

A plugin that fails to import is a :class:`~swapio.errors.PluginError` naming the plugin, its
entry point and ``SWAPIO_DISABLED_PLUGINS``, raised by whatever needs that plugin (and only
by that); it is not silently skipped.  Two plugins claiming one scheme is a
:class:`~swapio.errors.SchemeConflictError` naming both — found in the metadata, before either
is imported, when both declare their schemes.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from swapio import hookspecs
from swapio.area import BoundOps, Capabilities, CreateRequest, SwapArea
from swapio.discovery import (
    ABOUT_GROUP,
    COMMAND_GROUP,
    SCHEME_GROUP,
    AboutError,
    PluginSpec,
    discover,
    load_about,
)
from swapio.errors import (
    LocationError,
    PluginError,
    SchemeConflictError,
)
from swapio.location import Location

if TYPE_CHECKING:
    import click

    from swapio.discovery import EntryPoint
    from swapio.pool import PagePool

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

    def __post_init__(self) -> None:
        # a typo ("dicsard") is a PluginError naming the known names (swapio.area.CAPABILITY_NAMES)
        object.__setattr__(
            self, "capabilities", Capabilities.check_names(self.capabilities, self.name)
        )


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
        blocked_names = [*_env_list(ENV_DISABLED_PLUGINS), *blocked]
        for name in blocked_names:
            self._pm.set_blocked(name)
        self._pool = pool
        #: installed plugins as their metadata describes them; imported on demand
        self._specs: dict[str, PluginSpec] = discover(blocked_names) if autoload else {}
        self._infos: dict[str, tuple[BackendInfo, ...]] = {}
        self._claims: dict[str, str] | None = None
        #: what declared plugins' ``about`` modules say, read once each
        self._abouts: dict[str, BackendInfo] = {}

    # --- registration -----------------------------------------------------------------

    def _load(self, name: str) -> None:
        """Import and register the installed plugin ``name`` unless that is done already."""
        if self._pm.has_plugin(name) or self._pm.is_blocked(name):
            return
        spec = self._specs[name]
        self.register(self._import(spec.entry_point), name)
        if spec.declared:
            self._check_declared_schemes(spec)
        if spec.about is not None and spec.name in self._abouts:
            self._check_about(spec)  # what this process listed must be what it runs

    def _load_undeclared(self) -> None:
        """Import the plugins whose metadata does not say what they serve."""
        for spec in list(self._specs.values()):
            if not spec.declared:
                self._load(spec.name)

    def load_all(self) -> None:
        """Import every installed plugin (what a broadcast to every plugin needs), and check
        each against its ``about`` module (a plugin imported for one scheme or verb is
        checked only if this process listed it from that module: reading it costs a file)."""
        for name in list(self._specs):
            self._load(name)
            spec = self._specs[name]
            if spec.about is not None and self._pm.has_plugin(name):
                self._check_about(spec)

    @staticmethod
    def _import(ep: EntryPoint) -> Any:
        try:
            return ep.load()
        except Exception as exc:  # any import failure is the plugin's, reported as such
            raise PluginError(
                f"plugin {ep.name!r} (entry point {ep.value!r}) failed to import: "
                f"{type(exc).__name__}: {exc} (fix it, or block it with "
                f"{ENV_DISABLED_PLUGINS}={ep.name})"
            ) from exc

    def _check_declared_schemes(self, spec: PluginSpec) -> None:
        """A declared plugin must serve exactly the schemes its metadata names."""
        try:
            served = sorted({s for info in self._backend_infos(spec.name) for s in info.schemes})
        except PluginError:
            self.unregister(spec.name)
            raise
        declared = sorted(spec.schemes)
        if served != declared:
            self.unregister(spec.name)
            raise PluginError(
                f"plugin {spec.name!r} serves URL scheme(s) {', '.join(served) or 'none'} but "
                f"its entry-point metadata ({SCHEME_GROUP}) declares "
                f"{', '.join(declared) or 'none'}; fix its pyproject.toml and reinstall it"
            )

    def _about(self, spec: PluginSpec) -> BackendInfo:
        """The backend ``spec``'s ``about`` module describes, with the declared schemes
        (read once; nothing of the plugin is imported).  :class:`PluginError` if unreadable."""
        cached = self._abouts.get(spec.name)
        if cached is not None:
            return cached
        assert spec.about is not None
        try:
            about = load_about(spec.about)
        except AboutError as exc:
            raise PluginError(
                f"plugin {spec.name!r} (entry point {spec.about.value!r} in {ABOUT_GROUP}): "
                f"{exc} (fix it, or block it with {ENV_DISABLED_PLUGINS}={spec.name})"
            ) from exc
        info = BackendInfo(
            about.name, about.version, spec.schemes, about.summary, about.capabilities
        )
        self._abouts[spec.name] = info
        return info

    def _check_about(self, spec: PluginSpec) -> None:
        """An imported plugin must describe itself as its ``about`` module does."""
        try:
            said = self._about(spec)
            served = self._backend_infos(spec.name)
        except PluginError:
            self.unregister(spec.name)
            raise
        if len(served) == 1 and served[0] == said:
            return
        self.unregister(spec.name)
        got = served[0] if served else None
        diff = (
            ", ".join(
                f"{field} {getattr(got, field)!r} (about: {getattr(said, field)!r})"
                for field in ("name", "version", "schemes", "summary", "capabilities")
                if getattr(got, field) != getattr(said, field)
            )
            if got is not None
            else "no backend"
        )
        module = spec.about.value if spec.about is not None else "?"
        raise PluginError(
            f"plugin {spec.name!r}: swapio_backend returns {diff}, but its about module "
            f"{module!r} ({ABOUT_GROUP}) says otherwise; fix one of them and reinstall it"
        )

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
        self._forget(name)

    def unregister(self, name: str) -> None:
        """Remove the plugin registered as ``name``."""
        self._pm.unregister(name=name)
        self._forget(name)

    def _forget(self, name: str) -> None:
        self._infos.pop(name, None)
        self._claims = None

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

    def _backend_infos(self, name: str) -> tuple[BackendInfo, ...]:
        """The registered plugin ``name``'s ``swapio_backend`` results, checked once."""
        cached = self._infos.get(name)
        if cached is not None:
            return cached
        infos: list[BackendInfo] = []
        for impl in self._impls("swapio_backend", name):
            info = impl.function()
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
            infos.append(info)
        self._infos[name] = tuple(infos)
        return self._infos[name]

    def _scheme_owners(self) -> dict[str, str]:
        """URL scheme → plugin name: from ``swapio_backend`` for the plugins registered, from
        the metadata for declared plugins not imported yet.  A scheme claimed twice raises
        :class:`SchemeConflictError` naming both plugins."""
        if self._claims is not None:
            return self._claims
        self._load_undeclared()
        claims: dict[str, str] = {}
        registered = [name for name, _ in self._pm.list_name_plugin() if name is not None]
        pending = [
            spec for spec in self._specs.values() if spec.declared and spec.name not in registered
        ]
        for name, schemes in [
            *((n, [s for i in self._backend_infos(n) for s in i.schemes]) for n in registered),
            *((spec.name, list(spec.schemes)) for spec in pending),
        ]:
            for scheme in schemes:
                other = claims.setdefault(scheme, name)
                if other != name:
                    raise SchemeConflictError(
                        f"URL scheme {scheme!r} is claimed by two plugins: {other!r} and "
                        f"{name!r} (block one with {ENV_DISABLED_PLUGINS})"
                    )
        self._claims = claims
        return claims

    def backends(self) -> list[Backend]:
        """Every backend, once each, sorted by name (imports every installed plugin)."""
        self.load_all()
        owners = self._scheme_owners()
        seen: dict[str, Backend] = {}
        for name in sorted(set(owners.values())):
            for info in self._backend_infos(name):
                seen.setdefault(name, Backend(info, name, self._pm.get_plugin(name)))
        return sorted(seen.values(), key=lambda b: b.info.name)

    def describe(self) -> list[tuple[str, BackendInfo]]:
        """``(plugin name, backend info)`` of every backend, sorted by backend name, imported
        as little as possible: a declared plugin with an ``about`` module that is not imported
        yet is described by that module; any other plugin is imported (as :meth:`backends`
        does).  Scheme conflicts raise :class:`SchemeConflictError` as everywhere."""
        owners = self._scheme_owners()
        rows: list[tuple[str, BackendInfo]] = []
        for name in sorted(set(owners.values())):
            spec = self._specs.get(name)
            if spec is not None and spec.about is not None and not self._pm.has_plugin(name):
                rows.append((name, self._about(spec)))
                continue
            self._load(name)
            rows.extend((name, info) for info in self._backend_infos(name))
        return sorted(rows, key=lambda row: row[1].name)

    def schemes(self) -> list[str]:
        """Every URL scheme some plugin serves (from metadata where declared: no import)."""
        return sorted(self._scheme_owners())

    def owner(self, scheme: str) -> Backend:
        """The backend owning ``scheme`` (importing its plugin if need be), or
        :class:`LocationError` listing the known schemes."""
        owners = self._scheme_owners()
        name = owners.get(scheme)
        if name is None:
            known = ", ".join(sorted(owners)) or "none installed"
            raise LocationError(f"no backend serves URL scheme {scheme!r} (known schemes: {known})")
        self._load(name)
        info = next(i for i in self._backend_infos(name) if scheme in i.schemes)
        return Backend(info, name, self._pm.get_plugin(name))

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
            swap_copy=found["swap_copy"],
        )

    @property
    def pool(self) -> PagePool:
        """The pool areas use when the caller passes none (:meth:`PagePool.default`: bounded,
        derived watermarks, so the reserve is live)."""
        if self._pool is None:
            from swapio.pool import PagePool  # noqa: PLC0415 - only areas need it: not --help

            self._pool = PagePool.default()
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
        """Let the plugins whose metadata names no verbs add theirs to ``cli`` now.

        Imports the plugins that declare nothing (their verbs are unknown until then); the
        verbs of declared plugins are in :meth:`declared_commands` and are built by
        :meth:`plugin_commands` when they run.
        """
        self._load_undeclared()
        for name in list(self.plugin_names()):
            spec = self._specs.get(name)
            if spec is not None and spec.declared:
                continue
            for impl in self._impls("swapio_add_commands", name):
                impl.function(cli=cli)

    def declared_commands(self) -> dict[str, str]:
        """CLI verb → plugin name, from entry-point metadata (nothing is imported)."""
        return {verb: spec.name for spec in self._specs.values() for verb in spec.commands}

    def plugin_commands(self, name: str) -> dict[str, click.Command]:
        """Import plugin ``name`` and return the verbs its ``swapio_add_commands`` adds.

        A declared plugin must add exactly the verbs its metadata names, else
        :class:`PluginError` naming the plugin and both lists.
        """
        import click  # noqa: PLC0415 - the library (no CLI) never needs click

        self._load(name)
        group = click.Group()
        for impl in self._impls("swapio_add_commands", name):
            impl.function(cli=group)
        spec = self._specs.get(name)
        if spec is not None and spec.declared and sorted(group.commands) != sorted(spec.commands):
            raise PluginError(
                f"plugin {name!r} adds verb(s) {', '.join(sorted(group.commands)) or 'none'} "
                f"but its entry-point metadata ({COMMAND_GROUP}) declares "
                f"{', '.join(sorted(spec.commands)) or 'none'}; fix its pyproject.toml and "
                "reinstall it"
            )
        return dict(group.commands)

    def collect(self, hook: str) -> list[tuple[str, Any]]:
        """Call the argument-less registration ``hook`` on every plugin.

        Returns ``(plugin name, result)`` pairs (``swapio bench`` uses it for
        ``swapio_bench``), so a caller can name the plugin behind a bad contribution.
        """
        if hook not in hookspecs.REGISTRATION_HOOKS:
            raise ValueError(f"{hook!r} is not a registration hook")
        self.load_all()  # a broadcast reaches every plugin, so every plugin is imported
        return [
            (name, impl.function())
            for name in self.plugin_names()
            for impl in self._impls(hook, name)
        ]

    def plugin_names(self) -> Iterator[str]:
        """Names of the registered plugins."""
        for name, _ in self._pm.list_name_plugin():
            if name is not None:
                yield name
