"""MATH answer equivalence: the last \\boxed{} (nested braces), normalised LaTeX, numeric fallback.

Follows the normalisation of Hendrycks et al.'s MATH evaluation (`strip_string`): \\dfrac and
\\tfrac as \\frac, \\left/\\right, LaTeX spacing, \\text{} units, degrees, dollars, percent, "x ="
prefixes, "\\frac12" shorthand, a/b as \\frac{a}{b}. Two answers match if their normalised strings
are equal or both evaluate to the same number (so \\frac{1}{2}, 1/2 and 0.5 agree).
"""

from __future__ import annotations

import math
import re

_NUMBER_ONLY = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")
_CUE_PADDING = re.compile(r"[:\s]*")


def last_boxed(text: str) -> str | None:
    """The content of the last \\boxed{...} (or \\fbox{...}) with nested braces; None if absent."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    brace = text.find("{", start)
    if brace < 0 or text[start:brace].strip() not in ("\\boxed", "\\fbox"):
        if text.startswith("\\boxed ", start):  # "\boxed 5$" form
            return text[start + len("\\boxed "):].split("$", 1)[0].strip() or None
        return None
    depth = 0
    for index in range(brace, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1:index]
    return None


def extract_math_answer(prediction: object) -> str:
    """The answer part of a prediction: the last \\boxed{}, else text after "answer is", else all."""
    if isinstance(prediction, bool) or prediction is None:
        return ""
    text = str(prediction)
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    after = _after_answer_is(text)
    if after is not None and "\n" not in after:
        return after.strip().strip("$")
    return text.strip()


def _after_answer_is(text: str) -> str | None:
    r"""What follows the first "answer is" (any case) and its colons and spaces, less one trailing period
    and the spaces around it; None when nothing follows. What `answer is[:\s]*(.+?)\s*\.?\s*$` (DOTALL)
    captures, in linear time: that regex backtracks cubically over a long run of spaces."""
    cue = re.search("answer is", text, re.IGNORECASE)
    if cue is None or cue.end() == len(text):
        return None
    rest = text[cue.end():]
    body = rest[_CUE_PADDING.match(rest).end():]
    if not body:  # the cue's own colons and spaces: the regex gives their last character back
        return rest[-1]
    core = body.rstrip()  # str.strip's whitespace is re's \s
    if core.endswith("."):
        core = core[:-1].rstrip()
    return core or body[0]


def _fix_fracs(text: str) -> str:
    """\\frac12 -> \\frac{1}{2}, \\frac1{2} -> \\frac{1}{2}."""
    parts = text.split("\\frac")
    out = parts[0]
    for part in parts[1:]:
        out += "\\frac"
        if part.startswith("{") or len(part) < 2:
            out += part
            continue
        a, b, rest = part[0], part[1], part[2:]
        if b == "{":
            out += "{" + a + "}" + part[1:]
        else:
            out += "{" + a + "}{" + b + "}" + rest
    return out


def _fix_slash(text: str) -> str:
    """a/b with integers a, b -> \\frac{a}{b}."""
    match = re.fullmatch(r"(-?\d+)/(\d+)", text)
    return f"\\frac{{{match.group(1)}}}{{{match.group(2)}}}" if match else text


def _fix_sqrt(text: str) -> str:
    return re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", text)


def normalize_math(answer: str) -> str:
    """Canonical string form of a MATH answer (see module doc)."""
    text = answer.strip().replace("\n", "").rstrip(".")
    text = text.replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = re.sub(r"\^\s*\{?\\circ\}?", "", text)
    text = text.replace("\\$", "").replace("$", "")
    text = re.sub(r"(\d)\s*\\(?:text|mbox|mathrm)\{[^{}]*\}", r"\1", text)  # a unit after a number
    text = re.sub(r"\\(?:text|mbox|mathrm)\{([^{}]*)\}", r"\1", text)
    text = text.replace("\\%", "").replace("%", "")
    text = re.sub(r"(\\[,:;! ]|~)", "", text)
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if text.startswith("."):
        text = "0" + text
    if re.match(r"^[a-zA-Z]\s*=", text) and len(text.split("=")[0].strip()) <= 2:
        text = text.split("=", 1)[1]
    text = _fix_sqrt(text)
    text = text.replace(" ", "")
    text = _fix_fracs(text)
    text = _fix_slash(text)
    return text


def to_number(answer: str) -> float | None:
    """A value for plain numbers, a/b, \\frac{a}{b} (with optional sign); None otherwise."""
    text = answer.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", answer) else answer
    if _NUMBER_ONLY.match(text):
        return float(text)
    match = re.fullmatch(r"(-?)\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", text)
    if match:
        try:
            value = float(match.group(2)) / float(match.group(3))
        except ZeroDivisionError:
            return None
        return -value if match.group(1) else value
    return None


def math_equal(prediction: str, gold: str) -> bool:
    """True if two answers are the same after normalisation, or numerically equal."""
    a, b = normalize_math(prediction), normalize_math(gold)
    if a == b:
        return True
    x, y = to_number(a), to_number(b)
    return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)


def score_math(prediction: object, gold: str) -> float:
    """1.0 if the prediction's answer (its last \\boxed{} if any) equals the gold answer."""
    answer = extract_math_answer(prediction)
    return 1.0 if answer and math_equal(answer, gold) else 0.0
