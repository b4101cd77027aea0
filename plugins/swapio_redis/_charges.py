"""Charging a command's payload to the area's page pool (``kmalloc_reserve``, ``SOCK_MEMALLOC``).

See :mod:`swapio_redis._engine` for why payloads are charged rather than received into pool
buffers (redis-py's hiredis parser allocates replies itself).
"""

from __future__ import annotations

from collections.abc import Callable

from swapio.memalloc import memalloc
from swapio.pool import PagePool, PoolBuffer


async def request_charge(pool: PagePool, nbytes: int) -> PoolBuffer:
    """The charge for a request payload (``MSET``): allocated in the caller's own context."""
    return await pool.alloc(nbytes)


def try_reply_charge(pool: PagePool, nbytes: int, on_drop: Callable[[], None]) -> PoolBuffer | None:
    """The charge for a reply payload (``MGET``), as the receive path allocates — without
    waiting; None when the caller must wait for ordinary memory (``await pool.alloc``).

    Like ``__netdev_alloc_skb`` for a ``SOCK_MEMALLOC`` socket: at once, with the reserve
    allowed, because the receive side does not know whose work the reply is; then, in the
    caller's context, the ``SOCK_MEMALLOC`` rule (``sk_filter``): a reserve-backed buffer
    (``may_keep()`` false) is only for memalloc work, so anyone else drops it (``on_drop`` is
    called) and waits for ordinary memory before asking.  The charge is taken before the
    command is sent, so a dropped charge costs no resent command.  A plain function, so the
    common case costs no coroutine.
    """
    with memalloc():
        buf = pool.try_alloc(nbytes)
    if buf is None or buf.may_keep():
        return buf
    buf.release()
    on_drop()
    return None
