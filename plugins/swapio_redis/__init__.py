"""The ``redis`` backend: swap areas in Redis or Redis Cluster (see ``docs/redis.md``)."""

from __future__ import annotations

from swapio_redis._layout import Layout, Meta
from swapio_redis._options import RedisOptions, parse_options
from swapio_redis._store import RedisArea

__all__ = ["Layout", "Meta", "RedisArea", "RedisOptions", "parse_options"]
