"""The seed library: which built-in workflows (`w4s_jax.workflows`) start a rollout's archive.

One cheap, sound workflow per task type by default: chain of thought for answer tasks, write-test-
repair for code tasks. The meta-agent improves from there; more seeds cost one validation run each.
"""

from __future__ import annotations

from typing import Any

from w4s_jax.config.errors import ConfigError
from w4s_jax.workflows import BUILTIN_WORKFLOWS, builtin_source

DEFAULT_SEEDS = {"code": ("code_writer",), "answer": ("cot",)}


def seed_workflows(task: Any, names: str) -> list[tuple[str, str]]:
    """(name, source) pairs from the comma-separated `names`, or the task type's defaults when ''."""
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    if not chosen:
        chosen = list(DEFAULT_SEEDS["code" if task.is_code else "answer"])
    unknown = [name for name in chosen if name not in BUILTIN_WORKFLOWS]
    if unknown:
        raise ConfigError(f"w4s.seed_workflows: unknown built-in workflow(s) {unknown}; "
                          f"known: {', '.join(BUILTIN_WORKFLOWS)}")
    return [(name, builtin_source(name)) for name in chosen]
