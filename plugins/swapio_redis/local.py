"""Start real ``redis-server`` processes on loopback: one server, or a Redis Cluster.

Used by the test suite and by ``swapio bench`` (which starts a local server when
``redis-server`` is installed).  Each server runs in the foreground of its own process, in a
directory of its own, on free ports of 127.0.0.1; :meth:`LocalRedis.kill` is ``kill -9``.
A cluster is created exactly as an operator would: ``redis-cli --cluster create ...
--cluster-replicas 1 --cluster-yes``.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Final

#: Failure detection of a test cluster (``cluster-node-timeout``, ms): failover in ~2 s.
NODE_TIMEOUT_MS: Final = 1000
_START_TIMEOUT: Final = 20.0


class LocalRedisError(RuntimeError):
    """A server or cluster could not be started; the message carries its log."""


def available() -> bool:
    """Whether ``redis-server`` and ``redis-cli`` are installed."""
    return shutil.which("redis-server") is not None and shutil.which("redis-cli") is not None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, *, cluster: bool = False) -> list[int]:
    """``count`` free consecutive-looking ports (and their +10000 cluster-bus ports)."""
    for _ in range(200):
        base = random.randint(20000, 29000)
        ports = list(range(base, base + count))
        if all(_port_free(p) and (not cluster or _port_free(p + 10000)) for p in ports):
            return ports
    raise LocalRedisError("no free ports for redis-server on 127.0.0.1")


class LocalRedis:
    """One ``redis-server`` on 127.0.0.1:``port`` with its data in ``directory``."""

    def __init__(
        self,
        directory: Path,
        port: int,
        *,
        password: str | None = None,
        cluster: bool = False,
        extra: tuple[str, ...] = (),
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``tls``: (certificate, key) PEM files; the server then speaks TLS only."""
        self.directory = directory
        self.tls = tls
        self.port = port
        self.password = password
        self.cluster = cluster
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "redis.log"

    def _args(self) -> list[str]:
        args = [
            "redis-server",
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            "--logfile", str(self.log_path),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
        ]  # fmt: skip
        if self.tls:
            cert, key = self.tls
            args += [
                "--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
            ]  # fmt: skip
        else:
            args += ["--port", str(self.port)]
        if self.password:
            args += ["--requirepass", self.password, "--masterauth", self.password]
        if self.cluster:
            args += [
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            ]  # fmt: skip
        return args + list(self.extra)

    def cli(self, *command: str, check: bool = True, timeout: float = 30.0) -> str:
        """Run ``redis-cli -p PORT COMMAND...`` and return its output."""
        args = ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port)]
        if self.tls:
            args += ["--tls", "--cacert", str(self.tls[0])]
        if self.password:
            args += ["-a", self.password, "--no-auth-warning"]
        done = subprocess.run(
            [*args, *command],
            capture_output=True,
            text=True,
            errors="surrogateescape",
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise LocalRedisError(f"redis-cli {' '.join(command)}: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            self._args(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise LocalRedisError(f"redis-server on {self.address} exited: {err}{self._log()}")
            try:
                if self.cli("PING", check=False, timeout=5).strip() == "PONG":
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.05)
        self.stop()
        raise LocalRedisError(f"redis-server on {self.address} did not answer PING{self._log()}")

    def _log(self) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-10:]
        except OSError:
            return ""
        return "\n" + "\n".join(tail)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """``kill -9`` the server (no shutdown, no save)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


class LocalCluster:
    """``masters`` masters with ``replicas`` replicas each (``redis-cli --cluster create``)."""

    def __init__(
        self, directory: Path, *, masters: int = 3, replicas: int = 1, password: str | None = None
    ) -> None:
        self.directory = directory
        self.password = password
        self.replicas = replicas
        count = masters * (1 + replicas)
        self.nodes = [
            LocalRedis(directory / str(port), port, password=password, cluster=True)
            for port in free_ports(count, cluster=True)
        ]

    @property
    def seeds(self) -> str:
        """``HOST:PORT,HOST:PORT,...`` of every node (for ``redis+cluster://``)."""
        return ",".join(node.address for node in self.nodes)

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            self.nodes[0].cli(
                "--cluster", "create", *(n.address for n in self.nodes),
                "--cluster-replicas", str(self.replicas), "--cluster-yes",
                timeout=60,
            )  # fmt: skip
            self.wait_ok()
        except BaseException:
            self.stop()
            raise

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node reports ``cluster_state:ok``, the map is agreed and
        every running replica is attached and in sync with its master."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [n for n in self.nodes if n.running]
            infos = [n.cli("CLUSTER", "INFO", check=False, timeout=5) for n in running]
            if all("cluster_state:ok" in info for info in infos):
                check = running[0].cli("--cluster", "check", running[0].address, check=False)
                roles = [n.cli("ROLE", check=False, timeout=5) for n in running]
                replicas_ok = all(
                    role.splitlines()[3:4] == ["connected"]
                    for role in roles
                    if role.startswith("slave")
                )
                if (
                    "[OK] All 16384 slots covered" in check
                    and "[ERR]" not in check
                    and replicas_ok
                    and all(self._slots_list_replicas(n) for n in running)
                ):
                    return
            time.sleep(0.1)
        raise LocalRedisError(f"cluster did not become ok within {timeout} s")

    def _slots_list_replicas(self, node: LocalRedis) -> bool:
        """``CLUSTER SLOTS`` names a replica for every range whose master has a running one."""
        running = {n.port for n in self.nodes if n.running}
        expected = sum(1 for n in self.nodes if n.running and n.cli("ROLE").startswith("slave"))
        ports = [int(x) for x in node.cli("CLUSTER", "SLOTS").split() if x.isdigit()]
        # each range lists start, end, then HOST PORT ID of its master and of each replica
        seen_replica_ports = {p for p in ports if p in running} - {
            n.port for n in self.nodes if n.running and n.cli("ROLE").startswith("master")
        }
        return len(seen_replica_ports) >= expected

    def masters(self) -> list[LocalRedis]:
        """The running nodes that are masters now (``ROLE``)."""
        return [
            n for n in self.nodes if n.running and n.cli("ROLE", check=False).startswith("master")
        ]

    def node_at(self, address: str) -> LocalRedis:
        for node in self.nodes:
            if node.address == address:
                return node
        raise KeyError(address)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def scratch_dir(prefix: str) -> Path:
    """A fresh directory for servers' data (the caller removes it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o700)
    return path
