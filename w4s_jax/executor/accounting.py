"""Token and dollar accounting per (model, role), and a hard budget with reservations.

Why reservations: many calls run concurrently, so checking "spent < budget" before each send would
let a burst of calls overshoot. Each call instead reserves its worst-case cost (a conservative
prompt-token estimate plus the full `max_tokens` output for every response) before it is sent, and
settles to its real cost when the reply arrives. Spent + reserved never passes the budget, so the
budget is never exceeded even when calls race.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping

from w4s_jax.executor.errors import BudgetExceeded

TOKENS_PER_MESSAGE_OVERHEAD = 8


def estimate_prompt_tokens_upper_bound(messages: list[dict[str, str]]) -> int:
    """An upper bound on the prompt tokens: every BPE token covers at least one UTF-8 byte."""
    total = 3
    for message in messages:
        total += len(message["content"].encode("utf-8")) + len(message["role"]) + TOKENS_PER_MESSAGE_OVERHEAD
    return total


def reply_tokens(usage: Mapping[str, object] | None, prompt_bound: int, texts: list[str]) -> tuple[int, int]:
    """(prompt, completion) tokens of one reply: the endpoint's `usage` when it reports both, else
    upper bounds (the prompt's bound, the replies' UTF-8 bytes), so an endpoint without usage is
    never under-charged."""
    if usage and all(_count(usage.get(name)) for name in ("prompt_tokens", "completion_tokens")):
        return int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    return prompt_bound, sum(len(text.encode("utf-8")) for text in texts)


def _count(value: object) -> bool:
    """A token count an endpoint may report: a non-negative int (a negative one would refund spending)."""
    return type(value) is int and value >= 0


@dataclasses.dataclass(frozen=True)
class Price:
    """Dollars per million input and output tokens."""

    input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


@dataclasses.dataclass
class ModelUsage:
    """Counters for one (model, role) pair; `to_json` is what `usage()` reports."""

    calls: int = 0
    responses: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0
    format_errors: int = 0
    retries: int = 0
    refused: int = 0
    failed: int = 0

    def add(self, **increments: float) -> None:
        """Adds to named counters (`add(**other.to_json())` adds a whole usage)."""
        for name, value in increments.items():
            setattr(self, name, getattr(self, name) + value)

    def to_json(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


class Ledger:
    """Usage counters and the budget, shared by every call of one client (thread-safe)."""

    def __init__(self, prices: Mapping[str, Mapping[str, float]], budget_usd: float) -> None:
        self.prices = {model: Price(float(p["input"]), float(p["output"])) for model, p in prices.items()}
        self.budget_usd = float(budget_usd)
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self._by_key: dict[tuple[str, str], ModelUsage] = {}
        self._lock = threading.Lock()

    def price(self, model: str) -> Price:
        """The model's price; a model missing from the table (a local server) costs nothing."""
        return self.prices.get(model, Price(0.0, 0.0))

    def reserve(self, model: str, role: str, prompt_tokens_bound: int, max_output_tokens: int) -> float:
        """Reserves the worst-case cost of one request or raises `BudgetExceeded` (nothing is sent).

        A request whose worst case cannot be bounded (a token bound that is not a non-negative int, an
        output cap below 1) raises ValueError: a negative reservation would let the budget be passed."""
        for name, value, least in (("prompt token bound", prompt_tokens_bound, 0),
                                   ("max output tokens", max_output_tokens, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{model}: {name} must be an int >= {least} to bound the call's cost, got "
                                 f"{str(value)[:40]!r}; the call was not sent")
        needed = self.price(model).cost(prompt_tokens_bound, max_output_tokens)
        if not 0.0 <= needed < float("inf"):
            raise ValueError(f"{model}: the worst-case cost of the call ({needed!r} dollars) cannot bound it; "
                             "the call was not sent")
        with self._lock:
            if self.spent_usd + self.reserved_usd + needed > self.budget_usd:
                self._by_key.setdefault((model, role), ModelUsage()).refused += 1
                raise BudgetExceeded(model=model, spent=self.spent_usd, reserved=self.reserved_usd,
                                     needed=needed, budget=self.budget_usd)
            self.reserved_usd += needed
        return needed

    def release(self, reservation: float) -> None:
        """Gives back a reservation of a call that was never answered (nothing was billed)."""
        if not reservation >= 0.0:
            raise ValueError(f"a reservation is never negative, got {reservation!r}")
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - reservation)

    def settle(self, model: str, role: str, reservation: float, prompt_tokens: int,
               completion_tokens: int, responses: int) -> float:
        """Replaces a reservation by the real cost of the reply; returns that cost (never negative)."""
        if not reservation >= 0.0 or min(prompt_tokens, completion_tokens) < 0:
            raise ValueError(f"settle: reservation and token counts are never negative, got {reservation!r}, "
                             f"{prompt_tokens!r}, {completion_tokens!r}")
        cost = self.price(model).cost(prompt_tokens, completion_tokens)
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - reservation)
            self.spent_usd += cost
            entry = self._by_key.setdefault((model, role), ModelUsage())
            entry.calls += 1
            entry.responses += responses
            entry.prompt_tokens += prompt_tokens
            entry.completion_tokens += completion_tokens
            entry.dollars += cost
        return cost

    def close_unanswered(self, model: str, role: str, reservation: float, prompt_bound: int,
                         max_output_tokens: int, maybe_billed: bool) -> None:
        """Closes the reservation of a request that got no reply: one that may have been billed (sent,
        then timed out or dropped) keeps its worst case as spent; any other is released."""
        if maybe_billed:
            self.settle(model, role, reservation, prompt_bound, max_output_tokens, 0)
        else:
            self.release(reservation)

    def count(self, model: str, role: str, **increments: int) -> None:
        """Adds to named counters (cache_hits, format_errors, retries, failed)."""
        with self._lock:
            self._by_key.setdefault((model, role), ModelUsage()).add(**increments)

    def report(self) -> dict[str, object]:
        """JSON-safe: per model and role counters, plus budget, spent, reserved and refused calls."""
        with self._lock:
            per = {f"{model}|{role}": {"model": model, "role": role, **u.to_json()}
                   for (model, role), u in sorted(self._by_key.items())}
            return {
                "by_model_role": per,
                "budget_usd": self.budget_usd,
                "spent_usd": self.spent_usd,
                "reserved_usd": self.reserved_usd,
                "refused_calls": sum(u.refused for u in self._by_key.values()),
                "calls": sum(u.calls for u in self._by_key.values()),
                "cache_hits": sum(u.cache_hits for u in self._by_key.values()),
            }
