"""The seed library: which built-in workflows (`w4s_jax.workflows`) start a rollout's archive.

One cheap, sound workflow per task type by default: chain of thought for answer tasks, write-test-
repair for code tasks. The meta-agent improves from there; more seeds cost one validation run each.
A set name (`SEED_SETS`, e.g. "official": the W4S release's GSM-Hard trio) stands for its workflows.
"""

from __future__ import annotations

from typing import Any

from w4s_jax.config_errors import ConfigError
from w4s_jax.workflows import BUILTIN_WORKFLOWS, SEED_SETS, builtin_source

DEFAULT_SEEDS = {"code": ("code_writer",), "answer": ("cot",)}


def seed_workflows(task: Any, names: str) -> list[tuple[str, str]]:
    """(name, source) pairs from the comma-separated `names` (workflows or set names, each workflow
    once, in order), or the task type's defaults when ''."""
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    if not chosen:
        chosen = list(DEFAULT_SEEDS["code" if task.is_code else "answer"])
    unknown = [name for name in chosen if name not in BUILTIN_WORKFLOWS and name not in SEED_SETS]
    if unknown:
        raise ConfigError(f"w4s.seed_workflows: unknown built-in workflow(s) {unknown}; "
                          f"known: {', '.join(BUILTIN_WORKFLOWS)}; sets: {', '.join(SEED_SETS)}")
    expanded = [member for name in chosen for member in SEED_SETS.get(name, (name,))]
    return [(name, builtin_source(name)) for name in dict.fromkeys(expanded)]
