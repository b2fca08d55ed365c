"""`SamplingParams` (what to generate) and `Completion` (what came out), validated up front."""

from __future__ import annotations

import dataclasses

from w4s_jax.sampling.settings import TEMPERATURE_MAX, temperature_problem


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to sample one request; every field is a per-row runtime value of the compiled sampler.

    `temperature=0` is greedy. `stop_token_ids=None` stops at the tokenizer's end-of-sequence and
    end-of-turn ids; an explicit tuple replaces them (`()` = run to `max_new_tokens`). Stop strings
    are matched on the decoded text; the text is cut right before the first match.
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    seed: int = 0
    stop_token_ids: tuple[int, ...] | None = None
    stop_strings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Lists are accepted for convenience (JSON, configs) and frozen into tuples.
        if self.stop_token_ids is not None and not isinstance(self.stop_token_ids, tuple):
            object.__setattr__(self, "stop_token_ids", tuple(self.stop_token_ids))
        if isinstance(self.stop_strings, str):
            object.__setattr__(self, "stop_strings", (self.stop_strings,))
        elif not isinstance(self.stop_strings, tuple):
            object.__setattr__(self, "stop_strings", tuple(self.stop_strings))
        self.validate()

    def validate(self) -> None:
        """Raises ValueError naming the field for values the sampler cannot honour."""
        _check_int("max_new_tokens", self.max_new_tokens, minimum=1)
        _check_int("n", self.n, minimum=1)
        _check_int("top_k", self.top_k, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        if temperature_problem(self.temperature):
            raise ValueError(f"temperature = {self.temperature!r}; expected a number in [0, {TEMPERATURE_MAX:g}] (0 = greedy)")
        if not isinstance(self.top_p, (int, float)) or isinstance(self.top_p, bool) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p = {self.top_p!r}; expected a number in (0, 1]")
        for token in self.stop_token_ids or ():
            _check_int("stop_token_ids[]", token, minimum=0)
        for stop in self.stop_strings:
            if not isinstance(stop, str) or not stop:
                raise ValueError(f"stop_strings contains {stop!r}; expected non-empty strings")

    @property
    def is_greedy(self) -> bool:
        return self.temperature == 0

    @property
    def needs_filtering(self) -> bool:
        """Top-k/top-p need a sort of the vocabulary; plain sampling and greedy do not."""
        return not self.is_greedy and (self.top_k > 0 or self.top_p < 1)

    def replace(self, **changes) -> SamplingParams:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Completion:
    """One sampled reply.

    `token_ids` and `logprobs` cover the reply's tokens only: a stop token is not included (it is
    reported as `finish_reason="stop"`), and a stop string cuts text, tokens and logprobs alike at the
    token where the match starts. `logprobs[i]` is log_softmax of the model's raw (temperature-free)
    logits at `token_ids[i]`: the policy's own log-probability, independent of the sampling knobs.
    """

    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: str  # "stop" (stop token or stop string) or "length" (max_new_tokens reached)
    prompt_tokens: int


def _check_int(name: str, value: object, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} = {value!r}; expected an integer >= {minimum}")
