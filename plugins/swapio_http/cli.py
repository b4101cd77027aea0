"""``swapio serve``: run a page server until SIGINT/SIGTERM, then shut down gracefully."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import ssl
import sys

import click

from swapio.errors import SwapioError
from swapio.plugins import PluginHost

from ._auth import ENV_TOKEN, ENV_TOKEN_FILE, TokenSet, check_token, read_token_file
from ._guard import DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS
from ._wire import Limits
from .server import (
    DEFAULT_BUFFER_BYTES,
    DEFAULT_MAX_AREA_BYTES,
    DEFAULT_MAX_BYTES_PER_TOKEN,
    DEFAULT_MAX_INFLIGHT_BYTES,
    DEFAULT_STORE,
    ServerConfig,
    start_server,
)


def is_loopback(bind: str) -> bool:
    """True when ``bind`` is a loopback address or ``localhost``."""
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def load_tokens(token_file: str | None, environ: dict[str, str]) -> TokenSet:
    """Tokens from ``--token-file``, else ``$SWAPIO_TOKEN_FILE``, else ``$SWAPIO_TOKEN``."""
    path = token_file or environ.get(ENV_TOKEN_FILE)
    if path:
        return TokenSet(read_token_file(path))
    token = environ.get(ENV_TOKEN)
    if token:
        return TokenSet((check_token(token.strip(), f"${ENV_TOKEN}"),))
    return TokenSet()


async def _serve(config: ServerConfig, bind: str, port: int) -> None:
    server = await start_server(config, bind=bind, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    mode = (
        "anonymous (insecure, loopback only)"
        if config.tokens.anonymous
        else (f"{len(config.tokens.tokens)} token(s)")
    )
    click.echo(f"listening on {server.url}", file=sys.stdout)
    sys.stdout.flush()
    click.echo(f"swapio page server: store {config.store}; auth {mode}", err=True)
    try:
        await stop.wait()
    finally:
        click.echo("shutting down: completing in-flight writes", err=True)
        await server.stop()


@click.command("serve")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8700,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0 picks a free one; the URL is printed on stdout).",
)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False),
    help=f"File with accepted bearer tokens, one per line (else ${ENV_TOKEN_FILE} "
    f"or ${ENV_TOKEN}).",
)
@click.option(
    "--store",
    default=DEFAULT_STORE,
    show_default=True,
    help="Where areas live: a swapio URL template with {owner} and {area}.",
)
@click.option(
    "--max-frame-pages",
    default=256,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Most pages one request frame may carry.",
)
@click.option(
    "--max-page-size",
    default=65536,
    show_default=True,
    type=int,
    help="Largest page size accepted.",
)
@click.option(
    "--max-area-bytes",
    default=DEFAULT_MAX_AREA_BYTES,
    show_default=True,
    type=click.IntRange(1),
    help="Largest area a client may create.",
)
@click.option(
    "--max-areas",
    default=64,
    show_default=True,
    type=click.IntRange(1),
    help="Most areas one token may have active at once.",
)
@click.option(
    "--max-bytes-per-token",
    default=DEFAULT_MAX_BYTES_PER_TOKEN,
    show_default=True,
    type=click.IntRange(1),
    help="Bytes of stores one token may create, deactivated areas' stores included (429).",
)
@click.option(
    "--buffer-bytes",
    default=DEFAULT_BUFFER_BYTES,
    show_default=True,
    type=click.IntRange(1 << 20),
    help="Budget of the pool holding request and response bodies (its reserve is derived).",
)
@click.option(
    "--max-inflight-bytes",
    default=DEFAULT_MAX_INFLIGHT_BYTES,
    show_default=True,
    type=click.IntRange(1),
    help="Bytes of bodies one token's requests may hold at once (429 beyond).",
)
@click.option(
    "--max-connections",
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    type=click.IntRange(1),
    help="Open connections at most; beyond, 503 and close (keep it below the open-file limit).",
)
@click.option(
    "--header-timeout",
    default=DEFAULT_HEADER_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a client may take to send a request head; then the connection is closed.",
)
@click.option(
    "--idle-timeout",
    default=DEFAULT_IDLE_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds an idle keep-alive connection stays open.",
)
@click.option(
    "--drain-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds shutdown waits for in-flight requests.",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True),
    help="PEM certificate (chain) to serve HTTPS with; needs --tls-key.",
)
@click.option(
    "--tls-key", type=click.Path(dir_okay=False, exists=True), help="PEM private key of --tls-cert."
)
@click.option(
    "--insecure-loopback", is_flag=True, help="Serve without a token (only on a loopback address)."
)
def serve(
    bind: str,
    port: int,
    token_file: str | None,
    store: str,
    max_frame_pages: int,
    max_page_size: int,
    max_area_bytes: int,
    max_areas: int,
    max_bytes_per_token: int,
    buffer_bytes: int,
    max_inflight_bytes: int,
    max_connections: int,
    header_timeout: float,
    idle_timeout: float,
    drain_timeout: float,
    tls_cert: str | None,
    tls_key: str | None,
    insecure_loopback: bool,
) -> None:
    """Serve swap areas of any installed backend to `http://` clients.

    Each bearer token gets its own areas; clients send the token in the Authorization
    header (SWAPIO_TOKEN on the client side).

    \b
    Examples:
      SWAPIO_TOKEN=$(openssl rand -hex 24) swapio serve --port 8700
      swapio serve --token-file /etc/swapio/tokens --store 'file:///srv/swap/{owner}/{area}'
      swapio serve --bind :: --max-connections 256 --idle-timeout 60
      swapio serve --insecure-loopback --port 0
    """
    tokens = load_tokens(token_file, dict(os.environ))
    if not bind:
        raise click.UsageError("--bind is empty; give an address (0.0.0.0 or :: for all)")
    try:
        ServerConfig(tokens=tokens, store=store).check_store(PluginHost())
    except SwapioError as exc:
        raise click.UsageError(str(exc)) from None
    if tokens.anonymous:
        if not insecure_loopback:
            raise click.UsageError(
                f"no token: set {ENV_TOKEN}, {ENV_TOKEN_FILE} or --token-file "
                "(or pass --insecure-loopback to serve without auth on loopback)"
            )
        if not is_loopback(bind):
            raise click.UsageError(
                f"--insecure-loopback refuses to bind {bind}: only loopback addresses "
                "may serve without a token"
            )
    elif insecure_loopback:
        raise click.UsageError("--insecure-loopback given but tokens are configured")
    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    context = None
    if tls_cert and tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(tls_cert, tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise click.UsageError(f"cannot load --tls-cert/--tls-key: {exc}") from None
    elif not is_loopback(bind):
        click.echo(
            f"swapio serve: warning: no TLS on {bind}: bearer tokens and pages cross the "
            "network in clear (use --tls-cert/--tls-key or a TLS proxy)",
            err=True,
        )
    try:
        limits = Limits(max_pages=max_frame_pages, max_page_size=max_page_size)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    largest = 2 * limits.max_request_bytes  # a request's body and its response
    if max_inflight_bytes < largest or buffer_bytes < 2 * largest:
        raise click.UsageError(
            f"--max-inflight-bytes {max_inflight_bytes} and --buffer-bytes {buffer_bytes} must "
            f"hold the largest request and its response ({largest} bytes with these frame "
            "limits; the pool twice that): raise them or lower --max-frame-pages/--max-page-size"
        )
    config = ServerConfig(
        tokens=tokens,
        store=store,
        limits=limits,
        max_area_bytes=max_area_bytes,
        max_areas=max_areas,
        max_bytes_per_token=max_bytes_per_token,
        buffer_bytes=buffer_bytes,
        max_inflight_bytes=max_inflight_bytes,
        max_connections=max_connections,
        header_timeout=header_timeout,
        idle_timeout=idle_timeout,
        drain_timeout=drain_timeout,
        ssl_context=context,
    )
    asyncio.run(_serve(config, bind, port))
