"""`w4s-jax rlao`: N rounds of collect (W4S) + train (RLAO), the sampler sharing the trainer's parameters."""

from __future__ import annotations

import logging

import ml_collections
from absl import logging as absl_logging

from w4s_jax.config.errors import ConfigError

DOC = (
    "RLAO rounds: collect W4S trajectories with the in-process JAX meta-agent, train on them "
    "(reward-weighted regression), hand the trained parameters to the sampler (Sampler.set_state, same "
    "mesh, no reload) and collect again; rounds.count rounds under output_dir/round_<r>. A rerun with "
    "the same output_dir resumes collection from its journal and training from its checkpoints."
)
DEFAULT_CONFIG = "rlao.py"


def main(config: ml_collections.ConfigDict) -> None:
    from w4s_jax.cli.w4s_run import check_run_config

    if config.meta_agent.kind != "jax":
        raise ConfigError("meta_agent.kind: rlao trains the in-process meta-agent; fix: --config.meta_agent.kind=jax")
    check_run_config(config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    from w4s_jax.cli.w4s_run import in_process_meta_agent
    from w4s_jax.rlao.loading import export_meta_agent
    from w4s_jax.rlao.rounds import run_rounds
    from w4s_jax.w4s.runner import run_w4s

    agent = in_process_meta_agent(config)
    records, final = run_rounds(
        config, model_config=agent.model_config, mesh=agent.mesh, model_params=agent.params,
        tokenizer=agent.tokenizer, sampler=agent.sampler, policy=agent.policy, collect=run_w4s,
        output_dir=config.output_dir,
    )  # fmt: skip
    for record in records:
        print(f"rlao: round {record.round}: {record.train_steps} steps, loss {record.last_metrics.get('loss')}")
    if config.train.export_dir:
        print(f"rlao: exported the trained meta-agent to {export_meta_agent(agent.model_config, final, config.train.export_dir)}")
