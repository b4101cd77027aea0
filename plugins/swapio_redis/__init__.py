"""The ``redis`` backend: swap areas in Redis or Redis Cluster (see ``docs/redis.md``).

The names below are imported on first use (PEP 562): importing this package, as the plugin
host does for ``swapio backends``, must not import redis-py.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swapio_redis._layout import Layout, Meta
    from swapio_redis._options import RedisOptions, parse_options
    from swapio_redis._store import RedisArea

__all__ = ["Layout", "Meta", "RedisArea", "RedisOptions", "parse_options"]

_HOMES = {
    "Layout": "swapio_redis._layout",
    "Meta": "swapio_redis._layout",
    "RedisOptions": "swapio_redis._options",
    "parse_options": "swapio_redis._options",
    "RedisArea": "swapio_redis._store",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'swapio_redis' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
