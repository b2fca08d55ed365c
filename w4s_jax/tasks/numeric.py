"""Numeric answers (GSM8K, GSM-Hard, SVAMP, MGSM): the last number in a reply, compared with tolerance.

Replies write numbers many ways: "1,000", "$18.00", "18 dollars", "50%", "-3.5", "3/4", "\\boxed{18}",
"The answer is 18. I hope that helps". The scorer takes the last number of the text (a number as a
whole prediction is used as is) and compares with a relative tolerance; a prediction rounded to d >= 2
decimals also matches a gold value with more decimals (GSM-Hard golds like 2.3333333333).
"""

from __future__ import annotations

import math
import re

_NUMBER = re.compile(
    r"(?<![\w.])(-?\s?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\s?\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?)?|-?\s?\.\d+)"
)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def parse_number(text: str) -> float | None:
    """A float from a number string such as "1,000", "-3.5", "3/4" or ".5"; None if it is not one."""
    cleaned = text.replace(",", "").replace(" ", "").strip()
    try:
        if "/" in cleaned:
            numerator, denominator = cleaned.split("/", 1)
            return float(numerator) / float(denominator)
        return float(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def extract_number(prediction: object) -> tuple[float, int] | None:
    """(value, decimals written) of the answer in a prediction; None if it holds no number."""
    if isinstance(prediction, bool) or prediction is None:
        return None
    if isinstance(prediction, int | float):
        return (float(prediction), 0) if math.isfinite(prediction) else None
    text = str(prediction)
    boxed = _BOXED.findall(text)
    if boxed:
        text = boxed[-1]
    matches = _NUMBER.findall(text)
    for match in reversed(matches):
        value = parse_number(match)
        if value is not None and math.isfinite(value):
            digits = match.replace(",", "").split(".")
            decimals = len(digits[1]) if len(digits) == 2 and "/" not in match else 0
            return value, decimals
    return None


def numbers_match(predicted: float, decimals: int, gold: float, rel_tol: float = 1e-4) -> bool:
    if math.isclose(predicted, gold, rel_tol=rel_tol, abs_tol=1e-6):
        return True
    return decimals >= 2 and math.isclose(round(gold, decimals), predicted, abs_tol=10 ** -(decimals + 3))


def score_numeric(prediction: object, gold: str | float) -> float:
    """1.0 if the last number in `prediction` equals `gold` within tolerance, else 0.0."""
    extracted = extract_number(prediction)
    gold_value = gold if isinstance(gold, float | int) else parse_number(str(gold))
    if extracted is None or gold_value is None:
        return 0.0
    return 1.0 if numbers_match(extracted[0], extracted[1], float(gold_value)) else 0.0
