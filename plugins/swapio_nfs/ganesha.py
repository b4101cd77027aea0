"""Run nfs-ganesha (VFS FSAL, NFSv3 over TCP) on loopback: for tests and benchmarks.

``GaneshaServer(root)`` writes a config with a temporary read-write export (and a read-only
one) on free non-standard ports, starts ``rpcbind -w`` if none answers on port 111 (ganesha
registers with it and exits otherwise), and starts ``ganesha.nfsd -F`` in the foreground.
:meth:`~GaneshaServer.kill`, :meth:`~GaneshaServer.start`, :meth:`~GaneshaServer.pause` and
:meth:`~GaneshaServer.resume` drive fault tests.  Anything that prevents the server from
starting raises :class:`GaneshaError` with the server's log.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


class GaneshaError(RuntimeError):
    """nfs-ganesha (or rpcbind) is missing or could not start."""


READY_LINE = "NFS SERVER INITIALIZED"
START_TIMEOUT = 60.0
PORT_TIMEOUT = 10.0

CONFIG = """\
NFS_CORE_PARAM {{
    Protocols = 3; NFS_Port = {nfsport}; MNT_Port = {mountport}; NLM_Port = {nlmport};
    Enable_NLM = false; Enable_RQUOTA = false; Bind_addr = 127.0.0.1;
}}
NFS_KRB5 {{ Active_krb5 = false; }}
NFSV4 {{ Grace_Period = 1; Lease_Lifetime = 1; }}
EXPORT {{
    Export_Id = 1; Path = {export}; Pseudo = /swapio; Protocols = 3; Transports = TCP;
    Access_Type = RW; Squash = No_Root_Squash; FSAL {{ Name = VFS; }}
}}
EXPORT {{
    Export_Id = 2; Path = {ro_export}; Pseudo = /swapio-ro; Protocols = 3; Transports = TCP;
    Access_Type = RO; Squash = No_Root_Squash; FSAL {{ Name = VFS; }}
}}
LOG {{ Default_Log_Level = EVENT; }}
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _need(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    if path is None:
        raise GaneshaError(
            f"{tool} is not installed; the NFS tests need a real server "
            "(Debian packages nfs-ganesha, nfs-ganesha-vfs, rpcbind, libnfs-utils; "
            "see scripts/setup-system.sh)"
        )
    return path


def ensure_rpcbind() -> None:
    """Start ``rpcbind -w`` unless one already answers on 127.0.0.1:111."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 111), timeout=1):
        return
    rpcbind = _need("rpcbind")
    proc = subprocess.run([rpcbind, "-w"], capture_output=True, text=True, check=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", 111), timeout=1):
            return
        time.sleep(0.1)
    raise GaneshaError(f"rpcbind did not start (rc={proc.returncode}): {proc.stderr.strip()}")


class GaneshaServer:
    """One nfs-ganesha process on loopback, restartable for fault tests."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.export = root / "export"
        self.ro_export = root / "export-ro"
        self.export.mkdir()
        self.ro_export.mkdir()
        self.nfsport = _free_port()
        self.mountport = _free_port()
        self.nlmport = _free_port()
        self.conf = root / "ganesha.conf"
        self.log = root / "ganesha.log"
        self.pidfile = root / "ganesha.pid"
        self.conf.write_text(
            CONFIG.format(
                nfsport=self.nfsport,
                mountport=self.mountport,
                nlmport=self.nlmport,
                export=self.export,
                ro_export=self.ro_export,
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.host = "127.0.0.1"

    # --------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the server and wait until it is initialized; fail loudly otherwise."""
        ganesha = _need("ganesha.nfsd")
        ensure_rpcbind()
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.started_at = time.time()
        self.proc = subprocess.Popen(
            [ganesha, "-F", "-f", str(self.conf), "-L", str(self.log), "-p", str(self.pidfile)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise GaneshaError(
                    f"ganesha.nfsd exited with {self.proc.returncode}:\n{self.log_tail(offset)}"
                )
            if self.log.exists():
                with self.log.open("rb") as f:
                    f.seek(offset)
                    if READY_LINE.encode() in f.read():
                        self._wait_port(min(deadline, time.monotonic() + PORT_TIMEOUT), offset)
                        return
            time.sleep(0.05)
        self.kill()
        raise GaneshaError(
            f"ganesha.nfsd did not initialize within {START_TIMEOUT} s:\n{self.log_tail(offset)}"
        )

    def _wait_port(self, deadline: float, offset: int) -> None:
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.nfsport), timeout=1),
            ):
                return
            time.sleep(0.05)
        self.kill()
        raise GaneshaError(
            f"ganesha.nfsd initialized but does not listen on 127.0.0.1:{self.nfsport} "
            f"(bad config?):\n{self.log_tail(offset)}"
        )

    def log_tail(self, offset: int = 0, lines: int = 30) -> str:
        if not self.log.exists():
            return "(no log)"
        with self.log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def seconds_until_new_verifier(self) -> float:
        """ganesha's write verifier is its start time in whole seconds: a restart within the
        same second keeps it.  Time to wait so that a restart yields a new verifier."""
        return max(0.0, self.started_at + 1.1 - time.time())

    def stop(self) -> None:
        """SIGTERM and wait (a clean shutdown)."""
        self._signal_and_wait(signal.SIGTERM, 20)

    def kill(self) -> None:
        """SIGKILL and wait (a crash: nothing is flushed)."""
        self._signal_and_wait(signal.SIGKILL, 20)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        """Kill and start again on the same ports and export."""
        self.kill()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: the server keeps its connections but stops answering."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        # a stop reaches each thread asynchronously: wait until every thread is stopped, so
        # no request sent after pause() returns is answered
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not self._all_threads_stopped():
            time.sleep(0.001)

    def _all_threads_stopped(self) -> bool:
        assert self.proc is not None
        tasks = Path(f"/proc/{self.proc.pid}/task")
        try:
            states = [
                (t / "stat").read_text().rsplit(")", 1)[1].split()[0] for t in tasks.iterdir()
            ]
        except OSError:
            return True
        return all(state in ("T", "t", "Z", "X") for state in states)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_running(self) -> None:
        """Restart the server if a previous test left it dead or stopped."""
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            return
        self.start()

    # --------------------------------------------------------------- URLs
    def url(self, name: str, export: Path | None = None, **params: object) -> str:
        """A libnfs-style URL of ``name`` in the export (``nfsport``/``mountport`` set)."""
        base = export or self.export
        query = {"nfsport": self.nfsport, "mountport": self.mountport, **params}
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        return f"nfs://{self.host}{base}/{name}?{qs}"
