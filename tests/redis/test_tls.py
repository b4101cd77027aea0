"""``rediss://`` with ``cafile=``: TLS to a real redis-server (openssl-made certificate)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from swapio_redis.local import LocalRedis, LocalRedisError, free_ports

from swapio.area import CreateRequest
from swapio.errors import BackendIOError
from swapio.plugins import PluginHost
from swapio.testing.conformance import page_pattern

from .conftest import PASSWORD


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalRedis, Path]]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed (Debian package openssl)", pytrace=False)
    root = tmp_path_factory.mktemp("redis-tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    server = LocalRedis(root / "data", free_ports(1)[0], password=PASSWORD, tls=(cert, key))
    try:
        server.start()
    except LocalRedisError as exc:
        pytest.fail(f"redis-server with TLS could not start: {exc}", pytrace=False)
    try:
        yield server, cert
    finally:
        server.stop()


async def test_rediss_round_trip_with_the_ca_file(tls_server: tuple[LocalRedis, Path]) -> None:
    server, cert = tls_server
    url = f"rediss://{server.address}?prefix=tls-a&cafile={cert}"
    area = await PluginHost().activate(url, create=CreateRequest(16))
    try:
        await area.write(3, page_pattern(3, 0, 4096))
        assert bytes(await area.read(3)) == page_pattern(3, 0, 4096)
    finally:
        await area.deactivate()


async def test_rediss_without_the_ca_file_refuses_the_certificate(
    tls_server: tuple[LocalRedis, Path],
) -> None:
    server, _ = tls_server
    with pytest.raises(BackendIOError, match="CERTIFICATE_VERIFY_FAILED"):
        await PluginHost().activate(
            f"rediss://{server.address}?prefix=tls-b", create=CreateRequest(16)
        )


async def test_plain_redis_to_a_tls_port_fails_cleanly(tls_server: tuple[LocalRedis, Path]) -> None:
    server, _ = tls_server
    url = f"redis://{server.address}?prefix=tls-c&timeout=3"
    with pytest.raises(BackendIOError, match=f"redis at {server.address}"):
        await PluginHost().activate(url, create=CreateRequest(16))
