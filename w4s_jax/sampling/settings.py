"""`SamplingSettings`: the `sampling` config section, typed; and the one temperature range.

Standard library only (loading a config file reads these defaults and imports no JAX).
`TEMPERATURE_MAX` is the OpenAI protocol's upper bound: the config check, the sampler's
`SamplingParams` and `w4s-jax serve` all accept [0, TEMPERATURE_MAX], so a value the config accepts
never fails on the first turn against a server.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from w4s_jax.settings_fields import above, at_least, between, check_fields, setting

TEMPERATURE_MAX = 2.0


def temperature_problem(value: Any) -> str:
    """The problem with a sampling temperature, or '' (0 = greedy)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= TEMPERATURE_MAX
    return "" if ok else f"must be >= 0 and <= {TEMPERATURE_MAX:g}"


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int = setting(512, "maximum tokens generated per reply", above(0))
    temperature: float = setting(0.5, f"sampling temperature in [0, {TEMPERATURE_MAX:g}]; 0 = greedy", temperature_problem)
    top_p: float = setting(1.0, "nucleus sampling threshold (1.0 = off)", between(0.0, 1.0, open_low=True))
    top_k: int = setting(0, "top-k sampling (0 = off)", at_least(0))
    seed: int = setting(0, "seed of `w4s-jax serve`'s sampling and of the demo's simulated executor (the W4S loop "
                           "seeds each meta-agent sample by rollout, turn and candidate)", at_least(0))
    max_prompt_len: int = setting(4096, "longest prompt in tokens; longer prompts are rejected", above(0))
    max_batch: int = setting(64, "most sequences (prompts x candidates) the in-process meta-agent generates together; "
                                 "`w4s-jax aot` reports the largest that fits a slice", above(0))

    def __post_init__(self) -> None:
        check_fields(self, "sampling")
