"""Redis area URLs and credentials, parsed without I/O.

Forms (``docs/redis.md``)::

    redis://HOST[:PORT][/DB]?prefix=NAME[&durable=1&replicas=N&timeout=S&coalesce=0]
    rediss://HOST[:PORT][/DB]?prefix=NAME&cafile=/path/ca.pem
    redis+cluster://HOST:PORT[,HOST:PORT...]?prefix=NAME[&...]
    rediss+cluster://HOST:PORT[,HOST:PORT...]?prefix=NAME&cafile=/path/ca.pem

The password comes from ``$SWAPIO_REDIS_PASSWORD`` or the file named by
``$SWAPIO_REDIS_PASSWORD_FILE`` (an ACL user name from ``$SWAPIO_REDIS_USERNAME``), never from
the URL: user info or a password parameter in the URL is refused, and the refusal does not
repeat the secret.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

from swapio.errors import LocationError, UsageError
from swapio.location import Location

ENV_PASSWORD: Final = "SWAPIO_REDIS_PASSWORD"
ENV_PASSWORD_FILE: Final = "SWAPIO_REDIS_PASSWORD_FILE"
ENV_USERNAME: Final = "SWAPIO_REDIS_USERNAME"

STANDALONE_SCHEMES: Final = frozenset({"redis", "rediss"})
CLUSTER_SCHEMES: Final = frozenset({"redis+cluster", "rediss+cluster"})
SCHEMES: Final = tuple(sorted(STANDALONE_SCHEMES | CLUSTER_SCHEMES))

DEFAULT_PORT: Final = 6379
DEFAULT_TIMEOUT: Final = 30.0
#: Coalesced rounds in flight at once (each uses one connection per node it touches).
DEFAULT_ROUNDS: Final = 2
MAX_DB: Final = 15
QUERY_KEYS: Final = frozenset(
    {"prefix", "durable", "replicas", "timeout", "coalesce", "cafile", "rounds"}
)
_SECRET_KEYS: Final = frozenset({"password", "pass", "passwd", "auth", "requirepass", "token"})
#: A prefix is part of every key and of the hash tags; no braces, globs or separators.
_PREFIX_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,100}$")
_HOST_RE: Final = re.compile(r"^[A-Za-z0-9._:-]+$")


@dataclass(frozen=True)
class Credentials:
    """What AUTH sends; ``repr`` never shows the password."""

    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:
        shown = "set" if self.password else "none"
        return f"Credentials(username={self.username!r}, password={shown})"


@dataclass(frozen=True)
class RedisOptions:
    """A parsed Redis area URL (no secrets: see :func:`credentials_from_env`)."""

    cluster: bool
    tls: bool
    nodes: tuple[tuple[str, int], ...]
    db: int
    prefix: str
    durable: bool = False
    #: Replicas a durable swap-out waits for; ``None``: every replica the shard has.
    replicas: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    coalesce: bool = True
    cafile: str | None = None
    rounds: int = DEFAULT_ROUNDS

    @property
    def where(self) -> str:
        """The nodes as ``HOST:PORT[,HOST:PORT...]`` for messages."""
        return ",".join(f"{h}:{p}" for h, p in self.nodes)


def redact(url: str) -> str:
    """``url`` with any user info replaced by ``***`` (for messages)."""
    parts = urlsplit(url)
    _, at, hosts = parts.netloc.rpartition("@")
    if not at:
        return url
    return urlunsplit(parts._replace(netloc=f"***@{hosts}"))


def _check_no_secret(location: Location) -> None:
    parts = urlsplit(location.url)
    if "@" in parts.netloc:
        raise LocationError(
            f"{redact(location.url)!r}: never put a user or password in a Redis URL; set "
            f"{ENV_PASSWORD} or {ENV_PASSWORD_FILE} (and {ENV_USERNAME} for an ACL user)"
        )
    leaked = sorted(_SECRET_KEYS & set(location.query))
    if leaked:
        safe = urlunsplit(parts._replace(query="..."))
        raise LocationError(
            f"{safe!r}: never put a password in the URL ({', '.join(leaked)}=); set "
            f"{ENV_PASSWORD} or {ENV_PASSWORD_FILE} instead"
        )


def _seed(text: str, url: str) -> tuple[str, int]:
    """``HOST[:PORT]`` or ``[V6ADDR][:PORT]`` of one seed node."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise LocationError(f"{url!r}: {text!r} is not [ADDRESS][:PORT]")
        port_text = rest[1:]
    else:
        host, _, port_text = text.partition(":")
    if not host or not _HOST_RE.match(host):
        raise LocationError(f"{url!r}: {text!r} is not HOST[:PORT]")
    if not port_text:
        return host.lower(), DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise LocationError(f"{url!r}: port {port_text!r} of {text!r} is not in 1..65535")
    return host.lower(), int(port_text)


def parse_options(location: Location) -> RedisOptions:
    """Parse a ``redis[s][+cluster]://`` location; :class:`LocationError` names what is wrong."""
    _check_no_secret(location)
    url = location.url
    location.check_query(QUERY_KEYS)
    cluster = location.scheme in CLUSTER_SCHEMES
    if location.scheme not in STANDALONE_SCHEMES | CLUSTER_SCHEMES:
        raise LocationError(f"{url!r}: not a Redis URL (schemes: {', '.join(SCHEMES)})")
    if not location.host:
        raise LocationError(f"{url!r}: no host; expected {location.scheme}://HOST[:PORT]...")
    if "," in location.host:
        if not cluster:
            raise LocationError(
                f"{url!r}: several nodes need redis+cluster:// (redis:// is one server)"
            )
        nodes = tuple(_seed(part, url) for part in location.host.split(","))
    else:
        nodes = ((location.host, location.port or DEFAULT_PORT),)
    path = location.path.strip("/")
    db = 0
    if path:
        if cluster:
            raise LocationError(f"{url!r}: Redis Cluster has only database 0; drop /{path}")
        if not path.isdigit() or int(path) > MAX_DB:
            raise LocationError(f"{url!r}: /{path} is not a database number 0..{MAX_DB}")
        db = int(path)
    prefix = location.query.get("prefix")
    if prefix is None:
        raise LocationError(f"{url!r}: prefix=NAME is required (it names the area's keys)")
    if not _PREFIX_RE.match(prefix):
        raise LocationError(
            f"{url!r}: prefix {prefix!r} must be 1-100 characters of A-Z a-z 0-9 . _ -"
        )
    tls = location.scheme.startswith("rediss")
    cafile = location.query.get("cafile") or None
    if cafile is not None and not tls:
        raise LocationError(f"{url!r}: cafile= only applies to rediss:// (TLS)")
    raw_timeout = location.query.get("timeout")
    try:
        timeout = float(raw_timeout) if raw_timeout is not None else DEFAULT_TIMEOUT
    except ValueError:
        raise LocationError(f"{url!r}: timeout={raw_timeout!r} is not a number") from None
    if not 0 < timeout < 86400:
        raise LocationError(f"{url!r}: timeout must be between 0 and 86400 seconds")
    durable = location.query_bool("durable", False)
    replicas = location.query_int("replicas", None, minimum=0)
    if replicas is not None and not durable:
        raise LocationError(f"{url!r}: replicas= only applies with durable=1")
    return RedisOptions(
        cluster=cluster,
        tls=tls,
        nodes=nodes,
        db=db,
        prefix=prefix,
        durable=durable,
        replicas=replicas,
        timeout=timeout,
        coalesce=location.query_bool("coalesce", True),
        cafile=cafile,
        rounds=location.query_int("rounds", DEFAULT_ROUNDS, minimum=1) or DEFAULT_ROUNDS,
    )


def credentials_from_env(environ: dict[str, str] | None = None) -> Credentials:
    """The AUTH credentials: ``$SWAPIO_REDIS_PASSWORD`` or the file it names, and the user."""
    env = os.environ if environ is None else environ
    username = env.get(ENV_USERNAME) or None
    password = env.get(ENV_PASSWORD)
    path = env.get(ENV_PASSWORD_FILE)
    if password is not None and path:
        raise UsageError(f"set {ENV_PASSWORD} or {ENV_PASSWORD_FILE}, not both")
    if path:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {ENV_PASSWORD_FILE}={path!r}: {exc.strerror}") from None
        try:
            password = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise UsageError(f"{ENV_PASSWORD_FILE}={path!r} is not UTF-8 text") from None
        if not password or "\n" in password:
            raise UsageError(f"{ENV_PASSWORD_FILE}={path!r} must hold one non-empty line")
    return Credentials(username=username, password=password or None)
