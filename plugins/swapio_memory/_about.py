"""What the ``memory`` plugin serves, read by swapio without importing the plugin.

Named by the ``swapio.about`` entry point (``pyproject.toml``); swapio runs this file on its
own, so it imports nothing.  It is the one place these facts are written:
:func:`swapio_memory.plugin.swapio_backend` returns them (docs/plugin-authors.md).
"""

NAME = "memory"
VERSION = "0.1.0"
SUMMARY = "process-local areas in RAM (not durable)"
CAPABILITIES = ("discard", "create")
