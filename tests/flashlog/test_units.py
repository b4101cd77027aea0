"""The once-only rule's bookkeeping: programmed write units kept as runs per erase block."""

from __future__ import annotations

import random

import pytest
from swapio_flashlog._units import ProgrammedUnits

UNITS = 64  # write units per block in these tests


def first_flag(flags: bytearray, start: int, end: int) -> int:
    return flags.find(1, start, end)


@pytest.mark.parametrize("seed", range(20))
def test_runs_answer_as_one_flag_per_unit_would(seed: int) -> None:
    rng = random.Random(seed)
    units = ProgrammedUnits(3)
    flags = [bytearray(UNITS) for _ in range(3)]
    for _ in range(300):
        block = rng.randrange(3)
        if rng.random() < 0.05:
            marker = rng.choice([0, 0, 3])
            units.erase(block, marker)
            flags[block] = bytearray(b"\x01" * marker + bytes(UNITS - marker))
            continue
        start = rng.randrange(UNITS)
        end = rng.randrange(start + 1, UNITS + 1)
        used = units.first_used(block, start, end)
        assert used == first_flag(flags[block], start, end)
        if used == -1:
            units.mark(block, start, end)
            flags[block][start:end] = b"\x01" * (end - start)
        runs = units.runs(block)
        assert list(runs) == sorted(runs)
        assert all(runs[i] < runs[i + 1] for i in range(len(runs) - 1))  # never touching
        model = bytearray(UNITS)
        for a, b in zip(runs[::2], runs[1::2], strict=True):
            model[a:b] = b"\x01" * (b - a)
        assert model == flags[block]


def test_programs_appended_front_to_back_stay_one_run() -> None:
    units = ProgrammedUnits(1)
    units.erase(0, 3)
    for start in range(3, 59, 7):
        assert units.first_used(0, start, start + 7) == -1
        units.mark(0, start, start + 7)
    assert units.runs(0) == (0, 59)
    assert units.first_used(0, 58, 60) == 58
