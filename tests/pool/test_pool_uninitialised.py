"""``PagePool.alloc(zero=False)``: ``kmalloc`` beside the default ``kzalloc``."""

from __future__ import annotations

from swapio.pool import PagePool

PAGE = 4096


async def test_an_uninitialised_buffer_is_counted_like_any_other() -> None:
    pool = PagePool(64, PAGE)
    buf = await pool.alloc(3 * PAGE + 5, zero=False)
    assert buf.nbytes == 3 * PAGE + 5
    assert pool.used_pages == 4
    buf.release()
    assert pool.used_pages == 0


async def test_released_memory_is_reused_by_the_next_uninitialised_buffer() -> None:
    pool = PagePool(64, PAGE)
    first = await pool.alloc(2 * PAGE, zero=False)
    first.view[:] = b"x" * (2 * PAGE)
    first.release()
    again = await pool.alloc(2 * PAGE - 1, zero=False)
    assert bytes(again.view[:4]) == b"xxxx"  # not zeroed again: the caller overwrites it
    again.release()


async def test_a_zeroed_buffer_never_gets_recycled_memory() -> None:
    pool = PagePool(64, PAGE)
    dirty = await pool.alloc(PAGE, zero=False)
    dirty.view[:] = b"y" * PAGE
    dirty.release()
    clean = pool.try_alloc(PAGE)
    assert clean is not None
    assert bytes(clean.view) == bytes(PAGE)
    clean.release()


async def test_spares_stay_under_an_eighth_of_a_small_budget() -> None:
    pool = PagePool(64, PAGE)  # an eighth: 8 pages
    bufs = [await pool.alloc(4 * PAGE, zero=False) for _ in range(3)]
    for buf in bufs:
        buf.release()
    assert pool.spare_bytes == 8 * PAGE  # two kept, the third given back to the allocator


async def test_spares_of_a_large_pool_stop_at_16_mib() -> None:
    pool = PagePool(65536, PAGE)  # 256 MiB: an eighth is 32 MiB, the cap 16
    sizes = [mib << 20 for mib in range(1, 7) for _ in range(4)]  # 84 MiB, four of each size
    bufs = [await pool.alloc(size, zero=False) for size in sizes]
    for buf in bufs:
        buf.release()
    assert 15 << 20 <= pool.spare_bytes <= 16 << 20
