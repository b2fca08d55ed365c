"""The loop's clock: interval arithmetic (union, intersection, nested and overlapping intervals),
concurrent coroutines counted once, and the attempts a resumed run adds up."""

from __future__ import annotations

import asyncio
import json

import pytest

from w4s_jax import phase_clock
from w4s_jax.phase_clock import PhaseClock, intersection, length, union


class FakeTime:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_union_merges_overlapping_nested_and_touching_intervals_and_drops_empty_ones():
    assert union([]) == []
    assert union([(5.0, 6.0), (1.0, 2.0)]) == [(1.0, 2.0), (5.0, 6.0)]  # sorted, disjoint kept apart
    assert union([(0.0, 3.0), (2.0, 5.0)]) == [(0.0, 5.0)]  # overlapping
    assert union([(0.0, 10.0), (2.0, 3.0), (4.0, 5.0)]) == [(0.0, 10.0)]  # nested
    assert union([(0.0, 1.0), (1.0, 2.0)]) == [(0.0, 2.0)]  # touching
    assert union([(3.0, 3.0), (4.0, 2.0)]) == []  # empty and reversed intervals cover nothing
    assert union([(0.0, 4.0), (1.0, 2.0), (3.0, 6.0), (8.0, 9.0), (8.5, 8.7)]) == [(0.0, 6.0), (8.0, 9.0)]


def test_length_counts_each_second_once():
    assert length([]) == 0.0 and isinstance(length([]), float)  # JSON writes 0.0, as for any other phase
    assert length([(0.0, 2.0), (1.0, 3.0)]) == 3.0  # not 4: the shared second counts once
    assert length([(0.0, 10.0), (2.0, 3.0)]) == 10.0
    assert length([(0.0, 1.0), (5.0, 7.5)]) == 3.5


def test_intersection_of_two_unions():
    assert intersection([], [(0.0, 1.0)]) == []
    assert intersection([(0.0, 1.0)], [(2.0, 3.0)]) == []  # apart
    assert intersection([(0.0, 1.0)], [(1.0, 2.0)]) == []  # touching: no common second
    assert intersection([(0.0, 4.0)], [(1.0, 2.0), (3.0, 6.0)]) == [(1.0, 2.0), (3.0, 4.0)]  # one spans two
    assert intersection([(1.0, 2.0)], [(0.0, 10.0)]) == [(1.0, 2.0)]  # nested
    # Overlapping intervals within one side are merged first: the common time is not counted twice.
    assert intersection([(0.0, 3.0), (1.0, 4.0)], [(2.0, 5.0)]) == [(2.0, 4.0)]
    first, second = [(0.0, 2.0), (3.0, 5.0), (6.0, 9.0)], [(1.0, 4.0), (4.5, 7.0), (8.0, 8.5)]
    common = [(1.0, 2.0), (3.0, 4.0), (4.5, 5.0), (6.0, 7.0), (8.0, 8.5)]
    assert intersection(first, second) == common == intersection(second, first)
    assert length(common) <= min(length(first), length(second))


def test_measure_records_an_interval_even_when_the_block_raises():
    time = FakeTime()
    clock = PhaseClock(time)
    with clock.measure("training"):
        time.now = 2.0
    with pytest.raises(RuntimeError), clock.measure("training"):
        time.now = 5.0
        raise RuntimeError("step failed")
    assert clock.intervals["training"] == [(0.0, 2.0), (2.0, 5.0)]
    assert clock.busy_s("training") == 5.0
    assert clock.busy_s("checkpoint") == 0.0  # a phase never entered


def test_concurrent_coroutines_count_once_and_overlap_is_the_common_time():
    async def scenario() -> PhaseClock:
        time = FakeTime()
        clock = PhaseClock(time)
        gates = {name: asyncio.Event() for name in ("g1", "g2", "e1")}

        async def call(phase: str, gate: str) -> None:
            with clock.measure(phase):
                await gates[gate].wait()

        async def at(now: float, action) -> None:
            time.now = now
            action()
            for _ in range(3):
                await asyncio.sleep(0)  # let the woken or started coroutines run at this time

        tasks = []
        await at(0.0, lambda: tasks.append(asyncio.create_task(call(phase_clock.GENERATION, "g1"))))
        await at(1.0, lambda: tasks.append(asyncio.create_task(call(phase_clock.GENERATION, "g2"))))
        await at(2.0, lambda: tasks.append(asyncio.create_task(call(phase_clock.EVALUATION, "e1"))))
        await at(3.0, gates["g1"].set)
        await at(4.0, gates["g2"].set)
        await at(7.0, gates["e1"].set)
        await asyncio.gather(*tasks)
        time.now = 10.0
        return clock

    clock = asyncio.run(scenario())
    assert clock.busy_s(phase_clock.GENERATION) == 4.0  # [0, 3] and [1, 4]: 4 s, not 6
    assert clock.busy_s(phase_clock.EVALUATION) == 5.0
    assert clock.overlap_s(phase_clock.GENERATION, phase_clock.EVALUATION) == 2.0  # [2, 4]
    attempt = clock.attempt(phase_clock.COLLECTION_PHASES, phase_clock.COLLECTION_OVERLAPS)
    assert attempt == {"wall_s": 10.0,
                       "busy_s": {"generation": 4.0, "evaluation": 5.0, "executor_wait": 0.0},
                       "overlap_s": {"generation+evaluation": 2.0}}


def test_each_run_appends_an_attempt_and_the_totals_add_them_up(tmp_path):
    assert phase_clock.read_totals(tmp_path) is None  # nothing recorded yet
    for seconds in (3.0, 4.0):  # a run, then its resumed rerun
        time = FakeTime()
        clock = PhaseClock(time)
        with clock.measure(phase_clock.TRAINING):
            time.now = seconds
        with clock.measure(phase_clock.CHECKPOINT):
            time.now = seconds + 1.0
        time.now = seconds + 1.5
        path = clock.save(tmp_path, phase_clock.TRAINING_PHASES)
    assert path == tmp_path / phase_clock.FILE_NAME
    assert len(json.loads(path.read_text())["attempts"]) == 2
    assert not list(tmp_path.glob("*.partial"))
    assert phase_clock.read_totals(tmp_path) == {"attempts": 2, "wall_s": 10.0,
                                                 "busy_s": {"training": 7.0, "checkpoint": 2.0},
                                                 "overlap_s": {}}


def test_an_unreadable_file_is_no_timings_not_an_error(tmp_path):
    (tmp_path / phase_clock.FILE_NAME).write_text('{"attempts": [')
    assert phase_clock.read_totals(tmp_path) is None
    PhaseClock().save(tmp_path, phase_clock.TRAINING_PHASES)  # a later run starts the file afresh
    assert phase_clock.read_totals(tmp_path)["attempts"] == 1
