"""The executor: an async OpenAI-compatible client (cache, budget, retries, accounting) and a stand-in endpoint."""

from w4s_jax.executor.client import ExecutorClient
from w4s_jax.executor.errors import BudgetExceeded, ExecutorError

__all__ = ["BudgetExceeded", "ExecutorClient", "ExecutorError"]
