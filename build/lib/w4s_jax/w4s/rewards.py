"""Rewards of one candidate workflow, given the scores it is compared against.

Every candidate of a turn is compared with the same two references taken when the turn began (the
best validation score so far and the previous turn's workflow), so the reward does not depend on the
order in which concurrent evaluations finish.
"""

from __future__ import annotations

import dataclasses

REWARD_RULES = ("discrete", "continuous")


@dataclasses.dataclass(frozen=True)
class RewardRule:
    """The reward settings of `config.w4s`."""

    kind: str = "discrete"
    invalid_reward: float = -0.2
    low_score_threshold: float = 0.3
    low_score_penalty: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in REWARD_RULES:
            raise ValueError(f"reward rule must be one of {REWARD_RULES}, got {self.kind!r}")

    def reward(self, score: float | None, best_so_far: float, previous: float) -> float:
        """`score` None = invalid action (no workflow). Otherwise the discrete or continuous rule."""
        if score is None:
            return self.invalid_reward
        if self.kind == "discrete":
            if score > best_so_far:
                value = 1.0
            elif score > previous:
                value = 0.5
            else:
                value = 0.0
        else:
            # Relative improvement over the best, clipped so a best score near 0 cannot explode it.
            value = min(1.0, max(-1.0, (score - best_so_far) / max(best_so_far, 0.05)))
        if score < self.low_score_threshold:
            value -= self.low_score_penalty
        return value
