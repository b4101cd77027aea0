"""A swap area as real memory: a buffer larger than RAM whose pages fault in through
userfaultfd, served by a handler process that owns the area and the pager.

>>> from swapio.mapping import Mapping
>>> with Mapping("file:///var/tmp/big.swap", resident=64 << 20) as m:   # doctest: +SKIP
...     m.buffer[0:5] = b"hello"
...     m.sync()

Design and limits: ``docs/mapping.md``.
"""

from __future__ import annotations

from swapio.mapping.errors import (
    HandlerDiedError,
    MappingError,
    UserfaultfdError,
    UserfaultfdUnavailable,
)
from swapio.mapping.mapping import Mapping, write_protect_available

__all__ = [
    "HandlerDiedError",
    "Mapping",
    "MappingError",
    "UserfaultfdError",
    "UserfaultfdUnavailable",
    "write_protect_available",
]
