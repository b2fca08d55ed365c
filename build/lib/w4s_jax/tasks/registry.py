"""`get_task(name)`: the benchmarks by name, with a clear error that lists the known ones."""

from __future__ import annotations

from collections.abc import Callable

from w4s_jax.tasks.arithmetic_tasks import GSM8K, MGSM, MGSM_LANGUAGES, SVAMP, GSMHard
from w4s_jax.tasks.base import Task
from w4s_jax.tasks.code_tasks import MBPP, HumanEval
from w4s_jax.tasks.gaia import GAIA
from w4s_jax.tasks.gpqa import GPQA
from w4s_jax.tasks.gsm_plus import GSMPlus
from w4s_jax.tasks.math_task import MATH
from w4s_jax.tasks.mmlu_pro import MMLUPro
from w4s_jax.tasks.reading_tasks import DROP, HotpotQA

_FACTORIES: dict[str, Callable[[int], Task]] = {
    "gsm8k": GSM8K,
    "gsm_hard": GSMHard,
    "svamp": SVAMP,
    "mgsm": MGSM,
    "math": MATH,
    "drop": DROP,
    "hotpotqa": HotpotQA,
    "gpqa": GPQA,
    "humaneval": HumanEval,
    "mbpp": MBPP,
    **{f"mgsm_{lang}": (lambda seed, lang=lang: MGSM(seed, (lang,))) for lang in MGSM_LANGUAGES},
}
# Tasks that take a subset filter (comma-separated): MMLU-Pro categories, GSM-Plus perturbation types, GAIA levels.
_FILTERED: dict[str, Callable[[int, str], Task]] = {"mmlu_pro": MMLUPro, "gsm_plus": GSMPlus, "gaia": GAIA}


def known_tasks() -> list[str]:
    return sorted([*_FACTORIES, *_FILTERED])


def get_task(name: str, seed: int = 0, subset: str = "") -> Task:
    """The task called `name`; `seed` fixes the splits of single-file sets and option shuffles; `subset`
    keeps only some of its examples (tasks in _FILTERED; a ValueError names them for any other task, and
    the known values for an unknown one)."""
    if name in _FILTERED:
        return _FILTERED[name](seed, subset)
    factory = _FACTORIES.get(name)
    if factory is None:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(known_tasks())}")
    if subset.strip():
        raise ValueError(f"task {name!r} takes no subset (got {subset!r}); tasks with subsets: {', '.join(sorted(_FILTERED))}")
    return factory(seed)
