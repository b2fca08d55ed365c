"""The W4S MDP: prompts, action parsing, feedback, rewards, episodes, the asyncio rollout actor, the
journal, archive, trajectories and report. Entry point: `w4s_jax.w4s.runner.run_w4s` (docs/w4s_loop.md)."""
