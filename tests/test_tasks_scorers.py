"""Scorers against hand-checked cases, tricky ones included, for every non-code task."""

from __future__ import annotations

import pytest

from w4s_jax.tasks import Example, get_task
from w4s_jax.tasks.f1 import drop_em_f1, hotpot_em_f1
from w4s_jax.tasks.math_equiv import last_boxed, normalize_math
from w4s_jax.tasks.multiple_choice import extract_choice, shuffled_options


def example(answer: str, **meta) -> Example:
    return Example("hand", "question", answer, meta)


NUMERIC_CASES = [
    ("1,000", "1000", 1.0),
    (1000, "1000", 1.0),
    (1000.0, "1000", 1.0),
    ("$18.00", "18", 1.0),
    ("18 dollars", "18", 1.0),
    ("She makes $18 every day at the market.", "18", 1.0),
    ("First 16 - 3 - 4 = 9 eggs, then 9 * 2 = 18", "18", 1.0),
    ("\\boxed{18} (checked with 2 methods)", "18", 1.0),
    ("17", "18", 0.0),
    ("-3", "3", 0.0),
    ("x = -3.5", "-3.5", 1.0),
    ("50%", "50", 1.0),
    ("3/4", "0.75", 1.0),
    ("12,5", "125", 0.0),
    ("no number here", "7", 0.0),
    (None, "7", 0.0),
    (True, "1", 0.0),
    ("1,234,567", "1234567", 1.0),
]


@pytest.mark.parametrize("name", ["gsm8k", "gsm_hard", "svamp", "mgsm", "mgsm_de"])
@pytest.mark.parametrize(("prediction", "gold", "expected"), NUMERIC_CASES)
def test_numeric_tasks(name, prediction, gold, expected):
    assert get_task(name).score(prediction, example(gold)) == expected


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        # Large golds: an absolute tolerance, as in the official scorers, so a near miss is wrong.
        ("6277333999", "6277334000", 0.0),
        ("6277334001", "6277334000", 0.0),
        (6277333999, "6277334000", 0.0),
        ("The answer is 6,277,333,999.", "6277334000", 0.0),
        ("12345678901234567", "12345678901234568", 0.0),  # beyond float precision: compared exactly
        ("6277334000.0", "6277334000", 1.0),
        ("6,277,334,000", "6277334000", 1.0),
        ("6.277334e9", "6277334000", 1.0),  # float() of PAL and W4S reads scientific notation
        ("-9867630", "-9867630", 1.0),
        ("-9867631", "-9867630", 0.0),
        (17.999999999999996, "18", 1.0),  # float noise of a computed answer
        ("18.0004", "18", 0.0),  # an integer gold has no decimals to round: 1e-6 only
        # Golds with decimals: half a unit of the gold's last decimal, capped at PAL's 1e-3.
        ("2.33", "2.3333333333", 0.0),
        ("2.333", "2.3333333333", 0.0),
        ("2.333333", "2.3333333333", 1.0),
        (2.3333333333333335, "2.3333333333", 1.0),
        ("7/3", "2.3333333333", 1.0),
        ("2.3333333333", "2.33", 0.0),  # a gold rounded to 2 decimals still allows only 1e-3
        ("2.3304", "2.33", 1.0),
        ("2.54", "2.5", 0.0),
        ("2.5004", "2.5", 1.0),
        ("3244047.1", "3244047.0999999996", 1.0),  # a GSM-Hard gold with float noise
        ("14053029.67", "14053029.666666666", 0.0),
        ("14053029.666667", "14053029.666666666", 1.0),
        ("0", "2.0107e-06", 0.0),  # PAL's 1e-3 would accept this; half a unit of 1e-10 does not
        ("2.0107e-06", "2.0107e-06", 1.0),
        (str(2.0107e-06), "2.0107e-06", 1.0),
        ("$18.00", "18", 1.0),
        ("1,000", "1000", 1.0),
        ("3/4", "0.75", 1.0),
        ("0.7499", "3/4", 0.0),
    ],
)
def test_numeric_matching_is_exact_up_to_the_golds_decimals(prediction, gold, expected):
    assert get_task("gsm_hard").score(prediction, example(gold)) == expected


def test_every_gsm_hard_gold_matches_itself_and_not_its_neighbours(shared_data_dir):
    """Real golds through the real loader: each matches its own text and float value (as a workflow's
    str(result) would give it), and for integer golds the next integers up and down score 0."""
    task = get_task("gsm_hard")
    examples = task.load("validate", shared_data_dir) + task.load("test", shared_data_dir)
    assert len(examples) == 1319
    large = 0
    for ex in examples:
        value = float(ex.answer)
        assert task.score(ex.answer, ex) == 1.0 and task.score(str(value), ex) == 1.0, ex.answer
        if value.is_integer():
            assert task.score(str(int(value) + 1), ex) == task.score(str(int(value) - 1), ex) == 0.0, ex.answer
            large += abs(value) >= 1e4
    assert large > 500  # most GSM-Hard golds are large: where a relative tolerance used to let near misses pass


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}", 1.0),
        ("\\boxed{0.5}", "\\frac{1}{2}", 1.0),
        ("The answer is 1/2.", "\\frac{1}{2}", 1.0),
        ("\\boxed{\\dfrac{1}{2}}", "\\frac12", 1.0),
        ("\\boxed{\\tfrac{3}{4}}", "0.75", 1.0),
        ("so $x = \\boxed{\\frac{\\sqrt{3}}{2}}$", "\\frac{\\sqrt3}{2}", 1.0),
        ("\\boxed{\\left( 3, \\frac{1}{2} \\right)}", "(3,\\frac{1}{2})", 1.0),
        ("\\boxed{12\\text{ cm}}", "12", 1.0),
        ("\\boxed{45^\\circ}", "45", 1.0),
        ("\\boxed{45^{\\circ}}", "45", 1.0),
        ("\\boxed{25\\%}", "25", 1.0),
        ("\\boxed{\\$18.50}", "18.5", 1.0),
        ("\\boxed{1,\\!000}", "1000", 1.0),
        ("\\boxed{y = 2x + 1}", "2x+1", 1.0),
        ("\\boxed{\\text{(B)}}", "\\text{(B)}", 1.0),
        ("first \\boxed{3}, finally \\boxed{4}", "4", 1.0),
        ("\\boxed{3}", "4", 0.0),
        ("\\boxed{\\frac{1}{3}}", "0.33", 0.0),
        ("\\boxed{-\\frac{1}{2}}", "-0.5", 1.0),
        ("\\boxed{\\frac{1}{2}}", "-\\frac{1}{2}", 0.0),
        ("\\boxed{2\\sqrt{2}}", "2\\sqrt2", 1.0),
        ("\\boxed{\\sqrt{2}}", "\\sqrt{3}", 0.0),
        ("", "1", 0.0),
        (None, "1", 0.0),
    ],
)
def test_math_equivalence(prediction, gold, expected):
    assert get_task("math").score(prediction, example(gold)) == expected


def test_last_boxed_handles_nested_braces():
    assert last_boxed("\\boxed{\\frac{1}{\\sqrt{2}}}") == "\\frac{1}{\\sqrt{2}}"
    assert last_boxed("a \\boxed{1} b \\boxed{x^{2}+1}") == "x^{2}+1"
    assert last_boxed("$\\boxed 7$") == "7"
    assert last_boxed("no box") is None
    assert last_boxed("\\boxed{unclosed") is None
    assert normalize_math("\\dfrac{1}{2}") == normalize_math("\\frac12") == "\\frac{1}{2}"


@pytest.mark.parametrize(
    ("prediction", "alternatives", "f1", "em"),
    [
        ("20", ["20"], 1.0, 1.0),
        ("1,000", ["1000"], 1.0, 1.0),  # numbers normalise: "1,000" -> 1000.0
        ("20.0", ["20"], 1.0, 1.0),
        ("21", ["20"], 0.0, 0.0),
        ("about 20 years", ["20"], 0.5, 0.0),  # bag {about, 20.0, years} vs {20.0}: P 1/3, R 1
        ("3 June 1706", ["June 3, 1706"], 1.0, 0.0),  # date spans: same tokens, different order
        ("June 1706", ["3 June 1706"], 0.8, 0.0),  # shares the year: P 1, R 2/3
        ("May 1707", ["3 June 1706"], 0.0, 0.0),  # gold numbers absent from the prediction: 0
        ("The Bears", ["Bears"], 1.0, 1.0),  # articles dropped
        ("Hernán Peraza", ["Hernán Peraza The Elder", "Hernán Peraza"], 1.0, 1.0),  # best alternative
        (["Bears", "Colts"], ["Bears"], 0.5, 0.0),  # an extra predicted span halves F1
        ("", ["20"], 0.0, 0.0),
        (None, ["20"], 0.0, 0.0),
    ],
)
def test_drop_f1(prediction, alternatives, f1, em):
    task = get_task("drop")
    item = example(alternatives[0], alternatives=alternatives)
    assert task.score(prediction, item) == pytest.approx(f1)
    assert task.exact_match(prediction, item) == em


def test_drop_multi_span_alignment():
    assert drop_em_f1(["Colts", "Bears"], ["Bears", "Colts"]) == (1.0, 1.0)
    assert drop_em_f1(["Colts"], ["Bears", "Colts"]) == (0.0, 0.5)
    assert drop_em_f1(["Chicago Bears", "Colts"], ["Bears", "Colts"]) == (0.0, pytest.approx(0.83))


@pytest.mark.parametrize(
    ("prediction", "gold", "f1", "em"),
    [
        ("Eiffel Tower", "the Eiffel Tower", 1.0, 1.0),
        ("the Eiffel tower!", "Eiffel Tower", 1.0, 1.0),
        ("Paris France", "Paris", 2 / 3, 0.0),
        ("yes", "no", 0.0, 0.0),
        ("yes it is", "yes", 0.0, 0.0),  # yes/no answers must match exactly
        ("yes", "yes", 1.0, 1.0),
        ("2004", "2004", 1.0, 1.0),
        (None, "2004", 0.0, 0.0),
    ],
)
def test_hotpotqa_f1(prediction, gold, f1, em):
    task = get_task("hotpotqa")
    assert task.score(prediction, example(gold)) == pytest.approx(f1)
    assert hotpot_em_f1(prediction, gold)[0] == em


OPTIONS = ["alpha particle", "beta particle", "gamma ray", "neutrino"]


@pytest.mark.parametrize(
    ("prediction", "letter"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("b", None),
        ("B.", "B"),
        ("Answer: B", "B"),
        ("The answer is (C).", "C"),
        ("the correct answer is D because ...", "D"),
        ("\\boxed{A}", "A"),
        ("(A) is tempting, but (C) fits the data. The answer is C", "C"),
        ("gamma ray", "C"),
        ("Gamma ray.", "C"),
        ("A photon", None),
        ("The answer is a tricky one, but I pick C", "C"),
        ("my answer: b", None),
        ("", None),
        (None, None),
    ],
)
def test_multiple_choice_letter_extraction(prediction, letter):
    assert extract_choice(prediction, OPTIONS) == letter


def test_gpqa_score_and_fixed_shuffle():
    options, letter = shuffled_options("right", ["w1", "w2", "w3"], seed=0, key="rec1")
    assert options[ord(letter) - ord("A")] == "right"
    assert shuffled_options("right", ["w1", "w2", "w3"], seed=0, key="rec1") == (options, letter)
    letters = {shuffled_options("right", ["w1", "w2", "w3"], seed=0, key=f"rec{i}")[1] for i in range(40)}
    assert letters == {"A", "B", "C", "D"}
    task = get_task("gpqa")
    item = example(letter, options=options)
    assert task.score(f"The answer is ({letter})", item) == 1.0
    assert task.score("right", item) == 1.0
    wrong = next(c for c in "ABCD" if c != letter)
    assert task.score(wrong, item) == 0.0
