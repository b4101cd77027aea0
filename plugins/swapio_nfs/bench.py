"""The NFS backend in ``swapio bench``: its own nfs-ganesha on loopback, and its peers.

With no ``--nfs URL`` the placement starts what a user of this backend would run: rpcbind
(only if none answers on 127.0.0.1:111) and nfs-ganesha (:class:`~swapio_nfs.ganesha.
GaneshaServer`: VFS FSAL, NFSv3 over TCP, an export under the bench's directory, free
ports), and stops both afterwards.  ``--nfs URL`` (or ``$SWAPIO_BENCH_NFS``) names the root
of an export elsewhere (``nfs://HOST/EXPORT?nfsport=N&mountport=N``); nothing is started and
the run's files (``bench-<uid>*``) are removed from it at the end.

Peers: ``nfs-cp`` (libnfs's C client) and ``pynfsclient`` (pure Python), on the same server
(:mod:`swapio_nfs.bench_peers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from swapio.bench.hook import (
    BenchConfig,
    BenchOption,
    BenchPeer,
    BenchSite,
    BenchTarget,
    Durability,
    Result,
)
from swapio.errors import BackendIOError
from swapio_nfs import bench_peers
from swapio_nfs.ganesha import GaneshaServer

OPTION = "nfs"
ENV = "SWAPIO_BENCH_NFS"
INSTALL_HINT = (
    "Debian: apt-get install nfs-ganesha nfs-ganesha-vfs rpcbind (scripts/setup-system.sh)"
)
RPCBIND_PORT = 111
RPCBIND_WAIT = 10.0
_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"


def _rpcbind_answers() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", RPCBIND_PORT), 1):
        return True
    return False


def _start_rpcbind() -> subprocess.Popen[bytes] | None:
    """Start ``rpcbind -f`` (foreground: our child, stopped by us) unless one answers."""
    if _rpcbind_answers():
        return None
    exe = shutil.which("rpcbind") or shutil.which("rpcbind", path=_SBIN)
    if exe is None:
        raise BackendIOError(f"rpcbind is not installed ({INSTALL_HINT})")
    proc = subprocess.Popen(
        [exe, "-f"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + RPCBIND_WAIT
    while time.monotonic() < deadline:
        if _rpcbind_answers():
            return proc
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise BackendIOError(f"rpcbind exited with {proc.returncode}: {err}")
        time.sleep(0.05)
    _stop(proc)
    raise BackendIOError(f"rpcbind did not answer on 127.0.0.1:{RPCBIND_PORT}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    if proc.stderr is not None:
        proc.stderr.close()


@asynccontextmanager
async def _local_server(site: BenchSite) -> AsyncIterator[str]:
    """rpcbind (if needed) and nfs-ganesha on loopback; the export root URL."""
    root = site.directory / "ganesha"
    root.mkdir()
    root.chmod(0o755)
    rpcbind = await asyncio.to_thread(_start_rpcbind)
    server = GaneshaServer(root)
    try:
        await asyncio.to_thread(server.start)
        what = f"nfs-ganesha on 127.0.0.1:{server.nfsport}"
        site.started(what + (" + rpcbind" if rpcbind is not None else ""))
        yield f"nfs://{server.host}{server.export}?nfsport={server.nfsport}&mountport={server.mountport}"
    finally:
        await asyncio.to_thread(server.stop)
        if rpcbind is not None:
            await asyncio.to_thread(_stop, rpcbind)


def area_url(export_root: str, name: str) -> str:
    """``nfs://HOST/EXPORT/NAME?QUERY`` from the export root URL."""
    head, sep, query = export_root.partition("?")
    return f"{head.rstrip('/')}/{name}{sep}{query}"


def export_root(url: str) -> str:
    """The export root URL of an area URL (its directory)."""
    head, sep, query = url.partition("?")
    return f"{head.rsplit('/', 1)[0]}{sep}{query}"


async def _cleanup_remote(root: str, uid: str) -> None:
    export = bench_peers.NfsExport.parse(root)
    await asyncio.to_thread(bench_peers.cleanup, export, uid)


@asynccontextmanager
async def _place(site: BenchSite) -> AsyncIterator[str]:
    name = f"bench-{site.uid}.swap"
    given = site.options.get(OPTION)
    if given:
        try:
            yield area_url(given, name)
        finally:
            await _cleanup_remote(given, site.uid)
        return
    async with _local_server(site) as root:
        # The export lives in site.directory: the bench removes it with everything else.
        yield area_url(root, name)


async def _remove(url: str) -> None:
    """Remove the area at ``url`` (a ``--url nfs=...`` area) with NFSv3 REMOVE."""
    name = url.partition("?")[0].rsplit("/", 1)[1]
    await _cleanup_remote(export_root(url), name)


PeerRun = Callable[[bench_peers.NfsExport, BenchConfig, str, Sequence[str]], list[Result]]
Measure = Callable[[BenchSite, str, Sequence[str]], Awaitable[Sequence[Result]]]


def _peer(run: PeerRun) -> Measure:
    """A peer's ``measure``: ``run`` in a thread against the export holding the area."""

    async def measure(site: BenchSite, url: str, workloads: Sequence[str]) -> Sequence[Result]:
        export = bench_peers.NfsExport.parse(export_root(url))
        return await asyncio.to_thread(run, export, site.config, site.uid, workloads)

    return measure


PEERS = (
    BenchPeer(
        "nfs-cp",
        Durability.REMOTE,
        "libnfs's nfs-cp copying the same bytes to the same export and back",
        workloads=("seq-out", "seq-in"),
        measure=_peer(bench_peers.run_nfs_cp),
        needs=("nfs-cp",),
        install_hint="Debian: apt-get install libnfs-utils",
    ),
    BenchPeer(
        "pynfsclient",
        Durability.REMOTE,
        "pyNfsClient: one WRITE per page + COMMIT; random one-page READs, one at a time",
        workloads=("seq-out", "rand-in"),
        measure=_peer(bench_peers.run_pynfsclient),
        needs=("nfs-cp",),
        needs_modules=("pyNfsClient",),
        install_hint="pip install pyNfsClient; Debian: apt-get install libnfs-utils",
    ),
)


def targets() -> list[BenchTarget]:
    """The ``nfs`` target: nfs-ganesha on loopback unless ``--nfs URL`` points elsewhere."""
    return [
        BenchTarget(
            name="nfs",
            backend="nfs",
            durability=Durability.REMOTE,
            place=_place,
            summary="NFSv3 to nfs-ganesha (COMMIT before a swap-out completes)",
            needs=("ganesha.nfsd", "rpcbind"),
            install_hint=INSTALL_HINT,
            options=(
                BenchOption(
                    OPTION,
                    "URL",
                    "NFS export root (nfs://HOST/EXPORT?nfsport=N&mountport=N) to measure "
                    "instead of starting nfs-ganesha on loopback",
                    envvar=ENV,
                ),
            ),
            peers=PEERS,
            remove=_remove,
        )
    ]
