"""swapio hook implementations for ``nfs://`` areas (see :mod:`swapio_nfs._backend`).

URL: ``nfs://HOST[:PORT]/EXPORT/FILE?nfsport=N&mountport=N`` — libnfs conventions, so the
same URL works with ``nfs-cp`` and ``nfs-cat``.  swapio-only parameters: ``page_size``,
``timeo``, ``retrans``, ``uid``, ``gid`` (see :mod:`swapio_nfs._url`).

Completion of ``swap_out`` means the pages are on the server's stable storage: WRITE UNSTABLE
followed by a COMMIT whose write verifier matches the WRITE's (else the WRITE is repeated
with FILE_SYNC).  Areas are therefore ``durable``.
"""

from __future__ import annotations

from collections.abc import Sequence

import swapio
from swapio.area import PageBuffer, SwapArea, SwapInfo
from swapio_nfs import _about
from swapio_nfs._backend import NfsSwapFile

VERSION = _about.VERSION


@swapio.hookimpl
def swapio_backend() -> swapio.BackendInfo:
    return swapio.BackendInfo(
        name=_about.NAME,
        version=_about.VERSION,
        schemes=("nfs",),
        summary=_about.SUMMARY,
        capabilities=_about.CAPABILITIES,
    )


@swapio.hookimpl
async def swapfile(area: SwapArea, activate: bool) -> SwapInfo | None:
    if not activate:
        state: NfsSwapFile = area.private
        await state.deactivate()
        return None
    swap = await NfsSwapFile.activate(area)
    return SwapInfo(
        pages=swap.pages,
        page_size=swap.page_size,
        capabilities=swap.capabilities(area),
        private=swap,
    )


@swapio.hookimpl
async def swap_out(area: SwapArea, slot: int, pages: Sequence[PageBuffer]) -> None:
    state: NfsSwapFile = area.private
    await state.swap_out(slot, pages)


@swapio.hookimpl
async def swap_in(area: SwapArea, slot: int, pages: Sequence[memoryview]) -> None:
    state: NfsSwapFile = area.private
    await state.swap_in(slot, pages)


@swapio.hookimpl
def swapio_bench() -> Sequence[object]:
    """This backend's ``swapio bench`` targets (BenchTarget records; swapio_nfs.bench)."""
    from swapio_nfs.bench import targets  # noqa: PLC0415 (imported only when the bench runs)

    return targets()
