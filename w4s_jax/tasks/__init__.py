"""Benchmarks: loaders (grain / JSONL / TFDS), task descriptions and scorers."""

from w4s_jax.tasks.base import Example, Task
from w4s_jax.tasks.loaders import DataError
from w4s_jax.tasks.registry import get_task, known_tasks

__all__ = ["DataError", "Example", "Task", "get_task", "known_tasks"]
