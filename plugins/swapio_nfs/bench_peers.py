"""The NFS backend's peers in ``swapio bench``: ``nfs-cp`` (libnfs, C) and ``pyNfsClient``.

Same server, same run, same page count as the backend:

* ``nfs-cp`` copies ``pages`` pages to a file on the export (seq-out) and back (seq-in): one
  process per direction, so only throughput is reported (no per-call latency).
* ``pyNfsClient`` writes the same pages one 4 KiB ``WRITE`` (UNSTABLE) at a time followed by
  one ``COMMIT`` (seq-out), and reads random pages one ``READ`` at a time (rand-in): a user
  of that library does exactly this.  Each call's latency is recorded.

The export is named by its root directory (its MOUNT path) in libnfs form:
``nfs://HOST/EXPORT?nfsport=N&mountport=N``.  :func:`cleanup` removes a run's files from an
export the bench did not start (NFSv3 REMOVE, RFC 1813 section 3.3.12).
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swapio.bench.hook import BenchConfig, Kind, Result
from swapio.errors import BackendIOError, UsageError
from swapio.location import Location

_AUTH: dict[str, Any] = {
    "flavor": 1,  # AUTH_SYS (RFC 5531 appendix A)
    "machine_name": "swapio-bench",
    "uid": 0,
    "gid": 0,
    "aux_gid": [],
    "stamp": 0,
}
_TIMEOUT = 10
#: Each measurement writes its own file (a repeated run must not find the last one's).
_serial = itertools.count()
_NFS_PORT = 2049
_UNSTABLE = 0


@dataclass(frozen=True)
class NfsExport:
    """Where the export is: host, MOUNT path, ports, and the libnfs URL query."""

    host: str
    path: str
    nfsport: int
    mountport: int
    query: str

    @classmethod
    def parse(cls, url: str) -> NfsExport:
        loc = Location.parse(url)
        if loc.scheme != "nfs" or not loc.host or not loc.path.startswith("/"):
            raise UsageError(f"{url!r}: expected nfs://HOST/EXPORT?nfsport=N&mountport=N")
        nfsport = loc.query_int("nfsport", _NFS_PORT, minimum=1) or _NFS_PORT
        mountport = loc.query_int("mountport", 0, minimum=0) or 0
        if not mountport:
            raise UsageError(f"{url!r}: the NFS peers need mountport=N (no portmap lookup)")
        query = url.partition("?")[2]
        return cls(loc.host, loc.path.rstrip("/") or "/", nfsport, mountport, query)

    def url(self, name: str) -> str:
        return f"nfs://{self.host}{self.path}/{name}?{self.query}"


class PyNfs:
    """A pyNfsClient session on the export (blocking; run it in a thread)."""

    def __init__(self, export: NfsExport) -> None:
        from pyNfsClient import Mount, NFSv3  # noqa: PLC0415 (optional peer, imported on use)

        self.mount = Mount(host=export.host, port=export.mountport, timeout=_TIMEOUT, auth=_AUTH)
        self.mount.connect()
        res = self.mount.mnt(export.path, _AUTH)
        if res["status"] != 0:
            raise BackendIOError(f"pyNfsClient: MOUNT {export.path} failed: {res}", detail=res)
        self.root = res["mountinfo"]["fhandle"]
        self.nfs = NFSv3(export.host, export.nfsport, _TIMEOUT, _AUTH)
        self.nfs.connect()

    def _check(self, what: str, res: dict[str, Any]) -> dict[str, Any]:
        if res["status"] != 0:
            raise BackendIOError(f"pyNfsClient: {what} failed with status {res['status']}")
        return res

    def lookup(self, name: str) -> Any:
        return self._check(f"LOOKUP {name}", self.nfs.lookup(self.root, name, _AUTH))["resok"][
            "object"
        ]["data"]

    def names(self) -> list[str]:
        res = self.nfs.readdir(self.root, auth=_AUTH)
        out = []
        entry = res.get("resok", {}).get("reply", {}).get("entries") if res["status"] == 0 else None
        while entry:
            item = entry[0] if isinstance(entry, list) else entry
            out.append(item["name"].decode() if isinstance(item["name"], bytes) else item["name"])
            entry = item.get("nextentry")
        return out

    def remove(self, name: str) -> None:
        self.nfs.remove(self.root, name, _AUTH)

    def close(self) -> None:
        self.nfs.disconnect()
        self.mount.umnt(_AUTH)
        self.mount.disconnect()


def _nfs_cp(src: str, dst: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(["nfs-cp", src, dst], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise BackendIOError(f"nfs-cp {src} {dst} failed: {proc.stderr.strip() or proc.stdout}")
    return elapsed


def _result(target: str, workload: str, cfg: BenchConfig, pages: int, seconds: float,
            samples: Iterable[int] = (), **extra: Any) -> Result:  # fmt: skip
    return Result(target, Kind.PEER, workload, cfg.page_size, pages, seconds,
                  tuple(samples), dict(extra))  # fmt: skip


def run_nfs_cp(
    export: NfsExport, cfg: BenchConfig, uid: str, workloads: Iterable[str] = ("seq-out", "seq-in")
) -> list[Result]:
    """``nfs-cp`` of ``cfg.pages`` pages to the export (seq-out) and back (seq-in).

    The copy out also seeds the file seq-in reads, so it runs (untimed in the report) when
    only seq-in is asked for.
    """
    if shutil.which("nfs-cp") is None:
        raise UsageError("nfs-cp is not installed (Debian package libnfs-utils)")
    wanted = set(workloads)
    name = f"bench-{uid}-nfscp-{next(_serial)}.bin"
    nbytes = cfg.pages * cfg.page_size
    results = []
    with tempfile.TemporaryDirectory(prefix="swapio-nfscp-") as tmp:
        local, back = Path(tmp) / "out.bin", Path(tmp) / "in.bin"
        local.write_bytes(os.urandom(nbytes))
        out = _nfs_cp(str(local), export.url(name))
        if "seq-out" in wanted:
            results.append(_result("nfs-cp", "seq-out", cfg, cfg.pages, out, bytes=nbytes))
        if "seq-in" in wanted:
            into = _nfs_cp(export.url(name), str(back))
            if back.read_bytes() != local.read_bytes():
                raise BackendIOError("nfs-cp read back different bytes than it wrote")
            results.append(_result("nfs-cp", "seq-in", cfg, cfg.pages, into, bytes=nbytes))
    return results


def run_pynfsclient(
    export: NfsExport, cfg: BenchConfig, uid: str, workloads: Iterable[str] = ("seq-out", "rand-in")
) -> list[Result]:
    """pyNfsClient: per-page UNSTABLE writes + COMMIT (seq-out), random one-page reads (rand-in).

    The writes also give rand-in its data, so they run when only rand-in is asked for.
    """
    wanted = set(workloads)
    name = f"bench-{uid}-pynfs-{next(_serial)}.bin"
    # The file is made with nfs-cp when available (pyNfsClient's CREATE needs more ceremony).
    with tempfile.NamedTemporaryFile() as seed:
        seed.write(bytes(cfg.pages * cfg.page_size))
        seed.flush()
        _nfs_cp(seed.name, export.url(name))
    client = PyNfs(export)
    try:
        fh = client.lookup(name)
        page = os.urandom(cfg.page_size)
        samples: list[int] = []
        start = time.perf_counter()
        deadline = start + cfg.seconds
        for slot in range(cfg.pages):
            t0 = time.perf_counter_ns()
            client._check("WRITE", client.nfs.write(fh, slot * cfg.page_size, cfg.page_size,
                                                    page, _UNSTABLE, _AUTH))  # fmt: skip
            samples.append(time.perf_counter_ns() - t0)
            if time.perf_counter() > deadline:
                break
        client._check("COMMIT", client.nfs.commit(fh, 0, 0, _AUTH))
        out = _result("pynfsclient", "seq-out", cfg, len(samples),
                      time.perf_counter() - start, samples, qd=1)  # fmt: skip
        rng = random.Random(cfg.seed + 1)
        written = max(1, len(samples))
        samples = []
        start = time.perf_counter()
        deadline = start + cfg.seconds
        for _ in range(cfg.ops):
            slot = rng.randrange(written)
            t0 = time.perf_counter_ns()
            res = client._check("READ", client.nfs.read(fh, slot * cfg.page_size, cfg.page_size,
                                                        _AUTH))  # fmt: skip
            samples.append(time.perf_counter_ns() - t0)
            if len(res["resok"]["data"]) != cfg.page_size:
                raise BackendIOError("pyNfsClient: short READ")
            if time.perf_counter() > deadline:
                break
        into = _result("pynfsclient", "rand-in", cfg, len(samples),
                       time.perf_counter() - start, samples, qd=1)  # fmt: skip
    finally:
        client.close()
    return [r for r in (out, into) if r.workload in wanted]


def cleanup(export: NfsExport, uid: str) -> None:
    """Remove every file this run created on the export (names containing ``uid``)."""
    client = PyNfs(export)
    try:
        for name in client.names():
            if uid in name:
                client.remove(name)
    finally:
        client.close()
