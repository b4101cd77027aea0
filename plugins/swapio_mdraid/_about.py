"""What the ``mdraid`` plugin serves, read by swapio without importing the plugin.

Named by the ``swapio.about`` entry point (``pyproject.toml``); swapio runs this file on its
own, so it imports nothing.  It is the one place these facts are written:
:func:`swapio_mdraid.plugin.swapio_backend` returns them (docs/plugin-authors.md).
"""

NAME = "mirror"
VERSION = "0.1.0"
SUMMARY = "RAID1 over other areas with an md write-intent bitmap on another area"
CAPABILITIES = ("durable", "create")
