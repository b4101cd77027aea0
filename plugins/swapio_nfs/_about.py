"""What the ``nfs`` plugin serves, read by swapio without importing the plugin.

Named by the ``swapio.about`` entry point (``pyproject.toml``); swapio runs this file on its
own, so it imports nothing.  It is the one place these facts are written:
:func:`swapio_nfs.plugin.swapio_backend` returns them (docs/plugin-authors.md).
"""

NAME = "nfs"
VERSION = "0.1.0"
SUMMARY = "swap file on an NFSv3 server (ONC RPC over TCP, UNSTABLE writes + COMMIT)"
CAPABILITIES = ("durable", "create", "reserve")
