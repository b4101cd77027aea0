"""swapio's page server (``swapio serve``) and its client, the ``http`` backend.

See ``docs/http.md``.  The wire format lives in :mod:`swapio_http._wire` (sans-I/O).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Public names and the module each lives in.  Imported on first use (PEP 562), so loading
#: the plugin (``swapio backends``, any other scheme's command) does not import aiohttp.
_EXPORTS = {
    "TokenSet": "swapio_http._auth",
    "Limits": "swapio_http._wire",
    "ClientOptions": "swapio_http.client",
    "IncompleteBatchError": "swapio_http.client",
    "PageClient": "swapio_http.client",
    "PageServerError": "swapio_http.client",
    "RunningServer": "swapio_http.server",
    "ServerConfig": "swapio_http.server",
    "build_app": "swapio_http.server",
    "start_server": "swapio_http.server",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'swapio_http' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
