"""Page commands: ``MGET``/``MSET``/``DEL`` of up to 16 keys that share a hash slot (sans-I/O).

In a Redis Cluster a multi-key command may only name keys of one hash slot (``CROSSSLOT``
otherwise); the layout (:mod:`swapio_redis._layout`) puts each stripe unit of 16 slots under
one hash tag, so a contiguous run becomes one command per stripe unit.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from swapio.area import PageBuffer

if TYPE_CHECKING:  # at run time this module needs no redis-py (the plugin's hooks use Kind)
    from ._layout import Layout

#: Keys one MGET/MSET/DEL carries at most (its payload is charged to the pool as one buffer).
MAX_KEYS_PER_COMMAND: Final = 16


class Kind(enum.Enum):
    GET = "MGET"
    SET = "MSET"
    DEL = "DEL"


@dataclass(slots=True)
class Op:
    """One multi-key command on keys of one hash slot."""

    kind: Kind
    hash_slot: int
    slots: list[int]
    keys: list[bytes]
    values: list[PageBuffer] = field(default_factory=list)
    dests: list[memoryview] = field(default_factory=list)
    ask: tuple[str, int] | None = None

    def command(self) -> tuple[Any, ...]:
        if self.kind is Kind.SET:
            args: list[Any] = ["MSET"]
            for key, value in zip(self.keys, self.values, strict=True):
                args.append(key)
                # hiredis's packer takes bytes and memoryviews, not bytearrays
                args.append(value if isinstance(value, bytes | memoryview) else memoryview(value))
            return tuple(args)
        return (self.kind.value, *self.keys)


def build_ops(
    layout: Layout, cluster: bool, kind: Kind, items: Sequence[tuple[int, Any]]
) -> list[Op]:
    """Group ``(slot, page)`` items into ops of one hash slot and <= 16 keys each.

    On a single server every key may share a command, so only the size limit applies.
    """
    if not cluster:
        return [
            _op(layout, kind, 0, items[i : i + MAX_KEYS_PER_COMMAND])
            for i in range(0, len(items), MAX_KEYS_PER_COMMAND)
        ]
    by_hash_slot: dict[int, list[tuple[int, Any]]] = {}
    for item in items:
        by_hash_slot.setdefault(layout.hash_slot(item[0]), []).append(item)
    return [
        _op(layout, kind, hs, run[i : i + MAX_KEYS_PER_COMMAND])
        for hs, run in by_hash_slot.items()
        for i in range(0, len(run), MAX_KEYS_PER_COMMAND)
    ]


def _op(layout: Layout, kind: Kind, hash_slot: int, items: Sequence[tuple[int, Any]]) -> Op:
    slots = [slot for slot, _ in items]
    op = Op(kind, hash_slot, slots, layout.keys(slots))
    if kind is Kind.SET:
        op.values = [page for _, page in items]
    elif kind is Kind.GET:
        op.dests = [page for _, page in items]
    return op
