"""`get_task(name)`: the benchmarks by name, with a clear error that lists the known ones."""

from __future__ import annotations

from collections.abc import Callable

from w4s_jax.tasks.arithmetic_tasks import GSM8K, MGSM, MGSM_LANGUAGES, SVAMP, GSMHard
from w4s_jax.tasks.base import Task
from w4s_jax.tasks.code_tasks import MBPP, HumanEval
from w4s_jax.tasks.gpqa import GPQA
from w4s_jax.tasks.math_task import MATH
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


def known_tasks() -> list[str]:
    return sorted(_FACTORIES)


def get_task(name: str, seed: int = 0) -> Task:
    """The task called `name`; `seed` fixes the splits of single-file sets and option shuffles."""
    factory = _FACTORIES.get(name)
    if factory is None:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(known_tasks())}")
    return factory(seed)
