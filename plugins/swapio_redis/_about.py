"""What the ``redis`` plugin serves, read by swapio without importing the plugin.

Named by the ``swapio.about`` entry point (``pyproject.toml``); swapio runs this file on its
own, so it imports nothing.  It is the one place these facts are written:
:func:`swapio_redis.plugin.swapio_backend` returns them (docs/plugin-authors.md).
"""

NAME = "redis"
VERSION = "0.1.0"
SUMMARY = "pages in Redis or Redis Cluster (sharded, replicated remote memory)"
CAPABILITIES = ("durable", "discard", "create", "reserve")
