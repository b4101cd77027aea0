"""Page commands: ``MGET``/``MSET``/``DEL`` of up to 16 keys that share a hash slot (sans-I/O).

In a Redis Cluster a multi-key command may only name keys of one hash slot (``CROSSSLOT``
otherwise); the layout (:mod:`swapio_redis._layout`) puts each stripe unit of 16 slots under
one hash tag, so a contiguous run becomes one command per stripe unit.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from swapio.area import PageBuffer

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
                args.append(value)
            return tuple(args)
        return (self.kind.value, *self.keys)


def build_ops(
    layout: Layout, cluster: bool, kind: Kind, items: Sequence[tuple[int, Any]]
) -> list[Op]:
    """Group ``(slot, page)`` items into ops of one hash slot and <= 16 keys each.

    On a single server every key may share a command, so only the size limit applies.
    """
    open_ops: dict[int, Op] = {}
    done: list[Op] = []
    for slot, page in items:
        hs = layout.hash_slot(slot) if cluster else 0
        op = open_ops.get(hs)
        if op is None or len(op.keys) >= MAX_KEYS_PER_COMMAND:
            op = Op(kind, hs, [], [])
            open_ops[hs] = op
            done.append(op)
        op.slots.append(slot)
        op.keys.append(layout.key(slot))
        if kind is Kind.SET:
            op.values.append(page)
        elif kind is Kind.GET:
            op.dests.append(page)
    return done
