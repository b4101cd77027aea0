"""The deadlock demonstration: the reserve is what makes progress possible."""

from __future__ import annotations

from swapio.pager.pressure import run_pressure


async def test_with_the_reserve_the_workload_completes_and_the_reserve_holds() -> None:
    result = await run_pressure(reserve=True, resident_pages=32, pages=256, writes=600)
    assert result.completed
    assert not result.stalled
    assert result.verified  # every page reads back what was last written
    assert result.writes_done == result.writes
    assert result.reserve_dips > 0  # the swap-outs really needed the reserve
    # the area declared 2 memalloc requests x 2 reply pages: in-flight memalloc work is
    # capped per area, so the reserve use never exceeds that need (3 requests would)
    assert 0 < result.peak_reserve_used_pages <= 2 * 2
    assert result.pager.writebacks > 0
    assert result.pool_balanced


async def test_without_the_reserve_the_watchdog_reports_the_stall() -> None:
    result = await run_pressure(
        reserve=False, resident_pages=32, pages=256, writes=600, stall_timeout=0.3
    )
    assert not result.completed
    assert result.stalled
    assert result.stall_report is not None
    assert "no progress for 0.3 s" in result.stall_report
    assert "reserve DISABLED" in result.stall_report
    assert result.writes_done < result.writes
    assert result.reserve_dips == 0
    assert result.pager.writebacks == 0  # no swap-out could get its reply buffer
    assert result.pool_balanced  # tearing down the stuck requests leaks nothing


async def test_default_sizes_with_500_writes_complete_and_tear_down() -> None:
    # regression: with 500 writes the run ended with kswapd batches dispatched but not yet
    # started; closing the scheduler before the pager left their pages waiting forever
    result = await run_pressure(reserve=True, writes=500, stall_timeout=1.0)
    assert result.completed
    assert result.verified
    assert result.writes_done == result.writes
    assert result.pool_balanced
