"""`PhaseClock`: where the W4S loop's wall-clock time goes, phase by phase.

Why: the loop's cost is wall time, and its phases run concurrently. Many rollouts generate,
evaluate and wait on the executor at once, so adding up each call's duration would count the same
second several times. A phase's time is instead the length of the UNION of its intervals (the
seconds in which at least one call of that phase was in progress), and the overlap of two phases is
the length of the intersection of their unions (e.g. how much meta-agent generation was hidden
behind sandbox evaluation).

The W4S runner's collaborators record into one clock (generation batcher, evaluations, executor
client); the RLAO trainer records train steps and checkpoint saves. Each process run appends its
totals to `phase_times.json` in its output directory as one attempt, so a resumed run adds to what
the earlier ones measured (a process killed outright loses only its own attempt). Standard library
only: every layer may import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

Interval = tuple[float, float]

GENERATION = "generation"  # the meta-agent's replies (`GenerationBatcher` -> `Policy.generate`)
EVALUATION = "evaluation"  # workflows running in the sandbox, their executor calls included
EXECUTOR_WAIT = "executor_wait"  # executor HTTP calls awaited (cache misses, retries included)
TRAINING = "training"  # RLAO train steps, compilation included
CHECKPOINT = "checkpoint"  # the train loop blocked on orbax saves
COLLECTION_PHASES = (GENERATION, EVALUATION, EXECUTOR_WAIT)
COLLECTION_OVERLAPS = ((GENERATION, EVALUATION),)
TRAINING_PHASES = (TRAINING, CHECKPOINT)
FILE_NAME = "phase_times.json"


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, disjoint intervals covering exactly the seconds some interval covers (touching
    intervals merge; empty ones vanish)."""
    merged: list[Interval] = []
    for start, end in sorted(interval for interval in intervals if interval[1] > interval[0]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def intersection(first: Iterable[Interval], second: Iterable[Interval]) -> list[Interval]:
    """The seconds both sets of intervals cover, as sorted disjoint intervals."""
    a, b = union(first), union(second)
    common: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if end > start:
            common.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return common


def length(intervals: Iterable[Interval]) -> float:
    """Seconds covered by `intervals`, each second counted once."""
    return sum((end - start for start, end in union(intervals)), 0.0)


def overlap_name(first: str, second: str) -> str:
    return f"{first}+{second}"


class PhaseClock:
    """Wall-clock intervals per phase in one process; `measure` works around awaits, so concurrent
    coroutines each record their own interval."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self.started = now()
        self.intervals: dict[str, list[Interval]] = {}

    @contextlib.contextmanager
    def measure(self, phase: str) -> Iterator[None]:
        """Records the time inside the block as one interval of `phase` (also when it raises)."""
        start = self._now()
        try:
            yield
        finally:
            self.intervals.setdefault(phase, []).append((start, self._now()))

    def busy_s(self, phase: str) -> float:
        return length(self.intervals.get(phase, ()))

    def overlap_s(self, first: str, second: str) -> float:
        return length(intersection(self.intervals.get(first, ()), self.intervals.get(second, ())))

    def attempt(self, phases: Sequence[str], overlaps: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
        """This process's totals so far: wall time since the clock started, busy time per phase,
        overlap per pair (JSON-ready)."""
        return {"wall_s": self._now() - self.started,
                "busy_s": {phase: self.busy_s(phase) for phase in phases},
                "overlap_s": {overlap_name(*pair): self.overlap_s(*pair) for pair in overlaps}}

    def save(self, directory: str | os.PathLike[str], phases: Sequence[str],
             overlaps: Sequence[tuple[str, str]] = ()) -> pathlib.Path:
        """Appends this process's attempt to `directory/phase_times.json` (replaced whole, atomically)."""
        path = pathlib.Path(directory) / FILE_NAME
        attempts = read_attempts(path)
        attempts.append(self.attempt(phases, overlaps))
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps({"attempts": attempts}, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, path)
        return path


def read_attempts(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The attempts in a `phase_times.json`; none when the file is missing or unreadable (timings
    are a report, never a reason for a run to fail)."""
    try:
        attempts = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))["attempts"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return attempts if isinstance(attempts, list) else []


def read_totals(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The sum over the attempts in `directory/phase_times.json` (attempts run one after the other,
    so their times add up), with their count; None when nothing was recorded."""
    attempts = read_attempts(pathlib.Path(directory) / FILE_NAME)
    if not attempts:
        return None
    totals: dict[str, Any] = {"attempts": len(attempts), "wall_s": 0.0, "busy_s": {}, "overlap_s": {}}
    for attempt in attempts:
        totals["wall_s"] += attempt.get("wall_s", 0.0)
        for field in ("busy_s", "overlap_s"):
            for name, seconds in attempt.get(field, {}).items():
                totals[field][name] = totals[field].get(name, 0.0) + seconds
    return totals
