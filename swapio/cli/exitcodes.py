"""Exit codes of the ``swapio`` command (documented in README.md, "Exit codes").

Plugins' verbs use the same table; ``swapio bitmap resync`` adds its own mdadm-like codes on
top (see docs/bitmap-and-mirror.md).
"""

from __future__ import annotations

from swapio.errors import (
    AreaError,
    MemoryPressureError,
    PluginError,
    SwapioError,
    UsageError,
)

OK = 0
#: The operation failed: the store, the server or the protocol (BackendIOError, timeouts...).
FAILURE = 1
#: The command line or a URL is invalid (click's own usage errors use 2 as well).
USAGE = 2
#: The swap area refused: missing, already exists, wrong format, slot out of range.
AREA = 3
#: A plugin failed to load or broke the hook contract.
PLUGIN = 4
#: Memory pressure: an allocation timed out.
MEMORY = 5

#: (code, meaning) exactly as README.md's "Exit codes" table words them (a test keeps the two
#: equal); the manual pages' EXIT STATUS section.
TABLE = (
    (OK, "success"),
    (FAILURE, "the operation failed: the store, server or protocol (`BackendIOError`, timeouts)"),
    (
        USAGE,
        "invalid command line, URL, size or input length (`UsageError`; click's usage errors too)",
    ),
    (AREA, "the area refused: missing, already exists, wrong format or holes, slot out of range"),
    (PLUGIN, "a plugin failed to load or broke the hook contract"),
    (MEMORY, "memory pressure: an allocation timed out, or a `memory://` area larger than RAM"),
)


def for_error(exc: SwapioError) -> int:
    """The exit code for a swapio error."""
    if isinstance(exc, UsageError):
        return USAGE
    if isinstance(exc, AreaError):
        return AREA
    if isinstance(exc, PluginError):
        return PLUGIN
    if isinstance(exc, MemoryPressureError):
        return MEMORY
    return FAILURE
