"""Token F1 and exact match for reading comprehension: DROP (official-style) and HotpotQA (SQuAD-style).

DROP: each answer is normalised per token (lower case, punctuation removed except inside numbers,
numbers as floats so "1,000" == "1000.0", articles dropped). A multi-span answer (a list of spans)
is matched span to span by the best one-to-one alignment; if the gold holds numbers and a predicted
span shares none of them, that span scores 0. Several gold alternatives ("a|b") score the best one.
HotpotQA: the official SQuAD-style F1 with the yes/no/noanswer rule.
"""

from __future__ import annotations

import collections
import re
import string

import numpy as np
from scipy.optimize import linear_sum_assignment

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _normalize_token(token: str) -> str:
    token = token.lower()
    if not _is_number(token):
        token = "".join(ch for ch in token if ch not in _PUNCTUATION)
    if _is_number(token):
        token = str(float(token))
    token = _ARTICLES.sub(" ", token)
    return " ".join(token.split())


def normalize_drop(text: str) -> str:
    """DROP normalisation of one span (tokens split on spaces and hyphens)."""
    tokens = [_normalize_token(t) for t in re.split(r" |-", text)]
    return " ".join(t for t in tokens if t.strip()).strip()


def _bags(answer: str | list[str]) -> tuple[list[str], list[set[str]]]:
    spans = list(answer) if isinstance(answer, list | tuple) else [answer]
    normalized = [normalize_drop(str(span)) for span in spans]
    return normalized, [set(span.split()) for span in normalized]


def _bag_f1(predicted: set[str], gold: set[str]) -> float:
    common = len(predicted & gold)
    if not predicted and not gold:
        return 1.0
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _numbers(bag: set[str]) -> set[str]:
    return {token for token in bag if _is_number(token)}


def drop_em_f1(prediction: str | list[str], gold: str | list[str]) -> tuple[float, float]:
    """(exact match, F1) of one prediction against one gold answer (a span or a list of spans)."""
    predicted_spans, predicted_bags = _bags(prediction)
    gold_spans, gold_bags = _bags(gold)
    exact = float(sorted(predicted_spans) == sorted(gold_spans))
    scores = np.zeros((len(gold_bags), len(predicted_bags)))
    for i, gold_bag in enumerate(gold_bags):
        for j, predicted_bag in enumerate(predicted_bags):
            gold_numbers = _numbers(gold_bag)
            if gold_numbers and not gold_numbers & _numbers(predicted_bag):
                continue
            scores[i, j] = _bag_f1(predicted_bag, gold_bag)
    rows, cols = linear_sum_assignment(-scores)
    aligned = np.zeros(max(len(gold_bags), len(predicted_bags)))
    for row, col in zip(rows, cols):
        aligned[row] = scores[row, col]
    return exact, round(float(np.mean(aligned)), 2)


def _as_prediction(prediction: object) -> str | list[str]:
    if prediction is None or isinstance(prediction, bool):
        return ""
    if isinstance(prediction, list | tuple):
        return [str(p) for p in prediction]
    return str(prediction)


def score_drop(prediction: object, gold_alternatives: list[str]) -> tuple[float, float]:
    """(exact match, F1) against the best of the gold alternatives."""
    predicted = _as_prediction(prediction)
    results = [drop_em_f1(predicted, gold) for gold in gold_alternatives]
    return max(r[0] for r in results), max(r[1] for r in results)


def normalize_squad(text: str) -> str:
    """SQuAD/HotpotQA normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def hotpot_em_f1(prediction: object, gold: str) -> tuple[float, float]:
    """(exact match, F1) as in the official HotpotQA evaluation (yes/no/noanswer must match exactly)."""
    predicted = normalize_squad("" if prediction is None else str(prediction))
    truth = normalize_squad(gold)
    exact = float(predicted == truth)
    special = ("yes", "no", "noanswer")
    if (predicted in special or truth in special) and predicted != truth:
        return exact, 0.0
    common = collections.Counter(predicted.split()) & collections.Counter(truth.split())
    same = sum(common.values())
    if same == 0:
        return exact, 0.0
    precision, recall = same / len(predicted.split()), same / len(truth.split())
    return exact, 2 * precision * recall / (precision + recall)
