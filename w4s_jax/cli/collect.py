"""`w4s-jax collect`: run W4S rollouts over tasks x seeds and write RLAO trajectories."""

from __future__ import annotations

import logging

import ml_collections

from w4s_jax.w4s.cli_common import check_run_config, print_summary

DOC = (
    "Run W4S rollouts with the current meta-agent over w4s.tasks x w4s.seeds (all concurrently, "
    "generation batched over them) and write trajectories.jsonl (schema w4s-trajectory/1, "
    "docs/trajectories.md): one record per candidate with its state prompt, reply and reward, the "
    "training data of `w4s-jax train`. Also writes the report, archives and the journal under "
    "output_dir; rerun with the same output_dir to resume after a crash."
)
DEFAULT_CONFIG = "collect.py"


def main(config: ml_collections.ConfigDict) -> None:
    check_run_config(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from w4s_jax.w4s.meta_agent import policy_from_config
    from w4s_jax.w4s.runner import run_w4s

    result = run_w4s(config, policy_from_config(config), config.output_dir)
    print_summary("collect", result)
