"""Where a swap area's pages live in Redis: key names, hash tags and the metadata record.

Sans-I/O.  Redis Cluster puts a key in hash slot ``CRC16(tag) mod 16384`` where ``tag`` is
the text between the first ``{`` and the next ``}`` (Redis Cluster specification, "Hash tags").
Keys that share a tag share a hash slot, so one ``MGET``/``MSET``/``DEL`` may carry several of
them; keys with different tags may not be in one command.

Layout (format version 1):

* page ``s`` is the binary value of key ``{PREFIX/i/n}:s`` where ``i = (s // 16) mod 16`` is its
  *stripe*: runs of 16 consecutive slots (a *stripe unit*) share a tag, and the 16 stripes of a
  256-slot span (one Linux swap cluster, ``SWAPFILE_CLUSTER``) have 16 different tags;
* ``n`` is the smallest number that puts tag ``i`` in the ``i``-th sixteenth of the hash-slot
  space, so the 16 tags are spread evenly over hash slots 0..16383 and hence over every master of
  a cluster whose slots are assigned in contiguous ranges (what ``redis-cli --cluster create``
  and ``reshard`` do);
* the metadata record is the JSON string at ``{PREFIX}:meta``.

A request for a contiguous run of slots thus costs at most one command per 16 pages and one
round trip per node it touches; a never-written (or discarded) page is a missing key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from redis.crc import key_slot

from swapio.errors import AreaFormatError

FORMAT: Final = "swapio-redis"
VERSION: Final = 1
STRIPES: Final = 16
STRIPE_PAGES: Final = 16
HASH_SLOTS: Final = 16384


def _tag(prefix: str, stripe: int) -> str:
    """The hash tag of ``stripe``: the first ``PREFIX/stripe/n`` in that sixteenth of slots."""
    width = HASH_SLOTS // STRIPES
    n = 0
    while True:
        tag = f"{prefix}/{stripe}/{n}"
        if key_slot(tag.encode()) // width == stripe:
            return tag
        n += 1


class Layout:
    """Key names of one area (``prefix``)."""

    __slots__ = ("_hash_slots", "_heads", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        tags = tuple(_tag(prefix, i) for i in range(STRIPES))
        self._heads = tuple(f"{{{t}}}:".encode() for t in tags)
        self._hash_slots = tuple(key_slot(f"{{{t}}}".encode()) for t in tags)

    @property
    def meta_key(self) -> bytes:
        return f"{{{self.prefix}}}:meta".encode()

    @property
    def meta_hash_slot(self) -> int:
        return key_slot(self.meta_key)

    @property
    def page_pattern(self) -> bytes:
        """A SCAN ``MATCH`` pattern for every page key of this prefix (all stripes)."""
        return f"{{{self.prefix}/*".encode()

    @staticmethod
    def stripe(slot: int) -> int:
        return (slot // STRIPE_PAGES) % STRIPES

    def key(self, slot: int) -> bytes:
        return self._heads[self.stripe(slot)] + b"%d" % slot

    def keys(self, slots: Sequence[int]) -> list[bytes]:
        """:meth:`key` of each slot (the heads are precomputed bytes; this is the hot path)."""
        heads = self._heads
        return [heads[(s // STRIPE_PAGES) % STRIPES] + b"%d" % s for s in slots]

    def hash_slot(self, slot: int) -> int:
        """The Redis Cluster hash slot of page ``slot``'s key."""
        return self._hash_slots[self.stripe(slot)]

    def stripe_hash_slots(self) -> tuple[int, ...]:
        """Hash slot of each stripe's tag, in stripe order."""
        return self._hash_slots


def runs_by_hash_slot(layout: Layout, slot: int, count: int) -> Iterator[tuple[int, int, int]]:
    """Split slots ``slot .. slot+count-1`` at stripe-unit boundaries.

    Yields ``(hash_slot, first, n)``: each run lies in one stripe unit, so its keys share a tag.
    """
    end = slot + count
    first = slot
    while first < end:
        boundary = (first // STRIPE_PAGES + 1) * STRIPE_PAGES
        n = min(boundary, end) - first
        yield layout.hash_slot(first), first, n
        first += n


@dataclass(frozen=True)
class Meta:
    """The area's metadata record (one key): geometry and format version."""

    pages: int
    page_size: int
    stripes: int = STRIPES
    stripe_pages: int = STRIPE_PAGES
    version: int = VERSION

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": FORMAT,
                "version": self.version,
                "pages": self.pages,
                "page_size": self.page_size,
                "stripes": self.stripes,
                "stripe_pages": self.stripe_pages,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes, where: str) -> Meta:
        """Parse a metadata record; :class:`AreaFormatError` if it is not ours or not v1."""
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise AreaFormatError(
                f"{where} holds data that is not a swapio area (foreign data); "
                "choose another prefix"
            )
        version = doc.get("version")
        if version != VERSION:
            raise AreaFormatError(
                f"{where} holds a swapio-redis area of format version {version!r}; "
                f"this swapio reads version {VERSION}"
            )
        values = [doc.get(k) for k in ("pages", "page_size", "stripes", "stripe_pages")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise AreaFormatError(f"{where}: damaged metadata record {raw[:200]!r}")
        pages, page_size, stripes, stripe_pages = values
        assert isinstance(pages, int)
        assert isinstance(page_size, int)
        if (stripes, stripe_pages) != (STRIPES, STRIPE_PAGES):
            raise AreaFormatError(
                f"{where}: layout of {stripes} stripes of {stripe_pages} pages; "
                f"this swapio uses {STRIPES} of {STRIPE_PAGES}"
            )
        return cls(pages=pages, page_size=page_size)
