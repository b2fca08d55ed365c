"""`w4s-jax rlao`: N rounds of collect (W4S) + train (RLAO), the sampler sharing the trainer's parameters."""

from __future__ import annotations

import functools
import logging
import pathlib

import ml_collections
from absl import logging as absl_logging

from w4s_jax.config_errors import ConfigError
from w4s_jax.rlao.settings import RoundsSettings, TrainingSettings
from w4s_jax.w4s.settings import RunSettings

DOC = (
    "RLAO rounds: collect W4S trajectories with the in-process JAX meta-agent, train on them "
    "(reward-weighted regression), hand the trained parameters to the sampler (Sampler.set_state, same "
    "mesh, no reload) and collect again; rounds.count rounds under output_dir/round_<r>. A rerun with "
    "the same output_dir resumes collection from its journal and training from its checkpoints. "
    "executor.budget_usd caps the whole command (all rounds), also across such reruns."
)
DEFAULT_CONFIG = "rlao.py"


def check_resume_files(output_dir: pathlib.Path) -> None:
    """Reads what a rerun of a killed command will read, before it writes anything: every collection's
    journal and every finished collection's trajectories. A bad line is a DataError naming the file
    (exit 2), with the run's files left as they are (checkpoints are checked as they are restored,
    before their round writes anything)."""
    from w4s_jax.data_errors import DataError
    from w4s_jax.rlao.rounds import finished_collection
    from w4s_jax.trajectory import TrajectoryFormatError, read_trajectories
    from w4s_jax.w4s.journal import read_journal

    for collection in sorted(output_dir.glob("*/collect")):
        for journal in sorted(collection.glob("**/journal.jsonl")):
            read_journal(journal)
        finished = finished_collection(collection)
        if finished is not None:
            try:
                read_trajectories(str(finished.trajectories_path))
            except TrajectoryFormatError as error:
                raise DataError(str(error)) from None


def main(config: ml_collections.ConfigDict) -> None:
    from w4s_jax.cli.w4s_run import checked_run_settings
    from w4s_jax.config.config_checks import validate
    from w4s_jax.config.typed import section_settings, training_settings

    if config.meta_agent.kind != "jax":
        raise ConfigError("meta_agent.kind: rlao trains the in-process meta-agent; fix: --config.meta_agent.kind=jax")
    validate(config, sections=("train", "rlao"))
    training, rounds = training_settings(config), section_settings(config, "rounds")
    run_rlao(checked_run_settings(config), training, rounds)


def run_rlao(settings: RunSettings, training: TrainingSettings, rounds: RoundsSettings) -> None:
    """The rounds with the in-process meta-agent, one budget over all of them; exports when asked."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    from w4s_jax.rlao.loading import export_meta_agent
    from w4s_jax.rlao.rounds import run_rounds
    from w4s_jax.w4s.budget import command_ledger
    from w4s_jax.w4s.meta_agent import in_process_meta_agent
    from w4s_jax.w4s.runner import run_w4s

    check_resume_files(pathlib.Path(settings.output_dir))
    agent = in_process_meta_agent(settings, tokenizer=training.train.tokenizer, seed=training.train.seed)
    # executor.budget_usd caps the whole command: every round's collection and the final one share
    # this ledger, and a rerun continues from what it journaled (output_dir/spent.jsonl).
    ledger = command_ledger(settings.executor, settings.output_dir, agent.policy.process_index,
                            agent.policy.process_count)
    try:
        records, final = run_rounds(
            settings, training, rounds, model_config=agent.model_config, mesh=agent.mesh,
            tokenizer=agent.tokenizer, sampler=agent.sampler, policy=agent.policy,
            collect=functools.partial(run_w4s, ledger=ledger), output_dir=settings.output_dir,
        )  # fmt: skip
    finally:
        ledger.close()
    for record in records:
        print(f"rlao: round {record.round}: {record.train_steps} steps, loss {record.last_metrics.get('loss')}")
    if training.train.export_dir:
        exported = export_meta_agent(agent.model_config, final, training.train.export_dir)
        print(f"rlao: exported the trained meta-agent to {exported}")
