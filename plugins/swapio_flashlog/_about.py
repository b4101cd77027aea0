"""What the ``flashlog`` plugin serves, read by swapio without importing the plugin.

Named by the ``swapio.about`` entry point (``pyproject.toml``); swapio runs this file on its
own, so it imports nothing.  It is the one place these facts are written:
:func:`swapio_flashlog.plugin.swapio_backend` returns them (docs/plugin-authors.md).
"""

NAME = "flashlog"
VERSION = "0.1.0"
SUMMARY = "JFFS2-format log on a simulated NOR flash image (mtd-utils/jefferson readable)"
CAPABILITIES = ("durable", "discard", "create", "reserve")
