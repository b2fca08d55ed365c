"""Benchmarks: loaders (grain / JSONL / TFDS / installed packages), task descriptions and scorers.

The names below load on first use (PEP 562): `tasks.settings` is read when a config file loads, which
must not import grain or JAX.
"""

from w4s_jax.lazy_exports import lazy_exports

_HOMES = {
    "DataError": "w4s_jax.data_errors",
    "MissingData": "w4s_jax.data_errors",
    "Example": "w4s_jax.tasks.base",
    "Task": "w4s_jax.tasks.base",
    "get_task": "w4s_jax.tasks.registry",
    "known_tasks": "w4s_jax.tasks.registry",
}

__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
