"""Built-in baseline workflows in the paper's interface: the baselines of `w4s-jax eval` and the
seed library of the W4S loop. Each is a plain `.py` file defining `solver(agent, task)`; callers read
its source text (workflows always run in the sandbox, never imported into the trainer)."""

from __future__ import annotations

import pathlib

WORKFLOW_DIR = pathlib.Path(__file__).resolve().parent
BUILTIN_WORKFLOWS: dict[str, str] = {
    "cot": "Chain of thought: one step-by-step executor call.",
    "cot_sc": "Chain of thought with self-consistency: 5 samples, majority vote.",
    "self_refine": "Self-Refine: answer, critique and revise (up to 2 rounds).",
    "code_generation": "Program-aided: the executor writes solution(), execute_code runs it.",
    "code_writer": "Code tasks: write the function, test on the public tests, repair.",
    "official_cot": "The W4S release's GSM-Hard seed: chain of thought at temperature 0.8 as a math expert.",
    "official_cot_sc": "The W4S release's GSM-Hard seed: 5 math-expert answers at 0.8, majority vote.",
    "official_code_generation": "The W4S release's GSM-Hard seed: generated solution() run by execute_code.",
}
# Named sets of built-in workflows, usable as one name in `w4s.seed_workflows`.
SEED_SETS: dict[str, tuple[str, ...]] = {
    "official": ("official_cot", "official_cot_sc", "official_code_generation"),  # the W4S release's trio
}


def builtin_source(name: str) -> str:
    """The source of a built-in workflow, or KeyError naming the known ones."""
    if name not in BUILTIN_WORKFLOWS:
        raise KeyError(f"unknown built-in workflow {name!r}; known: {', '.join(BUILTIN_WORKFLOWS)}")
    return (WORKFLOW_DIR / f"{name}.py").read_text(encoding="utf-8")
