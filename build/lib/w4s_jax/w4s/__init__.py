"""The W4S MDP: prompts, action parsing, feedback, rewards, episodes, the runner that drives all rollouts
concurrently (one generation batcher for their candidates), the journal, archive, trajectories and report.
Entry point: `w4s_jax.w4s.runner.run_w4s` (docs/w4s_loop.md)."""
