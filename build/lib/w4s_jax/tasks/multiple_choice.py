"""Multiple-choice accuracy (GPQA): options shuffled with a fixed seed, the answer letter extracted.

A reply may name the letter ("B", "(B)", "Answer: B", "the answer is (B).", "\\boxed{B}") or repeat
the option's text; both count. Anything else (no letter, or several conflicting letters without an
"answer" cue) is wrong.
"""

from __future__ import annotations

import hashlib
import random
import re

LETTERS = "ABCD"

_CUES = [
    re.compile(r"\\boxed\{\s*\(?([A-D])\)?\s*\}"),
    re.compile(r"answer\s*(?:is|:)?\s*(?:option\s*)?[:\s]*\(?\s*((?-i:[A-D]))\b\)?", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-D])\)?\s*[.:)]?\s*$"),
    re.compile(r"^\s*\(?([A-D])[).:]\s"),
    re.compile(r"\(([A-D])\)"),
    re.compile(r"(?:^|\s)([A-D])\s*[.)]?\s*$"),
]


def shuffled_options(correct: str, incorrect: list[str], seed: int, key: str) -> tuple[list[str], str]:
    """(options in a fixed shuffled order, letter of the correct one); the order depends on seed and key."""
    options = [correct, *incorrect]
    digest = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:16], 16)
    random.Random(digest).shuffle(options)
    return options, LETTERS[options.index(correct)]


def format_question(question: str, options: list[str]) -> str:
    """The question followed by its lettered options, one per line."""
    lines = [question.strip(), ""]
    lines += [f"({letter}) {option.strip()}" for letter, option in zip(LETTERS, options)]
    return "\n".join(lines)


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def extract_choice(prediction: object, options: list[str]) -> str | None:
    """The letter a prediction chose, or None."""
    if prediction is None or isinstance(prediction, bool):
        return None
    # Runs of whitespace as one space: the cues read whitespace only through \s, so they find the same
    # letters, and "answer" before a long run of spaces cannot make a cue backtrack over every split.
    text = " ".join(str(prediction).split())
    for pattern in _CUES:
        matches = pattern.findall(text)
        if matches:
            return matches[-1].upper()
    normalized = _normalize(text)
    for letter, option in zip(LETTERS, options):
        if normalized and normalized == _normalize(option):
            return letter
    return None


def score_choice(prediction: object, gold_letter: str, options: list[str]) -> float:
    return 1.0 if extract_choice(prediction, options) == gold_letter else 0.0
