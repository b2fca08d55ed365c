"""Live view of a run: one tqdm bar per rollout (turn, best validation score, cost so far, ETA).

tqdm's own rate estimate gives the ETA over the rollout's `max_iterations` turns. With `enabled`
False (tests, logs to a file) nothing is drawn, but turn lines still go to the logger.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from tqdm import tqdm

from w4s_jax.w4s.episode import Rollout, TurnLog

LOG = logging.getLogger("w4s_jax.w4s")


class ProgressView:
    """Call `on_turn` after every turn; `close` at the end."""

    def __init__(self, rollout_ids: list[str], total_turns: int, cost_usd: Callable[[], float],
                 enabled: bool = True) -> None:
        self.cost_usd = cost_usd
        self.bars: dict[str, tqdm] = {}
        if enabled:
            for position, rollout_id in enumerate(rollout_ids):
                self.bars[rollout_id] = tqdm(total=total_turns, desc=rollout_id, position=position,
                                             file=sys.stderr, leave=True, dynamic_ncols=True)

    def on_turn(self, rollout: Rollout, log: TurnLog) -> None:
        best = rollout.archive.best_score()
        scores = [c.score for c in log.candidates if c.evaluated]
        invalid = sum(1 for c in log.candidates if not c.action.valid)
        cost = self.cost_usd()
        LOG.info("%s episode %d turn %d: candidates %s, invalid %d, best validation %.3f, cost $%.4f",
                 rollout.rollout_id, log.episode, log.turn, [round(s, 3) for s in scores], invalid, best, cost)
        bar = self.bars.get(rollout.rollout_id)
        if bar is not None:
            bar.set_postfix_str(f"ep {log.episode} turn {log.turn} best {best:.3f} ${cost:.4f}", refresh=False)
            bar.update(1)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
