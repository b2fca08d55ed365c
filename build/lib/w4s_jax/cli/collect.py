"""`w4s-jax collect`: run W4S rollouts over tasks x seeds and write RLAO trajectories."""

from __future__ import annotations

import ml_collections

from w4s_jax.cli import w4s_run

DOC = (
    "Run W4S rollouts with the current meta-agent over w4s.tasks x w4s.seeds (all concurrently, "
    "generation batched over them) and write trajectories.jsonl (schema w4s-trajectory/1, "
    "docs/trajectories.md): one record per candidate with its state prompt, reply and reward, the "
    "training data of `w4s-jax train`. Also writes the report, archives and the journal under "
    "output_dir; rerun with the same output_dir to resume after a crash."
)
DEFAULT_CONFIG = "collect.py"


def main(config: ml_collections.ConfigDict) -> None:
    w4s_run.run("collect", config)
