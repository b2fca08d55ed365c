"""Benchmarks: loaders (grain / JSONL / TFDS / installed packages), task descriptions and scorers."""

from w4s_jax.data_errors import DataError, MissingData
from w4s_jax.tasks.base import Example, Task
from w4s_jax.tasks.registry import get_task, known_tasks

__all__ = ["DataError", "Example", "MissingData", "Task", "get_task", "known_tasks"]
