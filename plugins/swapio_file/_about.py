"""What the ``file`` plugin serves, read by swapio without importing the plugin.

Named by the ``swapio.about`` entry point (``pyproject.toml``); swapio runs this file on its
own, so it imports nothing.  It must say what :func:`swapio_file.plugin.swapio_backend`
returns (the host checks when it imports the plugin; see docs/plugin-authors.md).
"""

NAME = "file"
VERSION = "0.1.0"
SUMMARY = "regular file or block device, vectored I/O off the event loop"
CAPABILITIES = ("durable", "discard", "create")
