"""Errors of the executor client: one clear exception per way a call can end without a reply."""

from __future__ import annotations


class ExecutorError(RuntimeError):
    """An executor call that failed for good (after the last retry, or a non-retryable status).

    The message names the endpoint, the model, the attempts made and the last status, so a log line
    alone tells what to fix (a dead URL, a wrong model name, a rate limit that never cleared).
    """

    def __init__(self, message: str, *, endpoint: str = "", model: str = "", attempts: int = 0,
                 last_status: str = "") -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.model = model
        self.attempts = attempts
        self.last_status = last_status

    @property
    def request_rejected(self) -> bool:
        """The endpoint refused this request for what it asks (HTTP 400, 413, 422: a prompt over the
        context length, no valid JSON to return), not for who asks or how often: a fault of the
        request, which a workflow built, rather than of the endpoint or the run's configuration."""
        return self.last_status.startswith(("HTTP 400", "HTTP 413", "HTTP 422"))


class BudgetExceeded(ExecutorError):
    """A call refused *before* sending because its worst-case cost would take spending past the budget."""

    def __init__(self, *, model: str, spent: float, reserved: float, needed: float, budget: float) -> None:
        super().__init__(
            f"executor budget exceeded for model {model!r}: spent ${spent:.6f} + reserved ${reserved:.6f} "
            f"+ this call's worst case ${needed:.6f} > budget ${budget:.6f}; the call was not sent "
            "(raise executor.budget_usd to continue)",
            model=model,
        )
        self.spent = spent
        self.reserved = reserved
        self.needed = needed
        self.budget = budget
