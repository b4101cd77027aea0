"""swapio's page server (``swapio serve``) and its client, the ``http`` backend.

See ``docs/http.md``.  The wire format lives in :mod:`swapio_http._wire` (sans-I/O).
"""

from __future__ import annotations

from swapio_http._auth import TokenSet
from swapio_http._wire import Limits
from swapio_http.client import ClientOptions, IncompleteBatchError, PageClient, PageServerError
from swapio_http.server import RunningServer, ServerConfig, build_app, start_server

__all__ = [
    "ClientOptions",
    "IncompleteBatchError",
    "Limits",
    "PageClient",
    "PageServerError",
    "RunningServer",
    "ServerConfig",
    "TokenSet",
    "build_app",
    "start_server",
]
