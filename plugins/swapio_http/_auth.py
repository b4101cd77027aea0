"""Bearer tokens for the page server: loading, checking, and the owner they map to.

Tokens travel only in the ``Authorization: Bearer`` header (RFC 6750 §2.1), never in a URL.
Each token owns its own namespace of areas; the namespace is named by a digest of the token
(:func:`owner_id`) so that store names and logs never contain the secret itself.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from swapio.errors import UsageError

ENV_TOKEN: Final = "SWAPIO_TOKEN"
ENV_TOKEN_FILE: Final = "SWAPIO_TOKEN_FILE"
MIN_TOKEN_LENGTH: Final = 16
ANONYMOUS: Final = "anonymous"
# RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN_RE: Final = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")


class TokenError(UsageError):
    """A token (or token file) is missing, malformed or too weak."""


def owner_id(token: str) -> str:
    """The namespace name of a token: 16 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def check_token(token: str, origin: str) -> str:
    """Return ``token`` if it is a valid RFC 6750 b64token of useful length."""
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(
            f"token from {origin} is {len(token)} characters; at least {MIN_TOKEN_LENGTH} "
            "are required (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    if not _TOKEN_RE.match(token):
        raise TokenError(
            f"token from {origin} contains characters outside RFC 6750's b64token alphabet"
        )
    return token


def read_token_file(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Tokens from a file: one per line; blank lines and ``#`` comments are ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TokenError(f"cannot read token file {os.fspath(path)!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise TokenError(
            f"token file {os.fspath(path)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
            f"at offset {exc.start})"
        ) from None
    tokens = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            tokens.append(check_token(stripped, f"{os.fspath(path)}:{number}"))
    if not tokens:
        raise TokenError(f"token file {os.fspath(path)!r} holds no token")
    return tuple(tokens)


def client_token(environ: dict[str, str] | None = None) -> str | None:
    """The client's token: ``$SWAPIO_TOKEN``, else the first line of ``$SWAPIO_TOKEN_FILE``."""
    env = os.environ if environ is None else environ
    token = env.get(ENV_TOKEN)
    if token:
        return check_token(token.strip(), f"${ENV_TOKEN}")
    path = env.get(ENV_TOKEN_FILE)
    if path:
        return read_token_file(path)[0]
    return None


@dataclass(frozen=True)
class TokenSet:
    """The tokens a server accepts; empty means anonymous access (loopback only)."""

    tokens: tuple[str, ...] = ()

    @property
    def anonymous(self) -> bool:
        return not self.tokens

    def authenticate(self, authorization: str | None) -> str | None:
        """Return the owner for an ``Authorization`` header value, or ``None`` if refused.

        Every configured token is compared in constant time (no early exit), so timing does
        not reveal which prefix matched.
        """
        if self.anonymous:
            return ANONYMOUS
        if authorization is None:
            return None
        # Compared as bytes: a header's non-UTF-8 bytes reach us as surrogate escapes, which
        # match no token (tokens are ASCII) instead of failing to encode.
        raw = authorization.encode("utf-8", "surrogateescape")
        scheme, _, credentials = raw.partition(b" ")
        if scheme.lower() != b"bearer" or not credentials:
            return None
        given = credentials.strip()
        match: str | None = None
        for token, owner in self._owners:
            if hmac.compare_digest(given, token):
                match = owner
        return match

    @functools.cached_property
    def _owners(self) -> tuple[tuple[bytes, str], ...]:
        return tuple((token.encode(), owner_id(token)) for token in self.tokens)
