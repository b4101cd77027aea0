"""Output helpers: one JSON document on stdout for ``--json``, human text otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def emit_json(document: Any) -> None:
    """Write ``document`` as one JSON document on stdout."""
    click.echo(json.dumps(document, indent=2, sort_keys=False))


def stderr_is_tty() -> bool:
    """Progress output goes to stderr, and only when it is a terminal."""
    return sys.stderr.isatty()
