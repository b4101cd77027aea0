"""Bad credentials, a missing node and foreign data: one error line, the README exit code,
and nothing changed on the servers.  The CLI runs as a real subprocess."""

from __future__ import annotations

import subprocess
import sys

import pytest
from swapio_redis._layout import Layout
from swapio_redis._options import ENV_PASSWORD, ENV_PASSWORD_FILE
from swapio_redis.local import LocalCluster, LocalRedis, free_ports

from .conftest import PASSWORD, owner_of

SWAPIO = [sys.executable, "-m", "swapio"]
FAILURE, USAGE, AREA = 1, 2, 3


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*SWAPIO, *args], capture_output=True, timeout=120, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess[bytes], code: int, text: str) -> str:
    err = proc.stderr.decode()
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert err.startswith("swapio: error: ")
    assert text in err, err
    return err


def snapshot(node: LocalRedis) -> list[str]:
    """Every key of ``node`` with its DUMP (what "nothing changed" compares)."""
    keys = sorted(node.cli("KEYS", "*").split())
    return [f"{k}={node.cli('DUMP', k)}" for k in keys]


def test_wrong_password_is_one_line_and_changes_nothing(
    redis_server: LocalRedis, standalone_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run("create", standalone_url, "--pages", "8").returncode == 0
    before = snapshot(redis_server)
    monkeypatch.setenv(ENV_PASSWORD, "not-the-password-42")
    for verb in (["info"], ["discard", "--slot", "0"], ["create", "--pages", "8"]):
        proc = run(
            verb[0],
            standalone_url.replace("prefix=", "prefix=x")
            if verb[0] == "create"
            else standalone_url,
            *verb[1:],
        )
        err = assert_one_line_error(proc, FAILURE, "refused the credentials")
        assert "not-the-password-42" not in err
        assert ENV_PASSWORD in err
    assert snapshot(redis_server) == before


def test_wrong_password_on_a_cluster_is_one_line(
    redis_cluster: LocalCluster, cluster_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_PASSWORD, "not-the-password-42")
    proc = run("create", cluster_url, "--pages", "8")
    err = assert_one_line_error(proc, FAILURE, "refused the credentials")
    assert "not-the-password-42" not in err
    monkeypatch.setenv(ENV_PASSWORD, PASSWORD)
    assert run("info", cluster_url).returncode == AREA  # nothing was created


def test_password_file_is_read(
    standalone_url: str, tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    secret = Path(str(tmp_path)) / "redis.pass"
    secret.write_text(PASSWORD + "\n")
    monkeypatch.delenv(ENV_PASSWORD)
    monkeypatch.setenv(ENV_PASSWORD_FILE, str(secret))
    proc = run("create", standalone_url, "--pages", "8")
    assert proc.returncode == 0, proc.stderr.decode()


def test_password_in_the_url_is_refused_without_repeating_it(redis_server: LocalRedis) -> None:
    before = snapshot(redis_server)
    for url in (
        f"redis://:hunter2-secret@{redis_server.address}?prefix=p",
        f"redis://admin:hunter2-secret@{redis_server.address}?prefix=p",
        f"redis://{redis_server.address}?prefix=p&password=hunter2-secret",
    ):
        err = assert_one_line_error(run("create", url, "--pages", "8"), USAGE, ENV_PASSWORD)
        assert "hunter2-secret" not in err
    assert snapshot(redis_server) == before


def test_missing_standalone_server_is_one_line() -> None:
    port = free_ports(1)[0]
    proc = run("create", f"redis://127.0.0.1:{port}?prefix=p", "--pages", "8")
    assert_one_line_error(proc, FAILURE, f"cannot reach redis at 127.0.0.1:{port}")


def test_missing_cluster_node_is_one_line() -> None:
    a, b = free_ports(2)
    proc = run("create", f"redis+cluster://127.0.0.1:{a},127.0.0.1:{b}?prefix=p", "--pages", "8")
    assert_one_line_error(proc, FAILURE, f"127.0.0.1:{a},127.0.0.1:{b}")


def test_cluster_url_on_a_standalone_server_is_one_line(redis_server: LocalRedis) -> None:
    proc = run("create", f"redis+cluster://{redis_server.address}?prefix=p", "--pages", "8")
    assert_one_line_error(proc, USAGE, "not a cluster node")


def test_standalone_url_on_a_cluster_node_is_one_line(redis_cluster: LocalCluster) -> None:
    node = redis_cluster.nodes[0]
    proc = run("create", f"redis://{node.address}?prefix=p", "--pages", "8")
    assert_one_line_error(proc, USAGE, "redis+cluster://")


def test_foreign_metadata_is_refused_and_kept(redis_server: LocalRedis, prefix: str) -> None:
    url = f"redis://{redis_server.address}?prefix={prefix}"
    redis_server.cli("HSET", f"{{{prefix}}}:meta", "owner", "someone-else")
    before = snapshot(redis_server)
    for args in (["info", url], ["create", url, "--pages", "8"], ["read", url, "--slot", "0"]):
        assert_one_line_error(run(*args), AREA, "foreign data")
    assert snapshot(redis_server) == before


def test_foreign_string_metadata_is_refused(redis_server: LocalRedis, prefix: str) -> None:
    url = f"redis://{redis_server.address}?prefix={prefix}"
    redis_server.cli("SET", f"{{{prefix}}}:meta", "hello")
    assert_one_line_error(run("info", url), AREA, "foreign data")
    assert redis_server.cli("GET", f"{{{prefix}}}:meta").strip() == "hello"


def test_page_keys_without_metadata_block_creation(redis_server: LocalRedis, prefix: str) -> None:
    url = f"redis://{redis_server.address}?prefix={prefix}"
    assert run("create", url, "--pages", "8").returncode == 0
    redis_server.cli("DEL", f"{{{prefix}}}:meta")
    assert run("write", url, "--slot", "0").returncode == AREA  # the area is gone
    redis_server.cli("SET", f"{{{prefix}/0/0}}:0", "leftover")
    before = snapshot(redis_server)
    assert_one_line_error(run("create", url, "--pages", "8"), AREA, "leftover data")
    assert snapshot(redis_server) == before


def test_another_format_version_is_refused(redis_server: LocalRedis, prefix: str) -> None:
    url = f"redis://{redis_server.address}?prefix={prefix}"
    meta = '{"format":"swapio-redis","version":2,"pages":8,"page_size":4096}'
    redis_server.cli("SET", f"{{{prefix}}}:meta", meta)
    assert_one_line_error(run("info", url), AREA, "format version 2")
    assert_one_line_error(run("create", url, "--pages", "8"), AREA, "format version 2")


def kill_shard_of_slot_0(cluster: LocalCluster, prefix: str) -> LocalRedis:
    """``kill -9`` the master serving page 0 of ``prefix`` and its replica; the master."""
    master = owner_of(cluster.masters(), Layout(prefix).key(0).decode())
    for node in cluster.nodes:
        role = node.cli("ROLE").splitlines()
        if role[0] == "slave" and int(role[2]) == master.port:
            node.kill()
    master.kill()
    return master


def test_a_cluster_missing_a_whole_shard_is_one_line(
    redis_cluster: LocalCluster, prefix: str
) -> None:
    url = f"redis+cluster://{redis_cluster.seeds}?prefix={prefix}"
    assert run("create", url, "--pages", "64").returncode == 0
    dead = kill_shard_of_slot_0(redis_cluster, prefix)
    proc = run("read", url, "--slot", "0")
    assert_one_line_error(proc, FAILURE, f"connecting to {dead.address}")
