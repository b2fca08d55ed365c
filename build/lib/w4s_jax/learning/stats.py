"""Intervals for held-out scores: per arm over seeds, and paired differences between arms.

The unit of replication is a seed: one seed is one whole optimization (the meta-agent's samples and
the executor's draws), so an arm's test score gets a t-interval over its per-seed scores. Arms run
with the same seed are scored on the same test problems by the same (simulated) executor draws, so
their difference is paired: per seed, the mean over problems of (score_a - score_b); its t-interval
over seeds is the headline interval. A second interval resamples problems within each seed
(bootstrap): it says how sure the difference is *given these optimizations*, and is narrower because
it ignores how much the choice of workflow varies from seed to seed.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence

from scipy import stats as scipy_stats

CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 2000

PerSeed = Mapping[int, Mapping[str, float]]  # seed -> test problem id -> score in [0, 1]


def t_interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """(mean, low, high) of a 95% t-interval; no interval from one value."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None, None
    quantile = float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, len(values) - 1))  # plain floats: reports are JSON
    half = quantile * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def seed_scores(per_seed: PerSeed) -> dict[int, float]:
    """The test score of each seed: the mean over its problems."""
    return {seed: statistics.fmean(scores.values()) for seed, scores in per_seed.items() if scores}


def score_summary(per_seed: PerSeed) -> dict:
    """An arm's test score: per seed, mean and 95% t-interval over seeds, problems per seed."""
    scores = seed_scores(per_seed)
    mean, low, high = t_interval(list(scores.values()))
    return {"per_seed": {str(seed): value for seed, value in scores.items()}, "mean": mean, "low": low,
            "high": high, "problems": sorted({len(s) for s in per_seed.values()})}


def paired_difference(a: PerSeed, b: PerSeed, *, seed: int = 0) -> dict:
    """a - b on the problems both scored under the same seed: per seed, mean, t-interval over seeds,
    and the within-seed problem bootstrap interval (module doc)."""
    differences: dict[int, list[float]] = {}
    for run_seed in sorted(set(a) & set(b)):
        common = sorted(set(a[run_seed]) & set(b[run_seed]))
        if common:
            differences[run_seed] = [a[run_seed][i] - b[run_seed][i] for i in common]
    if not differences:
        raise ValueError("paired_difference: no seed scored the same problems in both arms")
    per_seed = {s: statistics.fmean(d) for s, d in differences.items()}
    mean, low, high = t_interval(list(per_seed.values()))
    rng = random.Random(seed)
    draws = []
    for _ in range(BOOTSTRAP_DRAWS):
        draws.append(statistics.fmean(statistics.fmean(rng.choices(d, k=len(d))) for d in differences.values()))
    draws.sort()
    tail = (1 - CONFIDENCE) / 2
    return {"per_seed": {str(s): v for s, v in per_seed.items()}, "mean": mean, "low": low, "high": high,
            "bootstrap_low": draws[int(tail * BOOTSTRAP_DRAWS)],
            "bootstrap_high": draws[int((1 - tail) * BOOTSTRAP_DRAWS) - 1],
            "excludes_zero": bool(low is not None and (low > 0 or high < 0))}
