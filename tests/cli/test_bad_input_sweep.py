"""The bad-input sweep (issue 15): every verb and every scheme, given wrong, truncated and
hostile input, fails with one line and a non-zero exit — never a traceback, never a file left.

Each case runs ``python -m swapio ...`` in its own process, with its own empty working
directory (``{case}``), beside a shared fixture directory (``{fix}``: a 3-page file area, a
bitmap, a flash image, a FIFO, a directory, a truncated file) that no case may change.
Servers are missing on purpose: ``{dead}`` and ``{dead2}`` are loopback ports bound by this
test and never listened on, so a connection is refused at once; timeouts in the URLs are
short.  The cases run in parallel (a thread per subprocess).  The essential sweep (every
verb, every scheme) runs by default; the cases in ``DEEP`` run with ``-m slow``.

A case passes when its process exits non-zero and its stderr is exactly one line
``swapio: error: ...`` — or click's own usage error (exit 2, ``Usage:`` ... ``Error: ...``,
no other text) — and its working directory is still empty.  Over the whole sweep, the
stderr holds no ``Traceback`` and the fixture directory is byte-for-byte as it was.
"""

from __future__ import annotations

import hashlib
import os
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from multiprocessing.pool import ThreadPool
from pathlib import Path

import pytest

SWAPIO = [sys.executable, "-m", "swapio"]
#: A hung case fails the sweep; a case that needs this long is a bug on its own.
CASE_TIMEOUT = 30.0
#: Non-UTF-8 bytes as they reach a program's argv (os.fsdecode, surrogateescape).
NON_UTF8 = os.fsdecode(b"\xff\xfe\xc3\x28")
#: Bytes on stdin: not UTF-8 and not a whole page.
HOSTILE_STDIN = b"\xff\xfe\x00\xc3\x28" * 100


@dataclass(frozen=True)
class Case:
    """One command line (placeholders: {fix} {case} {dead} {dead2} {nonutf8})."""

    id: str
    args: tuple[str, ...]
    stdin: bytes = b""
    env: dict[str, str] = field(default_factory=dict)


def _c(case_id: str, *args: str, stdin: bytes = b"", **env: str) -> Case:
    return Case(case_id, args, stdin, env)


NFS_DEAD = "nfs://127.0.0.1/export/x?nfsport={dead}&mountport={dead}&timeo=0.2&retrans=1"
HTTP_DEAD = "http://127.0.0.1:{dead}/areas/sweep?timeout=0.5"
REDIS_DEAD = "redis://127.0.0.1:{dead}?prefix=sweep&timeout=0.5"
CLUSTER_DEAD = "redis+cluster://127.0.0.1:{dead},127.0.0.1:{dead2}?prefix=sweep&timeout=0.5"
MIRROR_MISSING = "mirror://m?bitmap={case}/bm&leg0={case}/l0&leg1={case}/l1"
GOOD = "file://{fix}/good.swap"

#: Bad locations, one or more per scheme; each is tried with `info`, and those named in
#: CREATE_TOO with `create` as well (``info`` of a store that is missing fails; ``create``
#: of it would rightly succeed).
BAD_URLS: dict[str, str] = {
    # no scheme, unknown scheme, malformed
    "empty": "",
    "no-scheme": "{fix}/good.swap",
    "unknown-scheme": "nosuch://x/y",
    "bad-scheme-chars": "fi_le:///x",
    "fragment": GOOD + "#frag",
    "control-char": "file:///tmp/a\tb",
    "non-utf8": "file://{case}/{nonutf8}/a.swap",
    "non-utf8-scheme": "{nonutf8}://x",
    "bad-port": "nfs://127.0.0.1:99999/x",
    "non-numeric-port": "http://127.0.0.1:port/areas/x",
    "repeated-key": GOOD + "?durable=1&durable=0",
    "malformed-query": GOOD + "?durable",
    # memory
    "memory-no-name": "memory://",
    "memory-unknown-key": "memory://x?foo=1",
    "memory-nul": "memory://x/a%00b",
    # file
    "file-missing-dir": "file://{case}/no/such/dir/a.swap",
    "file-nul": "file://{case}/a%00b.swap",
    "file-fifo": "file://{fix}/fifo",
    "file-directory": "file://{fix}/dir",
    "file-truncated": "file://{fix}/truncated.swap",
    "file-wrong-page-size": GOOD + "?page_size=8192",
    "file-odd-page-size": GOOD + "?page_size=1000",
    "file-huge-page-size": GOOD + "?page_size=99999999999999999999999",
    "file-negative-page-size": GOOD + "?page_size=-4096",
    "file-bad-bool": GOOD + "?durable=maybe",
    "file-unknown-key": GOOD + "?speed=11",
    "file-host": "file://somehost/{fix}/good.swap",
    # nfs
    "nfs-no-server": NFS_DEAD,
    "nfs-no-path": "nfs://127.0.0.1",
    "nfs-no-host": "nfs:///export/x",
    "nfs-bad-timeo": "nfs://127.0.0.1/export/x?timeo=inf",
    "nfs-bad-version": "nfs://127.0.0.1/export/x?version=5",
    "nfs-nul": "nfs://127.0.0.1/export/a%00b",
    # flashlog
    "flashlog-missing": "flashlog://{case}/missing.img",
    "flashlog-fifo": "flashlog://{fix}/fifo",
    "flashlog-not-an-image": "flashlog://{fix}/good.swap",
    "flashlog-truncated": "flashlog://{fix}/truncated.swap",
    "flashlog-missing-file": "flashlog://{fix}/flash.img?name=/missing",
    "flashlog-bad-size": "flashlog://{case}/new.img?size=12abc",
    "flashlog-huge-size": "flashlog://{case}/new.img?size=99999999999999999999999999",
    "flashlog-nul-name": "flashlog://{case}/new.img?name=/a%00b",
    # http
    "http-no-server": HTTP_DEAD,
    "http-no-area": "http://127.0.0.1:{dead}/",
    "http-bad-bracket": "http://[::1/areas/x",
    "http-timeout-inf": "http://127.0.0.1:{dead}/areas/x?timeout=inf",
    "http-token-in-query": "http://127.0.0.1:{dead}/areas/x?token=SECRET",
    "http-userinfo": "http://user:SECRET@127.0.0.1:{dead}/areas/x",
    "http-bad-name": "http://127.0.0.1:{dead}/areas/..%2f..",
    # mirror
    "mirror-missing-legs": MIRROR_MISSING,
    "mirror-no-legs": "mirror://m?bitmap={case}/bm",
    "mirror-one-leg": "mirror://m?bitmap={case}/bm&leg0={case}/l0",
    "mirror-missing-toml": "mirror://{case}/m.toml",
    "mirror-not-toml": "mirror://{fix}/good.swap",
    "mirror-fifo-bitmap": "mirror://m?bitmap={fix}/fifo&leg0={case}/l0&leg1={case}/l1",
    "mirror-bad-chunk": MIRROR_MISSING + "&chunk_size=1000",
    "mirror-dead-leg": "mirror://m?bitmap={case}/bm&leg0="
    + HTTP_DEAD.replace("&", "%26")
    + "&leg1={case}/l1",
    # redis
    "redis-no-server": REDIS_DEAD,
    "redis-no-prefix": "redis://127.0.0.1:{dead}",
    "redis-password-in-url": "redis://:SECRET@127.0.0.1:{dead}?prefix=sweep",
    "redis-bad-db": "redis://127.0.0.1:{dead}/notadb?prefix=sweep",
    "redis-huge-db": "redis://127.0.0.1:{dead}/99999999999999999999999?prefix=sweep",
    "redis-bad-timeout": "redis://127.0.0.1:{dead}?prefix=sweep&timeout=-1",
    "redis-inf-timeout": "redis://127.0.0.1:{dead}?prefix=sweep&timeout=inf",
    "redis-huge-replicas": REDIS_DEAD + "&durable=1&replicas=99999999999999999999",
    "redis-bad-prefix": "redis://127.0.0.1:{dead}?prefix=a%00b",
    # redis+cluster
    "cluster-no-server": CLUSTER_DEAD,
    "cluster-bad-seed": "redis+cluster://127.0.0.1:{dead},nohostport?prefix=sweep",
    "cluster-bad-seed-port": "redis+cluster://127.0.0.1:{dead},127.0.0.1:99999?prefix=sweep",
    "cluster-empty-seed": "redis+cluster://127.0.0.1:{dead},?prefix=sweep",
    "cluster-db": "redis+cluster://127.0.0.1:{dead},127.0.0.1:{dead2}/1?prefix=sweep",
}

CREATE_TOO = frozenset(
    {
        "empty",
        "non-utf8",
        "memory-nul",
        "file-missing-dir",
        "file-nul",
        "file-fifo",
        "file-directory",
        "file-odd-page-size",
        "nfs-no-server",
        "flashlog-fifo",
        "flashlog-bad-size",
        "flashlog-huge-size",
        "flashlog-nul-name",
        "http-no-server",
        "mirror-one-leg",
        "mirror-fifo-bitmap",
        "mirror-bad-chunk",
        "redis-no-server",
        "cluster-no-server",
    }
)

#: One URL per scheme whose store is missing or unreachable: read, write and discard each.
UNREACHABLE: dict[str, str] = {
    "memory": "memory://missing",
    "file": "file://{case}/missing.swap",
    "nfs": NFS_DEAD,
    "flashlog": "flashlog://{case}/missing.img",
    "http": HTTP_DEAD,
    "mirror": MIRROR_MISSING,
    "redis": REDIS_DEAD,
    "redis+cluster": CLUSTER_DEAD,
}


def _cases() -> list[Case]:
    cases: list[Case] = []
    for name, url in BAD_URLS.items():
        cases.append(_c(f"info-{name}", "info", url))
        if name in CREATE_TOO:
            cases.append(_c(f"create-{name}", "create", url, "--pages", "4"))
    for scheme, url in UNREACHABLE.items():
        cases.append(_c(f"read-{scheme}", "read", url, "--slot", "0"))
        cases.append(_c(f"write-{scheme}", "write", url, "--slot", "0", stdin=bytes(4096)))
        cases.append(_c(f"discard-{scheme}", "discard", url, "--slot", "0", "--json"))
    # sizes, slots, counts and input against an area that exists
    big = "9" * 30
    cases += [
        _c("create-exists", "create", GOOD, "--pages", "4"),
        _c("create-pages-zero", "create", "file://{case}/a.swap", "--pages", "0"),
        _c("create-pages-negative", "create", "file://{case}/a.swap", "--pages", "-1"),
        _c("create-pages-word", "create", "file://{case}/a.swap", "--pages", "lots"),
        _c("create-pages-unit", "create", "file://{case}/a.swap", "--pages", "4k"),
        _c("create-pages-huge-file", "create", "file://{case}/a.swap", "--pages", big),
        _c("create-pages-huge-memory", "create", "memory://big", "--pages", "1" + "0" * 15),
        _c("create-pages-missing", "create", "file://{case}/a.swap"),
        _c(
            "create-page-size-odd",
            "create",
            "file://{case}/a.swap",
            "--pages",
            "4",
            "--page-size",
            "1000",
        ),
        _c(
            "create-page-size-zero",
            "create",
            "file://{case}/a.swap",
            "--pages",
            "4",
            "--page-size",
            "0",
        ),
        _c(
            "create-page-size-huge",
            "create",
            "file://{case}/a.swap",
            "--pages",
            "4",
            "--page-size",
            big,
        ),
        _c(
            "create-page-size-conflict",
            "create",
            "file://{case}/a.swap?page_size=8192",
            "--pages",
            "4",
            "--page-size",
            "4096",
        ),
        _c("create-nul-arg", "create", "file://{case}/a.swap", "--pages", "4\x01"),
        _c("read-slot-out-of-range", "read", GOOD, "--slot", "3"),
        _c("read-slot-negative", "read", GOOD, "--slot", "-1"),
        _c("read-slot-huge", "read", GOOD, "--slot", big),
        _c("read-count-zero", "read", GOOD, "--slot", "0", "--count", "0"),
        _c("read-count-huge", "read", GOOD, "--slot", "0", "--count", big),
        _c("read-slot-word", "read", GOOD, "--slot", "first"),
        _c("read-no-slot", "read", GOOD),
        _c("read-to-missing-dir", "read", GOOD, "--slot", "0", "--to", "{case}/no/dir/out"),
        _c("read-to-directory", "read", GOOD, "--slot", "0", "--to", "{fix}/dir"),
        _c("write-short-stdin", "write", GOOD, "--slot", "0", stdin=b"x" * 100),
        _c("write-long-stdin", "write", GOOD, "--slot", "0", stdin=b"x" * 4097),
        _c("write-empty-stdin", "write", GOOD, "--slot", "0"),
        _c("write-hostile-stdin", "write", GOOD, "--slot", "0", stdin=HOSTILE_STDIN),
        _c(
            "write-hostile-count",
            "write",
            GOOD,
            "--slot",
            "1",
            "--count",
            "2",
            stdin=HOSTILE_STDIN * 9,
        ),
        _c("write-from-missing", "write", GOOD, "--slot", "0", "--from", "{case}/missing"),
        _c("write-from-directory", "write", GOOD, "--slot", "0", "--from", "{fix}/dir"),
        _c("write-from-short-file", "write", GOOD, "--slot", "0", "--from", "{fix}/truncated.swap"),
        _c("write-from-non-utf8", "write", GOOD, "--slot", "0", "--from", "{case}/{nonutf8}"),
        _c(
            "write-slot-out-of-range",
            "write",
            GOOD,
            "--slot",
            "2",
            "--count",
            "2",
            stdin=bytes(8192),
        ),
        _c("write-slot-huge", "write", GOOD, "--slot", big, stdin=bytes(4096)),
        _c("discard-out-of-range", "discard", GOOD, "--slot", "0", "--count", "4"),
        _c("discard-count-negative", "discard", GOOD, "--slot", "0", "--count", "-5"),
        _c("unknown-verb", "frobnicate"),
        _c("unknown-option", "info", GOOD, "--frob"),
        _c("backends-extra-arg", "backends", "extra"),
        _c("non-utf8-verb", NON_UTF8),
    ]
    # swapio completion and swapio man (where installed; else click's "No such command")
    cases += [
        _c("completion-unknown-shell", "completion", "tcsh"),
        _c("completion-no-shell", "completion"),
        _c("man-unknown-verb", "man", "nosuch"),
        _c("man-unknown-subverb", "man", "bitmap", "nosuch"),
        _c("man-install-onto-fifo", "man", "--install", "{fix}/fifo"),
        _c("man-install-onto-file", "man", "--install", "{fix}/good.swap"),
    ]
    # swapio flash
    cases += [
        _c("flash-format-exists", "flash", "format", "{fix}/flash.img", "--size", "256KiB"),
        _c("flash-format-bad-size", "flash", "format", "{case}/f.img", "--size", "lots"),
        _c("flash-format-zero-size", "flash", "format", "{case}/f.img", "--size", "0"),
        _c("flash-format-huge-size", "flash", "format", "{case}/f.img", "--size", "1EiB"),
        _c("flash-format-bad-unit", "flash", "format", "{case}/f.img", "--size", "16XB"),
        _c(
            "flash-format-odd-erase-block",
            "flash",
            "format",
            "{case}/f.img",
            "--size",
            "256KiB",
            "--erase-block",
            "1000",
        ),
        _c(
            "flash-format-missing-dir", "flash", "format", "{case}/no/dir/f.img", "--size", "256KiB"
        ),
        _c(
            "flash-format-bad-block-out",
            "flash",
            "format",
            "{case}/f.img",
            "--size",
            "256KiB",
            "--erase-block",
            "4KiB",
            "--bad-block",
            "1000",
        ),
        _c("flash-inspect-missing", "flash", "inspect", "{case}/missing.img"),
        _c("flash-inspect-fifo", "flash", "inspect", "{fix}/fifo"),
        _c("flash-inspect-directory", "flash", "inspect", "{fix}/dir"),
        _c("flash-inspect-truncated", "flash", "inspect", "{fix}/truncated.swap"),
        _c("flash-inspect-control-char", "flash", "inspect", "{case}/a\x01b"),
        _c(
            "flash-inspect-bad-erase-block",
            "flash",
            "inspect",
            "{fix}/good.swap",
            "--erase-block",
            "3",
        ),
        _c("flash-gc-missing", "flash", "gc", "{case}/missing.img"),
        _c("flash-gc-fifo", "flash", "gc", "{fix}/fifo"),
        _c("flash-gc-negative-steps", "flash", "gc", "{fix}/good.swap", "--steps", "-1"),
        _c("flash-unknown", "flash", "frob"),
    ]
    # swapio bitmap (create needs --chunk-size: each case below gives one but the odd-chunk one)
    chunk = ("--chunk-size", "64K")
    cases += [
        _c("bitmap-create-exists", "bitmap", "create", "{fix}/bm", "--sync-size", "1M", *chunk),
        _c(
            "bitmap-create-bad-size", "bitmap", "create", "{case}/bm", "--sync-size", "lots", *chunk
        ),
        _c("bitmap-create-zero-size", "bitmap", "create", "{case}/bm", "--sync-size", "0", *chunk),
        _c(
            "bitmap-create-huge-size",
            "bitmap",
            "create",
            "{case}/bm",
            "--sync-size",
            big + "T",
            *chunk,
        ),
        _c(
            "bitmap-create-odd-chunk",
            "bitmap",
            "create",
            "{case}/bm",
            "--sync-size",
            "1M",
            "--chunk-size",
            "1000",
        ),
        _c(
            "bitmap-create-bad-uuid",
            "bitmap",
            "create",
            "{case}/bm",
            "--sync-size",
            "1M",
            "--uuid",
            "xyz",
            *chunk,
        ),
        _c(
            "bitmap-create-missing-dir",
            "bitmap",
            "create",
            "{case}/no/dir/bm",
            "--sync-size",
            "1M",
            *chunk,
        ),
        _c(
            "bitmap-create-negative-sleep",
            "bitmap",
            "create",
            "{case}/bm",
            "--sync-size",
            "1M",
            "--daemon-sleep",
            "-5",
            *chunk,
        ),
        _c("bitmap-examine-missing", "bitmap", "examine", "{case}/missing"),
        _c("bitmap-examine-fifo", "bitmap", "examine", "{fix}/fifo"),
        _c("bitmap-examine-directory", "bitmap", "examine", "{fix}/dir"),
        _c("bitmap-examine-not-a-bitmap", "bitmap", "examine", "{fix}/good.swap"),
        _c("bitmap-examine-truncated", "bitmap", "examine", "{fix}/truncated.swap"),
        _c("bitmap-examine-non-utf8", "bitmap", "examine", "{case}/{nonutf8}"),
        _c(
            "bitmap-dirty-bad-offset",
            "bitmap",
            "dirty",
            "{fix}/bm",
            "--offset",
            "x",
            "--length",
            "4096",
        ),
        _c(
            "bitmap-dirty-negative",
            "bitmap",
            "dirty",
            "{fix}/bm",
            "--offset",
            "-1",
            "--length",
            "4096",
        ),
        _c(
            "bitmap-dirty-beyond",
            "bitmap",
            "dirty",
            "{fix}/bm",
            "--offset",
            big,
            "--length",
            "4096",
        ),
        _c(
            "bitmap-dirty-missing",
            "bitmap",
            "dirty",
            "{case}/missing",
            "--offset",
            "0",
            "--length",
            "4096",
        ),
        _c(
            "bitmap-resync-missing-legs",
            "bitmap",
            "resync",
            "{fix}/bm",
            "--source",
            "{case}/l0",
            "--target",
            "{case}/l1",
        ),
        _c(
            "bitmap-resync-dead-target",
            "bitmap",
            "resync",
            "{fix}/bm",
            "--source",
            GOOD,
            "--target",
            HTTP_DEAD,
        ),
        _c(
            "bitmap-resync-same-leg",
            "bitmap",
            "resync",
            "{fix}/bm",
            "--source",
            "{fix}/good.swap",
            "--target",
            "{fix}/good.swap",
            "--dry-run",
        ),
        _c(
            "bitmap-resync-bad-speed",
            "bitmap",
            "resync",
            "{fix}/bm",
            "--source",
            "{fix}/good.swap",
            "--target",
            "{case}/l1",
            "--max-speed",
            "fast",
        ),
        _c(
            "bitmap-resync-fifo",
            "bitmap",
            "resync",
            "{fix}/fifo",
            "--source",
            "{fix}/good.swap",
            "--target",
            "{case}/l1",
        ),
    ]
    # swapio serve (bad settings only: a good one would serve)
    serve = ("serve", "--port", "0")
    cases += [
        _c("serve-port-out-of-range", "serve", "--port", "99999", "--insecure-loopback"),
        _c("serve-port-word", "serve", "--port", "http"),
        _c("serve-missing-token-file", *serve, "--token-file", "{case}/tokens"),
        _c("serve-bad-store-scheme", *serve, "--insecure-loopback", "--store", "nosuch://{{name}}"),
        _c(
            "serve-bad-store-placeholder",
            *serve,
            "--insecure-loopback",
            "--store",
            "file://{case}/{{name}}{{other}}",
        ),
        _c("serve-bind-empty", *serve, "--insecure-loopback", "--bind", ""),
        _c("serve-no-token", *serve, SWAPIO_TOKEN=""),
        _c("serve-port-in-use", "serve", "--port", "{dead}", "--insecure-loopback"),
    ]
    # swapio bench (bad settings only)
    cases += [
        _c("bench-unknown-backend", "bench", "--backend", "nosuch", "--no-peers"),
        _c("bench-bad-url", "bench", "--backend", "file", "--url", "file=nosuch://x", "--no-peers"),
        _c("bench-pages-zero", "bench", "--pages", "0", "--no-peers"),
        _c(
            "bench-bad-page-size",
            "bench",
            "--backend",
            "memory",
            "--page-size",
            "1000",
            "--no-peers",
        ),
    ]
    # the environment is input too
    cases += [
        _c(
            "env-redis-password-file-missing",
            "info",
            REDIS_DEAD,
            SWAPIO_REDIS_PASSWORD_FILE="/nonexistent/swapio-sweep",
        ),
        _c("env-http-no-token", "info", HTTP_DEAD, SWAPIO_TOKEN=""),
        _c("env-http-non-ascii-token", "info", HTTP_DEAD, SWAPIO_TOKEN="t\u00e9\u2603"),
        _c("env-blocked-plugin", "info", GOOD, SWAPIO_DISABLED_PLUGINS="file"),
    ]
    return cases


#: Further variants of inputs the essential sweep already covers (``-m slow``).
DEEP = frozenset(
    [
        "create-empty",
        "info-bad-scheme-chars",
        "info-control-char",
        "info-non-numeric-port",
        "info-malformed-query",
        "info-memory-unknown-key",
        "create-file-missing-dir",
        "create-file-nul",
        "create-file-directory",
        "info-file-odd-page-size",
        "info-file-huge-page-size",
        "info-file-negative-page-size",
        "info-file-unknown-key",
        "info-file-host",
        "info-nfs-no-host",
        "info-nfs-nul",
        "info-nfs-bad-version",
        "create-flashlog-fifo",
        "info-flashlog-bad-size",
        "info-flashlog-huge-size",
        "info-flashlog-nul-name",
        "info-flashlog-truncated",
        "info-http-bad-name",
        "info-http-token-in-query",
        "info-mirror-no-legs",
        "info-mirror-one-leg",
        "create-mirror-bad-chunk",
        "info-mirror-not-toml",
        "info-mirror-bad-chunk",
        "info-redis-huge-db",
        "info-redis-inf-timeout",
        "info-redis-bad-prefix",
        "info-redis-password-in-url",
        "info-cluster-bad-seed-port",
        "info-cluster-empty-seed",
        "info-cluster-db",
        "discard-nfs",
        "discard-flashlog",
        "discard-mirror",
        "discard-redis+cluster",
        "write-memory",
        "read-flashlog",
        "create-pages-negative",
        "create-pages-unit",
        "create-page-size-zero",
        "create-page-size-huge",
        "create-nul-arg",
        "read-slot-negative",
        "read-count-huge",
        "read-slot-word",
        "read-no-slot",
        "read-to-directory",
        "write-long-stdin",
        "write-empty-stdin",
        "write-from-directory",
        "write-slot-huge",
        "discard-count-negative",
        "flash-format-zero-size",
        "flash-format-bad-unit",
        "flash-format-missing-dir",
        "flash-inspect-directory",
        "flash-inspect-control-char",
        "flash-gc-missing",
        "flash-unknown",
        "bitmap-create-zero-size",
        "bitmap-create-missing-dir",
        "bitmap-create-negative-sleep",
        "bitmap-examine-directory",
        "bitmap-examine-truncated",
        "bitmap-dirty-negative",
        "bitmap-dirty-missing",
        "bitmap-resync-bad-speed",
        "serve-port-word",
        "serve-no-token",
        "serve-bad-store-placeholder",
        "bench-pages-zero",
        "env-http-non-ascii-token",
    ]
)
CASES = _cases()
ESSENTIAL = [case for case in CASES if case.id not in DEEP]
DEEP_CASES = [case for case in CASES if case.id in DEEP]


@dataclass(frozen=True)
class Outcome:
    """What one case did."""

    argv: list[str]
    returncode: int | None
    stderr: str
    left_behind: list[str]


@dataclass(frozen=True)
class Sweep:
    """The outcome of every case, and what changed in the shared fixture directory."""

    outcomes: dict[str, Outcome]
    fixtures_changed: list[str]


def _bound_unused_port() -> socket.socket:
    """A loopback port that refuses connections: bound, never listened on."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


def _snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every entry under ``root``: its mode and, for regular files, a digest of the content."""
    seen: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        seen[str(path.relative_to(root))] = (st.st_mode, digest)
    return seen


def _setup_fixtures(fix: Path) -> None:
    fix.mkdir()
    (fix / "good.swap").write_bytes(bytes(3 * 4096))
    (fix / "truncated.swap").write_bytes(b"\x85\x19" * 50)
    (fix / "dir").mkdir()
    os.mkfifo(fix / "fifo")
    for args in (
        ["flash", "format", str(fix / "flash.img"), "--size", "256KiB", "--erase-block", "4KiB"],
        ["bitmap", "create", str(fix / "bm"), "--sync-size", "1M", "--chunk-size", "64K"],
    ):
        proc = subprocess.run([*SWAPIO, *args], capture_output=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr


def _run(case: Case, fix: Path, work: Path, dead: int, dead2: int) -> Outcome:
    home = work / case.id
    home.mkdir()
    values = {"fix": fix, "case": home, "dead": dead, "dead2": dead2, "nonutf8": NON_UTF8}
    argv = [*SWAPIO, *(arg.format(**values) for arg in case.args)]
    env = {**os.environ, "SWAPIO_TOKEN": "sweep-token-0123456789abcdef", **case.env}
    env.pop("SWAPIO_REDIS_PASSWORD", None)
    try:
        proc = subprocess.run(
            argv,
            input=case.stdin,
            capture_output=True,
            timeout=CASE_TIMEOUT,
            check=False,
            cwd=home,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if exc.stderr else ""
        return Outcome(argv, None, err, sorted(os.listdir(home)))
    return Outcome(
        argv, proc.returncode, proc.stderr.decode(errors="replace"), sorted(os.listdir(home))
    )


def run_sweep(cases: list[Case], root: Path) -> Sweep:
    """Run ``cases`` in parallel against fresh fixtures under ``root``."""
    fix, work = root / "fix", root / "work"
    _setup_fixtures(fix)
    work.mkdir()
    before = _snapshot(fix)
    with _bound_unused_port() as one, _bound_unused_port() as two:
        dead, dead2 = one.getsockname()[1], two.getsockname()[1]
        with ThreadPool(max(4, 2 * (os.cpu_count() or 1))) as pool:
            outcomes = pool.map(lambda case: _run(case, fix, work, dead, dead2), cases)
    after = _snapshot(fix)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return Sweep({c.id: o for c, o in zip(cases, outcomes, strict=True)}, changed)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    return run_sweep(ESSENTIAL, tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="module")
def deep_sweep(tmp_path_factory: pytest.TempPathFactory) -> Sweep:
    return run_sweep(DEEP_CASES, tmp_path_factory.mktemp("deep-sweep"))


def _is_one_line_error(stderr: str) -> bool:
    lines = stderr.splitlines()
    return len(lines) == 1 and lines[0].startswith("swapio: error: ") and stderr.endswith("\n")


def _is_click_usage_error(returncode: int | None, stderr: str) -> bool:
    lines = [line for line in stderr.splitlines() if line]
    return (
        returncode == 2
        and bool(lines)
        and lines[0].startswith("Usage: ")
        and lines[-1].startswith("Error: ")
        and sum(line.startswith("Error: ") for line in lines) == 1
        and len(lines) <= 3
    )


def _check_case(out: Outcome) -> None:
    shown = f"{' '.join(out.argv[2:])!r} exit {out.returncode}:\n{out.stderr}"
    assert out.returncode is not None, f"hung for {CASE_TIMEOUT} s: {shown}"
    assert out.returncode != 0, shown
    assert _is_one_line_error(out.stderr) or _is_click_usage_error(out.returncode, out.stderr), (
        shown
    )
    assert out.left_behind == [], f"left {out.left_behind}: {shown}"


def _tracebacks(result: Sweep) -> tuple[int, list[str]]:
    everything = "".join(out.stderr for out in result.outcomes.values())
    traced = sorted(cid for cid, out in result.outcomes.items() if "Traceback" in out.stderr)
    return everything.count("Traceback"), traced


def test_the_essential_sweep_covers_every_scheme_and_verb() -> None:
    ids = {case.id for case in ESSENTIAL}
    for scheme in UNREACHABLE:
        assert f"read-{scheme}" in ids or f"write-{scheme}" in ids, scheme
    args = [case.args for case in ESSENTIAL]
    verbs = {a[0] for a in args} | {" ".join(a[:2]) for a in args}
    assert {"backends", "create", "info", "read", "write", "discard", "bench", "serve"} <= verbs
    assert {"flash format", "flash inspect", "flash gc"} <= verbs
    assert {"bitmap create", "bitmap examine", "bitmap dirty", "bitmap resync"} <= verbs
    assert {case.id for case in CASES} >= DEEP  # no stale name in DEEP


@pytest.mark.parametrize("case_id", [case.id for case in ESSENTIAL])
def test_bad_input_fails_with_one_line_and_leaves_nothing(sweep: Sweep, case_id: str) -> None:
    _check_case(sweep.outcomes[case_id])


def test_no_traceback_in_any_stderr(sweep: Sweep) -> None:
    assert _tracebacks(sweep) == (0, [])


def test_no_failed_command_changed_the_fixtures(sweep: Sweep) -> None:
    assert sweep.fixtures_changed == []


@pytest.mark.slow
@pytest.mark.parametrize("case_id", [case.id for case in DEEP_CASES])
def test_deep_bad_input_fails_with_one_line_and_leaves_nothing(
    deep_sweep: Sweep, case_id: str
) -> None:
    _check_case(deep_sweep.outcomes[case_id])


@pytest.mark.slow
def test_no_traceback_in_any_stderr_of_the_deep_sweep(deep_sweep: Sweep) -> None:
    assert _tracebacks(deep_sweep) == (0, [])
    assert deep_sweep.fixtures_changed == []
