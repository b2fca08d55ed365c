"""Which failures are worth retrying and how long to wait: exponential backoff with jitter.

Why our own retries: the openai client's built-in retries are turned off so that every attempt is
counted, honours Retry-After the same way, and the final error names endpoint, model and status.
"""

from __future__ import annotations

import dataclasses
import email.utils
import random
import time

from w4s_jax.executor.settings import ExecutorSettings

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})


@dataclasses.dataclass(frozen=True)
class BackoffPolicy:
    """`base_s * 2**attempt`, capped at `max_s`, scaled by a random factor in [0.5, 1]."""

    max_retries: int = ExecutorSettings.max_retries
    base_s: float = ExecutorSettings.backoff_base_s
    max_s: float = ExecutorSettings.backoff_max_s

    def delay(self, attempt: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt + 1` (0-based attempt that just failed)."""
        if retry_after_s is not None and retry_after_s >= 0:
            return retry_after_s + rng.uniform(0.0, 0.05 * retry_after_s + 0.01)
        ceiling = min(self.max_s, self.base_s * (2**attempt))
        return ceiling * rng.uniform(0.5, 1.0)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
