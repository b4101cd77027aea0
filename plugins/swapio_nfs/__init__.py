"""swapio's NFS backend: NFSv3 over ONC RPC on asyncio (``nfs://`` URLs, libnfs conventions).

The protocol core (:mod:`~swapio_nfs._xdr`, :mod:`~swapio_nfs._rpc`, :mod:`~swapio_nfs._record`,
:mod:`~swapio_nfs._portmap`, :mod:`~swapio_nfs._mount`, :mod:`~swapio_nfs._nfs3`) is
sans-I/O; :mod:`~swapio_nfs._transport` and :mod:`~swapio_nfs._client` are the asyncio shell;
:mod:`swapio_nfs.plugin` implements the swapio hooks.
"""

from __future__ import annotations

from swapio_nfs._errors import (
    MalformedReplyError,
    MountError,
    NfsError,
    NfsStaleError,
    NfsUrlError,
    RecordMarkError,
    RpcConnectionError,
    RpcError,
    RpcTimeoutError,
    XdrDecodeError,
)

__all__ = [
    "MalformedReplyError",
    "MountError",
    "NfsError",
    "NfsStaleError",
    "NfsUrlError",
    "RecordMarkError",
    "RpcConnectionError",
    "RpcError",
    "RpcTimeoutError",
    "XdrDecodeError",
]
