"""`w4s-jax optimize`: a given meta-agent improves a workflow for one task (W4S at inference time)."""

from __future__ import annotations

import ml_collections

from w4s_jax.cli import w4s_run
from w4s_jax.config_errors import ConfigError

DOC = (
    "W4S at inference time: the meta-agent (meta_agent.kind='jax': the in-process model at "
    "model.preset/model.path; 'openai': any OpenAI-compatible endpoint at meta_agent.base_url) writes "
    "workflows for task.name, the executor runs them on the validation split, and the loop keeps the "
    "best. The final workflow is chosen on validation and scored once on the test split. Writes "
    "report.md, validation_curve.png, best_workflow_<task>.py, archive/, journal.jsonl and "
    "trajectories.jsonl under output_dir; rerun with the same output_dir to resume after a crash."
)
DEFAULT_CONFIG = "optimize.py"


def main(config: ml_collections.ConfigDict) -> None:
    if config.w4s.tasks and config.w4s.tasks != config.task.name:
        raise ConfigError("w4s.tasks: optimize works on one task, task.name; leave w4s.tasks empty "
                          "(use `w4s-jax collect` for several tasks)")
    w4s_run.run("optimize", config)
