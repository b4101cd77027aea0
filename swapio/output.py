"""Writing command output: one JSON document for ``--json``, human text otherwise.

Every write to stdout goes through here so that a closed or full stdout (``>&-``,
``>/dev/full``) is one clear error line and a non-zero exit, not a traceback and not a
silent success.  A reader that went away (``| head``) is handled by the CLI group.
"""

from __future__ import annotations

import sys
from typing import Any, BinaryIO, TextIO

from swapio.errors import OutputError


def _text() -> TextIO:
    if sys.stdout is None:
        raise OutputError("cannot write output: stdout is closed")
    return sys.stdout


def _binary() -> BinaryIO:
    return _text().buffer


def say(text: str) -> None:
    """Write one line of human output on stdout."""
    _flush(_text(), text + "\n")


def emit_json(document: Any) -> None:
    """Write ``document`` as one JSON document on stdout."""
    import json  # noqa: PLC0415 - only --json needs it, not every start

    _flush(_text(), json.dumps(document, indent=2) + "\n")


def emit_bytes(data: bytes) -> None:
    """Write raw page data on stdout."""
    _flush(_binary(), data)


def _flush(stream: Any, payload: Any) -> None:
    try:
        stream.write(payload)
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write output: {exc.strerror or exc}") from None


def stderr_is_tty() -> bool:
    """Progress output goes to stderr, and only when it is a terminal."""
    return sys.stderr is not None and sys.stderr.isatty()
