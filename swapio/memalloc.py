"""Memalloc context: the user-space twin of ``PF_MEMALLOC``.

Work that frees memory (swapping a page out) runs inside :func:`memalloc`.  Allocations made
in that context may dip into the pool's emergency reserve (``__gfp_pfmemalloc_flags`` returns
``ALLOC_NO_WATERMARKS`` for a ``PF_MEMALLOC`` task).  The flag is a :mod:`contextvars`
variable, so it follows a request into every task a backend spawns while handling it
(asyncio copies the context at task creation), just as the task flag follows kernel work.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

_MEMALLOC: contextvars.ContextVar[bool] = contextvars.ContextVar("swapio_memalloc", default=False)


def in_memalloc() -> bool:
    """Return True when the current context is doing memalloc (reclaim) work."""
    return _MEMALLOC.get()


@contextmanager
def memalloc(enabled: bool = True) -> Iterator[None]:
    """Run the body in memalloc context (``memalloc_noreclaim_save``/``restore``).

    ``memalloc(False)`` clears the flag for the body, like ``__GFP_NOMEMALLOC``.
    """
    token = _MEMALLOC.set(enabled)
    try:
        yield
    finally:
        _MEMALLOC.reset(token)
