"""Which targets, peers and workloads exist: everything the ``swapio_bench`` hook contributed.

The core knows no backend by name.  Each plugin's ``swapio_bench()`` returns
:class:`~swapio.bench.hook.BenchTarget` records; this module collects them (checking their
shape and that names are unique), says which are runnable on this machine (the software a
target needs is installed) and lists the valid names for the command line's errors.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from swapio.bench.hook import BenchOption, BenchPeer, BenchTarget, BenchWorkload
from swapio.bench.mapping import MAPPING_WORKLOADS
from swapio.bench.paging import PAGING_WORKLOADS
from swapio.bench.workloads import DEVICE_WORKLOADS
from swapio.errors import PluginError
from swapio.plugins import PluginHost

HOOK = "swapio_bench"
#: The workloads every backend runs, in run order (``pressure`` last: it re-activates).
CORE_WORKLOADS: tuple[str, ...] = (*DEVICE_WORKLOADS, *PAGING_WORKLOADS)
#: Workloads every backend may run, only when named with ``-w`` (not in the default run).
ON_REQUEST_WORKLOADS: tuple[str, ...] = tuple(MAPPING_WORKLOADS)
#: Where system daemons live when PATH (a non-root user's) leaves them out.
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


@dataclass(frozen=True)
class Registry:
    """Every contributed target (by name), with the plugin that contributed it."""

    targets: dict[str, BenchTarget]
    plugin_of: dict[str, str]
    installed_backends: tuple[str, ...]

    @property
    def peers(self) -> dict[str, tuple[BenchTarget, BenchPeer]]:
        """Every peer by name, with the target it is compared with."""
        return {p.name: (t, p) for t in self.targets.values() for p in t.peers}

    @property
    def own_workloads(self) -> dict[str, tuple[BenchTarget, BenchWorkload]]:
        """Workloads a plugin runs itself (``resync-1pct``), with their target."""
        return {w.name: (t, w) for t in self.targets.values() for w in t.workloads}

    @property
    def workload_names(self) -> list[str]:
        return [*CORE_WORKLOADS, *ON_REQUEST_WORKLOADS, *self.own_workloads]

    @property
    def options(self) -> list[BenchOption]:
        """Command-line options the targets declare, once per name."""
        seen: dict[str, BenchOption] = {}
        for target in self.targets.values():
            for option in target.options:
                seen.setdefault(option.name, option)
        return list(seen.values())

    def of_backend(self, backend: str) -> list[BenchTarget]:
        return [t for t in self.targets.values() if t.backend == backend]


def collect(host: PluginHost) -> Registry:
    """Call every plugin's ``swapio_bench``; a malformed contribution is a PluginError."""
    installed = tuple(b.info.name for b in host.backends())
    targets: dict[str, BenchTarget] = {}
    plugin_of: dict[str, str] = {}
    try:
        contributions = host.collect(HOOK)
    except PluginError:
        raise  # a plugin that failed to load says so itself
    except Exception as exc:  # the hook contract says: return, never raise
        raise PluginError(f"a plugin's {HOOK} hook failed: {type(exc).__name__}: {exc}") from exc
    for plugin, contributed in contributions:
        for target in _as_targets(plugin, contributed):
            other = plugin_of.get(target.name)
            if other is not None:
                raise PluginError(
                    f"bench target {target.name!r} is contributed by two plugins: "
                    f"{other!r} and {plugin!r}"
                )
            targets[target.name] = target
            plugin_of[target.name] = plugin
    return Registry(targets, plugin_of, installed)


def _as_targets(plugin: str, contributed: object) -> list[BenchTarget]:
    if contributed is None:
        return []
    items = contributed if isinstance(contributed, Sequence) else [contributed]
    bad = [type(i).__name__ for i in items if not isinstance(i, BenchTarget)]
    if bad:
        raise PluginError(
            f"plugin {plugin!r}: {HOOK} returned {', '.join(bad)}, expected BenchTarget records"
        )
    return list(items)


def find_executable(name: str) -> str | None:
    """``name`` on PATH, or in the sbin directories (daemons such as ``rpcbind``)."""
    return shutil.which(name) or shutil.which(name, path=SBIN)


def missing(needs: Iterable[str], modules: Iterable[str] = (), hint: str = "") -> str | None:
    """Why a target or peer cannot run here (absent software, with the hint), or None."""
    absent = [n for n in needs if find_executable(n) is None]
    absent += [m for m in modules if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    what = ", ".join(absent)
    return f"{what} not installed" + (f" ({hint})" if hint else "")
