"""What the ``file`` plugin serves, read by swapio without importing the plugin.

Named by the ``swapio.about`` entry point (``pyproject.toml``); swapio runs this file on its
own, so it imports nothing.  It is the one place these facts are written:
:func:`swapio_file.plugin.swapio_backend` returns them (docs/plugin-authors.md).
"""

NAME = "file"
VERSION = "0.1.0"
SUMMARY = "regular file or block device, vectored I/O off the event loop"
CAPABILITIES = ("durable", "discard", "create")
