"""The fragment index: newest version wins per byte, whatever order nodes arrive in."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from swapio_flashlog._index import DirentIndex, FileState, NodeRef, RefKind
from swapio_flashlog._nodes import JFFS2_PAGE, Dirent

FILE = 3 * JFFS2_PAGE

ranges = st.tuples(st.integers(0, FILE - 1), st.integers(1, FILE)).map(
    lambda t: (t[0], min(t[1], FILE - t[0]))
)


def node(version: int, foff: int, dsize: int) -> NodeRef:
    return NodeRef(RefKind.INODE, 0, 0, 0, 0, 2, version, foff, dsize)


def newest_at(state: FileState, pos: int) -> int | None:
    frags = state.chunks.get(pos // JFFS2_PAGE, [])
    for frag in reversed(frags):  # ascending version order: the last covering one wins
        if frag.foff <= pos < frag.foff + frag.dsize:
            return frag.version
    return None


@settings(max_examples=300)
@given(st.lists(ranges, min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_newest_version_wins_per_byte_in_any_arrival_order(
    spans: list[tuple[int, int]], rnd: object
) -> None:
    nodes = [node(v + 1, foff, dsize) for v, (foff, dsize) in enumerate(spans)]
    order = list(nodes)
    rnd.shuffle(order)  # type: ignore[attr-defined]
    obsoleted: list[NodeRef] = []
    state = FileState(2)
    for ref in order:
        state.add(ref, 0o100600, FILE, obsoleted.append)
    visible: set[int] = set()
    for pos in range(0, FILE, 61):  # a stride that hits every chunk boundary region
        expected = max((n.version for n in nodes if n.foff <= pos < n.foff + n.dsize), default=None)
        assert newest_at(state, pos) == expected
    for n in nodes:
        span = range(n.foff, n.foff + n.dsize)
        if any(
            max(m.version for m in nodes if m.foff <= p < m.foff + m.dsize) == n.version
            for p in span
        ):
            visible.add(n.version)
    assert {n.version for n in nodes if n.refs > 0} == visible
    assert {n.version for n in obsoleted} == {n.version for n in nodes} - visible
    assert state.highest_version == len(nodes)


def test_equal_versions_are_duplicates_and_one_copy_serves() -> None:
    state = FileState(2)
    gone: list[NodeRef] = []
    first, copy = node(5, 0, JFFS2_PAGE), node(5, 0, JFFS2_PAGE)
    state.add(first, 0, FILE, gone.append)
    state.add(copy, 0, FILE, gone.append)
    assert state.chunks[0] == [first]
    assert gone == [copy]


def test_newer_dirent_replaces_older_and_deletion_hides_the_name() -> None:
    index = DirentIndex()
    gone: list[NodeRef] = []

    def dirent(version: int, ino: int) -> NodeRef:
        d = Dirent(1, version, ino, b"swapfile")
        return NodeRef(RefKind.DIRENT, 0, 0, 0, 0, ino, version, dirent=d)

    old, new, older = dirent(1, 2), dirent(2, 3), dirent(0, 9)
    index.add(old, gone.append)
    index.add(new, gone.append)
    index.add(older, gone.append)
    assert index.lookup(1, b"swapfile") == 3
    assert gone == [old, older]
    index.add(dirent(3, 0), gone.append)
    assert index.lookup(1, b"swapfile") is None
    assert index.highest[1] == 3


def _placed(spans: list[tuple[int, int]], first: int) -> tuple[FileState, list[NodeRef]]:
    state = FileState(2)
    obsoleted: list[NodeRef] = []
    for v, (foff, dsize) in enumerate(spans):
        state.add(node(first + v, foff, dsize), 0o100600, FILE, obsoleted.append)
    return state, obsoleted


@settings(max_examples=200)
@given(
    st.lists(ranges, max_size=6),
    st.lists(st.integers(0, FILE // JFFS2_PAGE - 1), min_size=1, max_size=5),
)
def test_a_run_of_whole_pages_is_indexed_as_node_by_node(
    old: list[tuple[int, int]], chunks: list[int]
) -> None:
    # the swap-out path's add_pages must leave the index, every node's reference count and
    # the obsoleted nodes exactly as one add() per node would (duplicate chunks included)
    fast, fast_gone = _placed(old, 1)
    slow, slow_gone = _placed(old, 1)
    run = len(old) + 1
    fast.add_pages(
        [node(run + i, c * JFFS2_PAGE, JFFS2_PAGE) for i, c in enumerate(chunks)],
        0o100600,
        FILE,
        fast_gone.append,
    )
    for i, c in enumerate(chunks):
        slow.add(node(run + i, c * JFFS2_PAGE, JFFS2_PAGE), 0o100600, FILE, slow_gone.append)

    def view(state: FileState) -> dict[int, list[tuple[int, int, int]]]:
        return {k: [(f.version, f.foff, f.refs) for f in v] for k, v in state.chunks.items()}

    assert view(fast) == view(slow)
    assert sorted(n.version for n in fast_gone) == sorted(n.version for n in slow_gone)
    assert fast.highest_version == slow.highest_version
