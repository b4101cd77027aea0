"""What the ``http`` plugin serves, read by swapio without importing the plugin.

Named by the ``swapio.about`` entry point (``pyproject.toml``); swapio runs this file on its
own, so it imports nothing.  It is the one place these facts are written:
:func:`swapio_http.plugin.swapio_backend` returns them (docs/plugin-authors.md).
"""

NAME = "http"
VERSION = "0.1.0"
SUMMARY = "swapio page server over HTTP (`swapio serve`), any backend on the far side"
CAPABILITIES = ("durable", "discard", "create", "reserve")
