"""HTTPS: ``swapio serve --tls-cert/--tls-key`` and the ``https`` scheme (real openssl cert)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from swapio_http.cli import serve
from swapio_http.server import start_server

from swapio.area import CreateRequest
from swapio.errors import BackendIOError
from swapio.plugins import PluginHost

from .conftest import TOKEN, server_config

PAGE = 4096


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl command line tool."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed (Debian package openssl)", pytrace=False)
    root = tmp_path_factory.mktemp("tls")
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_https_round_trip_with_a_trusted_certificate(
    certificate: tuple[Path, Path], token_env: str
) -> None:
    cert, key = certificate
    config = server_config(ssl_context=_context(cert, key))
    server = await start_server(config, port=0)
    try:
        assert server.url.startswith("https://127.0.0.1:")
        area = await PluginHost().activate(
            f"{server.url}/areas/tls?cafile={cert}", create=CreateRequest(8, PAGE)
        )
        await area.write(2, b"T" * PAGE)
        assert await area.read(2) == b"T" * PAGE
        await area.deactivate()
    finally:
        await server.stop()


async def test_untrusted_certificate_is_refused(
    certificate: tuple[Path, Path], token_env: str
) -> None:
    cert, key = certificate
    server = await start_server(server_config(ssl_context=_context(cert, key)), port=0)
    try:
        with pytest.raises(BackendIOError, match="certificate verify failed|CERTIFICATE"):
            await PluginHost().activate(f"{server.url}/areas/tls", create=CreateRequest(8, PAGE))
    finally:
        await server.stop()


def test_serve_needs_both_tls_files(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWAPIO_TOKEN", TOKEN)
    result = CliRunner().invoke(serve, ["--port", "0", "--tls-cert", str(certificate[0])])
    assert result.exit_code == 2
    assert "--tls-cert and --tls-key go together" in result.output


def test_plain_http_off_loopback_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWAPIO_TOKEN", TOKEN)
    # An address that cannot be bound here: the warning comes before the bind fails.
    result = CliRunner().invoke(serve, ["--bind", "192.0.2.1", "--port", "0"])
    assert "no TLS on 192.0.2.1" in result.output
    assert result.exit_code != 0
