"""Errors of :mod:`swapio.mapping`."""

from __future__ import annotations

from swapio.errors import SwapioError


class MappingError(SwapioError):
    """The mapping cannot work or stopped working."""


class UserfaultfdUnavailable(MappingError):
    """userfaultfd cannot be used here; the message names the cause."""


class UserfaultfdError(MappingError, OSError):
    """A userfaultfd ioctl failed (``errno`` set)."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(err, message)
        self.errno = err

    def __str__(self) -> str:
        return str(self.args[1])


class HandlerDiedError(MappingError):
    """The handler process is gone: the mapping's pages can no longer be served."""
