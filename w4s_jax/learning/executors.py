"""The executor endpoints of the learning experiment: one per (task, seed), each with its own cache.

A seed is a whole replication, executor included, so every (task, seed) gets its own executor:
with `learning.executor=simulated` a simulated executor (w4s_jax/executor/simulated.py, a documented
model of an LLM executor, not a language model) seeded with that seed, started on first use and
stopped when the experiment ends; with `external`, `executor.base_url` (a real executor). Either way
the reply cache is one file per (task, seed): the arms of one seed share it (an identical request
gets the identical reply, as the common random numbers of the simulation give anyway), and no two
seeds ever share a reply.
"""

from __future__ import annotations

import contextlib
import pathlib
from collections.abc import Sequence

from w4s_jax.learning.settings import EXECUTOR_KINDS


class ExperimentExecutors:
    """`url(task, data_dir, seed, splits)` and `cache_path(task, seed)`; close with `close()`."""

    def __init__(self, kind: str, external_url: str, cache_dir: pathlib.Path) -> None:
        if kind not in EXECUTOR_KINDS:
            raise ValueError(f"learning.executor: must be one of {EXECUTOR_KINDS}, got {kind!r}")
        self.kind, self.external_url, self.cache_dir = kind, external_url, cache_dir
        self._stack = contextlib.ExitStack()
        self._urls: dict[tuple[str, int], str] = {}

    def url(self, task: str, data_dir: str, seed: int, splits: Sequence[str]) -> str:
        if self.kind == "external":
            return self.external_url
        if (task, seed) not in self._urls:
            from w4s_jax.executor.simulated import simulated_executor

            self._urls[(task, seed)] = self._stack.enter_context(
                simulated_executor(task, data_dir, seed, splits=tuple(splits)))
        return self._urls[(task, seed)]

    def cache_path(self, task: str, seed: int) -> str:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return str(self.cache_dir / f"{task}-seed{seed}.sqlite")

    def close(self) -> None:
        self._stack.close()
