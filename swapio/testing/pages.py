"""Comparing pages in the kit: a mismatch explained by offset, at once.

pytest explains a failed ``assert a == b`` by diffing ``repr(a)`` and ``repr(b)`` with
difflib — quadratic in the page size, and with ``CI`` set (no truncation) a kit run over a
backend that returns wrong pages took hours instead of failing.  Every hook implementation of
``pytest_assertrepr_compare`` runs, so a plugin cannot replace that explanation: the kit
compares pages here instead and raises its own short message.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["expect_pages"]

_CONTEXT = 8
Pages = bytes | bytearray | memoryview | Sequence[bytes | bytearray | memoryview]


def _first_difference(left: bytes, right: bytes) -> str:
    head = f"{len(left)} bytes != {len(right)} bytes; " if len(left) != len(right) else ""
    for i, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            lo = max(0, i - _CONTEXT)
            return (
                f"{head}first difference at byte {i}: got {left[lo : i + _CONTEXT].hex(' ')}, "
                f"expected {right[lo : i + _CONTEXT].hex(' ')} (from byte {lo})"
            )
    return f"{head}equal up to the shorter length"


def describe(got: Pages, want: Pages) -> str:
    """Where ``got`` and ``want`` (a page or a list of pages) first differ."""
    if isinstance(got, bytes | bytearray | memoryview) or isinstance(
        want, bytes | bytearray | memoryview
    ):
        return _first_difference(bytes(got), bytes(want))  # type: ignore[arg-type]
    if len(got) != len(want):
        return f"{len(got)} pages read, {len(want)} expected"
    for n, (a, b) in enumerate(zip(got, want, strict=True)):
        if bytes(a) != bytes(b):
            return f"page {n} of {len(want)}: {_first_difference(bytes(a), bytes(b))}"
    return "equal"


def _same(got: Pages, want: Pages) -> bool:
    if isinstance(got, bytes | bytearray | memoryview) or isinstance(
        want, bytes | bytearray | memoryview
    ):
        return bytes(got) == bytes(want)  # type: ignore[arg-type]
    return len(got) == len(want) and all(
        bytes(a) == bytes(b) for a, b in zip(got, want, strict=True)
    )


def expect_pages(got: Pages, want: Pages, what: str = "") -> None:
    """``assert got == want`` for pages, failing with where they first differ."""
    __tracebackhide__ = True
    if not _same(got, want):
        raise AssertionError(f"{what + ': ' if what else ''}{describe(got, want)}")
