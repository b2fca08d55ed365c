"""The executor: an async OpenAI-compatible client (cache, budget, retries, accounting) and a stand-in endpoint.

The names below load on first use (PEP 562): `executor.settings` is read when a config file loads,
which should not pay for importing the HTTP stack.
"""

from w4s_jax.lazy_exports import lazy_exports

_HOMES = {
    "ExecutorClient": "w4s_jax.executor.client",
    "BudgetExceeded": "w4s_jax.executor.errors",
    "ExecutorError": "w4s_jax.executor.errors",
}

__all__ = sorted(_HOMES)

__getattr__ = lazy_exports(__name__, _HOMES)
