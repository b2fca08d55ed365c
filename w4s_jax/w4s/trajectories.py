"""Writes the RLAO training data: one `w4s-trajectory/1` record per candidate (`w4s_jax/trajectory.py`).

The file is written whole at the end of a run from the rollouts' turn logs (atomically, so a reader
never sees half a file); the journal is what survives a crash, and a resumed run rebuilds the same
turn logs from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from w4s_jax.sandbox import workflow_hash
from w4s_jax.trajectory import Trajectory, write_records
from w4s_jax.w4s.atomic import atomic_write
from w4s_jax.w4s.episode import Rollout


def trajectory_records(run_name: str, rollout: Rollout) -> Iterable[dict[str, Any]]:
    """The records of one rollout in their JSON form (hosts exchange them as JSON), in (episode,
    turn, candidate) order."""
    for log in rollout.turns:
        for candidate in log.candidates:
            yield Trajectory(
                run=run_name,
                rollout=rollout.rollout_id,
                task=rollout.task_name,
                seed=rollout.seed,
                episode=log.episode,
                turn=log.turn,
                iteration=log.iteration,
                candidate=candidate.index,
                messages=tuple(log.state),
                repair_branch=tuple(candidate.repair_branch),
                reply=candidate.reply,
                reward=candidate.reward,
                val_score=candidate.score,
                valid_action=candidate.action.valid,
                selected=candidate.selected,
                repairs=candidate.repairs,
                check_failed=candidate.check_failed,
                workflow_hash=workflow_hash(candidate.action.workflow) if candidate.action.valid else "",
                note=candidate.note,
            ).to_json()


def write_trajectories(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Writes the records (`trajectory_records` of every rollout) to `path` (JSONL); returns their number."""
    with atomic_write(path) as handle:
        return write_records(handle, records)
