"""Issue 15's findings on the page server and the http backend, one test each."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from swapio_http._api import check_area_name
from swapio_http.cli import serve
from swapio_http.server import start_server

from swapio.errors import LocationError, UsageError
from swapio.plugins import PluginHost

from .conftest import TOKEN, server_config

SECRET = "s3cr3t-s3cr3t-s3cr3t-0123"


async def raw_exchange(url: str, *parts: bytes, pause: float = 0.0) -> tuple[int, bytes]:
    """Send ``parts`` on one connection (``pause`` seconds apart); status and body."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    for part in parts:
        writer.write(part)
        await writer.drain()
        await asyncio.sleep(pause)
    head = await reader.readuntil(b"\r\n\r\n")
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
    length = int({k.lower(): v for k, v in fields.items()}[b"content-length"])
    body = await reader.readexactly(length)
    writer.close()
    await writer.wait_closed()
    return int(head.split()[1]), body


async def test_non_utf8_bearer_token_is_401(live_server: Any, caplog: Any) -> None:
    status, body = await raw_exchange(
        live_server.url,
        b"GET /areas HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xc3\x28\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert status == 401
    assert json.loads(body)["error"] == "unauthorized"
    assert "Traceback" not in caplog.text


async def test_json_body_in_two_segments_is_accepted(live_server: Any) -> None:
    doc = b'{"pages": 8, "page_size": 4096}'
    head = (
        f"PUT /areas/split HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(doc)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    status, body = await raw_exchange(live_server.url, head + doc[:9], doc[9:], pause=0.1)
    assert status == 201, body
    assert json.loads(body)["pages"] == 8


def test_area_name_with_trailing_newline_is_refused() -> None:
    with pytest.raises(UsageError, match="invalid"):
        check_area_name("scratch\n")


async def test_server_refuses_area_name_with_trailing_newline(live_server: Any) -> None:
    status, body = await raw_exchange(
        live_server.url,
        f"GET /areas/scratch%0A HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    assert status == 400
    assert json.loads(body)["error"] == "bad-name"


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
async def test_infinite_timeout_is_a_location_error(token_env: str, value: str) -> None:
    with pytest.raises(LocationError, match="finite number of seconds"):
        await PluginHost().activate(f"http://127.0.0.1:1/areas/x?timeout={value}")


@pytest.mark.parametrize("key", ["token", "access_token", "password"])
async def test_token_in_query_is_refused_without_repeating_it(token_env: str, key: str) -> None:
    with pytest.raises(LocationError, match="never put a token in the URL") as info:
        await PluginHost().activate(f"http://127.0.0.1:1/areas/x?{key}={SECRET}")
    assert SECRET not in str(info.value)


async def test_credentials_in_url_are_refused_without_repeating_them(token_env: str) -> None:
    with pytest.raises(LocationError, match="never put credentials in the URL") as info:
        await PluginHost().activate(f"http://user:{SECRET}@127.0.0.1:1/areas/x")
    assert SECRET not in str(info.value)


async def test_error_bodies_do_not_show_store_paths(tmp_path: Path, token_env: str) -> None:
    store = f"file://{tmp_path}/{{owner}}-{{area}}.swap"
    server = await start_server(server_config(store=store), port=0)
    try:
        status, body = await raw_exchange(
            server.url,
            f"PUT /areas/absent HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Length: 2\r\nConnection: close\r\n\r\n{}".encode(),
        )
    finally:
        await server.stop()
    assert status == 404
    message = json.loads(body)["message"]
    assert str(tmp_path) not in message
    assert "absent" in message


@pytest.mark.parametrize(
    ("store", "text"),
    [
        ("memory://x/{owner}/{area}/{extra}", "only {owner} and {area} may appear"),
        ("memory://x/{owner}/{area}/{0}", "only {owner} and {area} may appear"),
        ("nosuch://x/{owner}/{area}", "no backend serves URL scheme 'nosuch'"),
        ("memory://x/{area}", "must contain {owner} and {area}"),
    ],
)
def test_bad_store_template_is_refused_at_start(store: str, text: str) -> None:
    result = CliRunner().invoke(serve, ["--insecure-loopback", "--port", "0", "--store", store])
    assert result.exit_code == 2
    assert text in result.output
    assert "Traceback" not in result.output


def test_empty_bind_is_refused() -> None:
    result = CliRunner().invoke(serve, ["--insecure-loopback", "--port", "0", "--bind", ""])
    assert result.exit_code == 2
    assert "--bind is empty" in result.output


async def test_start_server_checks_the_store_template() -> None:
    with pytest.raises(UsageError, match="only {owner} and {area}"):
        await start_server(server_config(store="memory://x/{owner}/{area}/{x}"), port=0)
