"""Numeric answers (GSM8K, GSM-Hard, SVAMP, MGSM): the last number in a reply, matched exactly.

Replies write numbers many ways: "1,000", "$18.00", "18 dollars", "50%", "-3.5", "3/4", "2.0107e-06",
"\\boxed{18}", "The answer is 18. I hope that helps". The scorer takes the last number of the text (a
number as a whole prediction is used as is) and compares it with the gold in exact rational arithmetic.

What the official scorers do, and what is followed here:
- GSM8K in AFlow (MetaGPT `metagpt/ext/aflow/benchmark/gsm8k.py`): last number of the output, commas
  dropped, correct iff `abs(gold - prediction) <= 1e-6`.
- GSM-Hard in PAL, the set's authors (`reasoning-machines/pal`, `scripts/gsm_eval.py`):
  `float(answer)`, correct iff `abs(answer - target) < 1e-3`.
- GSM-Hard in the W4S release (`fannie1208/W4S`, `src/tasks/gsmhard/task_gsmhard.py`): `float(answer)`,
  correct iff `abs(target - prediction) < 0.1`.
All three use an absolute tolerance, so a near miss on a large gold (6277333999 for 6277334000) is
wrong under each of them. The rule here:
- an integer gold is matched within 1e-6 (AFlow): float noise of a computed answer such as
  17.999999999999996 passes, any other number does not;
- a gold written with d decimals is matched within half a unit of its last decimal (the gold may have
  been rounded there), never looser than PAL's 1e-3 and never tighter than 1e-6. So for the GSM-Hard
  gold 2.3333333333, "2.33" and "2.333" are wrong and "2.333333" or 2.3333333333333335 are right; for
  the gold 2.0107e-06, 0 is wrong (PAL's 1e-3 would accept it). W4S's 0.1 is not followed: it would
  accept 2.3 for 2.3333333333.
Scientific notation ("6.277334e9") counts, as it does under the float() of PAL and W4S: GSM-Hard golds
and `str()` of a small Python float are written that way.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

INTEGER_TOLERANCE = Fraction(1, 10**6)  # AFlow's GSM8K tolerance: float noise only
DECIMAL_TOLERANCE_CAP = Fraction(1, 10**3)  # PAL's GSM-Hard tolerance: the loosest allowed
# Exact conversion of "1e999999999" would build a billion-digit integer: a number written with more
# digits or a larger exponent than these is not taken as a number (such an answer scores 0).
MAX_DIGITS = 1000
MAX_EXPONENT = 1000

_NUMBER = re.compile(
    r"(?<![\w.])(-?\s?\d{1,3}(?:,\d{3})+(?:\.\d+)?"
    r"|-?\s?\d+(?:\.\d+)?(?:/\d+(?:\.\d+)?|[eE][-+]?\d+)?"
    r"|-?\s?\.\d+)"
)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def parse_number(text: str) -> Fraction | None:
    """The exact value of a number string such as "1,000", "-3.5", "3/4", ".5" or "2e-06"; None if not one."""
    cleaned = text.replace(",", "").replace(" ", "").strip()
    if len(cleaned) > 2 * MAX_DIGITS + 16:  # before Decimal() reads it: nothing this long is in bounds
        return None
    try:
        if "/" in cleaned:
            numerator, denominator = (_bounded_decimal(part) for part in cleaned.split("/", 1))
            if numerator is None or denominator is None:
                return None
            return Fraction(numerator) / Fraction(denominator)
        value = _bounded_decimal(cleaned)
    except (InvalidOperation, ValueError, ZeroDivisionError):
        return None
    return None if value is None else Fraction(value)


def _bounded_decimal(text: str) -> Decimal | None:
    """Decimal(text) when it is finite with at most MAX_DIGITS digits and |exponent| <= MAX_EXPONENT,
    else None: checked before any exact (Fraction) conversion, whose cost grows with 10**exponent."""
    value = Decimal(text)
    if not value.is_finite():
        return None
    digits, exponent = value.as_tuple().digits, value.as_tuple().exponent
    if len(digits) > MAX_DIGITS or abs(exponent) > MAX_EXPONENT or abs(value.adjusted()) > MAX_EXPONENT:
        return None
    return value


def written_decimals(text: str) -> int | None:
    """Decimals a number string shows ("2.50" -> 2, "2.0107e-06" -> 10, "18" -> 0); None for a fraction."""
    cleaned = text.replace(",", "").replace(" ", "").strip()
    try:
        value = _bounded_decimal(cleaned)
        if value is None:
            return None
        exponent = value.as_tuple().exponent
    except (InvalidOperation, ValueError):
        return None
    return max(0, -exponent) if isinstance(exponent, int) else None


def extract_number(prediction: object) -> Fraction | None:
    """The exact value of the answer in a prediction (its last number); None if it holds no number."""
    if isinstance(prediction, bool) or prediction is None:
        return None
    if isinstance(prediction, int):
        return Fraction(prediction) if len(str(abs(prediction))) <= MAX_DIGITS else None
    if isinstance(prediction, float):
        return Fraction(prediction) if math.isfinite(prediction) else None
    text = str(prediction)
    boxed = _BOXED.findall(text)
    if boxed:
        text = boxed[-1]
    for match in reversed(_NUMBER.findall(text)):
        value = parse_number(match)
        if value is not None:
            return value
    return None


def gold_tolerance(gold_text: str) -> Fraction:
    """How far a prediction may be from the gold (see the module doc)."""
    decimals = written_decimals(gold_text)
    if not decimals:  # an integer, or an exact fraction such as "3/4"
        return INTEGER_TOLERANCE
    return min(DECIMAL_TOLERANCE_CAP, max(INTEGER_TOLERANCE, Fraction(1, 2 * 10**decimals)))


def score_numeric(prediction: object, gold: str | float) -> float:
    """1.0 if the last number in `prediction` matches `gold` (module doc), else 0.0."""
    gold_text = repr(float(gold)) if isinstance(gold, float) else str(gold)
    gold_value = parse_number(gold_text)
    predicted = extract_number(prediction)
    if predicted is None or gold_value is None:
        return 0.0
    return 1.0 if abs(predicted - gold_value) <= gold_tolerance(gold_text) else 0.0
