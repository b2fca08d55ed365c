"""One host of the two-process W4S run (tests/test_w4s_multihost.py); not a test itself.

A whole `run_w4s` (three gsm8k rollouts, shared round-robin by two hosts) with the tiny random
meta-agent in-process and the parent's StandInEndpoint as executor; prints one JSON line with this
host's result.
"""

from __future__ import annotations

import json
import pathlib
import sys

from w4s_jax.config.loading import CONFIGS_DIR, load_config_file
from w4s_jax.config.typed import run_settings
from w4s_jax.parallel.distributed import init_distributed

REPO = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    gguf_path, data_dir, executor_url, output_dir = sys.argv[1:5]
    init_distributed()
    from tests.multihost_child import build_policy
    from w4s_jax.w4s.runner import run_w4s

    config = load_config_file(CONFIGS_DIR / "optimize.py")
    config.task.name = "gsm8k"
    config.task.data_dir = data_dir
    config.task.val_limit = 2
    config.task.test_limit = 2
    config.executor.base_url = executor_url
    config.executor.model = "test-executor"
    config.executor.api_key_env = ""
    config.sandbox.workers = 1
    config.w4s.seeds = "0,1,2"
    config.w4s.candidates_per_turn = 2
    config.w4s.max_iterations = 1
    config.w4s.seed_workflows = "cot"
    config.w4s.progress = False
    config.sampling.max_new_tokens = 16
    policy = build_policy(gguf_path)
    result = run_w4s(run_settings(config), policy, output_dir)
    print(json.dumps({"output_dir": str(result.output_dir), "trajectories": result.trajectory_count,
                      "rounds": policy.rounds,
                      "best": {task: [b.rollout_id, b.val_score, b.test_score] for task, b in result.best_workflows.items()}}),
          flush=True)


if __name__ == "__main__":
    main()
