"""Named crash points, for the kill-and-resume tests only (tests/test_kill_resume.py, tests/test_budget.py).

Why: crash recovery is only proven by crashing at the moments that matter (a generation made but not
journaled, a journal line half written, a checkpoint half saved), and waiting for a file to appear
cannot hit those moments deterministically. With `W4S_JAX_CRASH_AT=NAME:K` in the environment, the
process SIGKILLs itself the K-th time it reaches the point NAME (counting from its start). Unset (the
default), `reached` and `due` return after one string comparison: nothing is counted or read.

The points: generation (SamplerPolicy: sampled, not journaled), journal:KIND and journal-torn:KIND
(w4s/journal.py: before a record is written, or with half of it written), executor-call (executor
client: a call starts, the earlier ones cached), budget-reserved (spend_journal: a reservation
journaled, its request not sent), trajectories and result (w4s/runner.py: before those files),
train-step (rlao/trainer.py: a step done, not checkpointed), checkpoint-save and checkpoint-writing
(rlao/checkpointing.py: before a save, and while an async save writes).
"""

from __future__ import annotations

import os
import signal

ENV = "W4S_JAX_CRASH_AT"


def _parse(spec: str) -> tuple[str, int]:
    if not spec:
        return "", 0
    name, _, count = spec.rpartition(":")
    if not name or not count.isdigit() or int(count) < 1:
        raise ValueError(f"{ENV}: expected NAME:K with K >= 1, got {spec!r}")
    return name, int(count)


_NAME, _AT = _parse(os.environ.get(ENV, ""))
_seen = 0


def due(name: str) -> bool:
    """True exactly the K-th time point `name` is reached when `W4S_JAX_CRASH_AT=name:K`; the caller
    then leaves its state as a crash there would (e.g. half a line written) and calls `kill()`."""
    global _seen
    if name != _NAME:
        return False
    _seen += 1
    return _seen == _AT


def kill() -> None:
    """SIGKILL this process: no handler, finally block or atexit runs, as in a real crash."""
    os.kill(os.getpid(), signal.SIGKILL)


def reached(name: str) -> None:
    """The point `name`: SIGKILLs the process when it is due."""
    if due(name):
        kill()
