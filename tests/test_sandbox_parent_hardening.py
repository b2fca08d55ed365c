"""The parent trusts nothing a worker sends (issue 23): one hostile workflow per attack form.

Each workflow runs in the real sandbox against a real stand-in endpoint (a subprocess on loopback, so
the parent's memory is the parent's alone), is scored by the real scorers, and must end as a per-sample
error or a score of 0, in bounded time, with the other sample of the run unharmed, the report strict
JSON and the executor ledger within its budget. A workflow reaches its channel through the agent's
closure and writes raw frames to it, as the attacker of issue 23 did.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import pathlib
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from w4s_jax.executor import ExecutorClient
from w4s_jax.executor.accounting import Ledger, reply_tokens
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint, spawn
from w4s_jax.sandbox import Sandbox, SandboxSettings, protocol
from w4s_jax.sandbox import pool as pool_module
from w4s_jax.sandbox.pool import WorkerDied, WorkerSpec
from w4s_jax.tasks import get_task
from w4s_jax.tasks.code import defines
from w4s_jax.tasks.numeric import parse_number, score_numeric
from w4s_jax.w4s import scoring
from w4s_jax.w4s.scoring import evaluate_workflow, executor_handler

MODEL = "test-executor"
PRICES = {MODEL: {"input": 1.0, "output": 2.0}}  # dollars per million tokens
BUDGET_USD = 0.002
MAX_TOKENS = 64
SETTINGS = SandboxSettings(
    workers=2, max_threads=8, max_call_bytes=64 * 1024, max_responses=8, sample_timeout_s=20.0,
    workflow_timeout_s=60.0, execute_code_timeout_s=3.0, cpu_seconds=20, memory_mb=512,
)
RUN_LIMIT_S = 45.0  # a hostile run of 2 samples ends well within this (the hangs of issue 23 ran > 150 s)

# The channel is reachable through the agent's closure; `forge` writes one raw frame to it.
FORGE = '''import os, time


def forge(agent, payload):
    channel = agent._call_parent.__closure__[0].cell_contents
    os.write(channel.fd_out, len(payload).to_bytes(4, "big") + payload)


def honest(agent, task):
    reply = agent.call_llm(messages=[{"role": "user", "content": task}], temperature=0.0)[0]
    return {"answer": agent.extract_answer_str(reply)}

'''


def workflow(first: str, attack: str) -> str:
    """A workflow that attacks on the sample whose question is `first` and answers the other honestly."""
    body = "\n".join("        " + line for line in attack.strip("\n").splitlines())
    return (FORGE + f"FIRST = {first!r}\n\n\ndef solver(agent, task):\n    if task == FIRST:\n{body}\n"
            "    return honest(agent, task)\n")


@pytest.fixture(scope="module")
def gsm8k(shared_data_dir):
    return get_task("gsm8k"), get_task("gsm8k").load("validate", shared_data_dir, limit=2)


@pytest.fixture(scope="module")
def endpoint_url(gsm8k, tmp_path_factory):
    _task, examples = gsm8k
    table = tmp_path_factory.mktemp("table") / "answers.json"
    table.write_text(json.dumps({e.question: f"The answer is {e.answer}." for e in examples}))
    process, url = spawn(["--answers", str(table), "--model", MODEL])
    yield url
    process.kill()
    process.communicate(timeout=10)


@pytest.fixture(scope="module")
def run():
    """`run(coroutine)` on one loop whose sandbox (`run.sandbox`) lives for the module; its agent calls
    go to the executor of the evaluation running (`run.executor_handler`, set by `evaluate`)."""
    loop = asyncio.new_event_loop()

    async def current_executor(method: str, kwargs: dict, scope: str) -> object:
        return await run_.executor_handler(method, kwargs, scope)

    sandbox = Sandbox(SETTINGS, current_executor)
    loop.run_until_complete(sandbox.__aenter__())

    def run_(coroutine):
        return loop.run_until_complete(coroutine)

    run_.sandbox = sandbox
    yield run_
    loop.run_until_complete(sandbox.close())
    loop.close()


def endpoint_requests(url: str) -> int:
    with urllib.request.urlopen(url.rsplit("/v1", 1)[0] + "/stats", timeout=10) as response:
        return int(json.load(response)["total_requests"])


def evaluate(run, url: str, tmp_path: pathlib.Path, source: str, task, examples, budget: float = BUDGET_USD):
    """(report as strict JSON data, executor usage, wall seconds, endpoint requests it caused)."""
    executor = ExecutorClient(base_urls=[url], model=MODEL, cache_path=tmp_path / "cache.sqlite", prices=PRICES,
                              budget_usd=budget, max_tokens=MAX_TOKENS, max_retries=0, transport="aiohttp")
    run.executor_handler = executor_handler(executor)
    before = endpoint_requests(url)
    started = time.monotonic()
    try:
        report = run(evaluate_workflow(source, task, examples, run.sandbox, executor))
    finally:
        run(executor.aclose())
    wall = time.monotonic() - started
    text = json.dumps(report.to_json(), ensure_ascii=False, allow_nan=False)  # strict: raises on NaN
    text.encode("utf-8")  # strict: raises on a lone surrogate
    usage = executor.usage()
    assert usage["spent_usd"] <= usage["budget_usd"] and usage["reserved_usd"] == pytest.approx(0.0, abs=1e-12)
    return json.loads(text), usage, wall, endpoint_requests(url) - before


def assert_contained(report: dict, wall: float, error_type: str | None) -> dict:
    """The attacked sample scores 0 (with `error_type` when given); the honest one is right."""
    attacked, honest = report["samples"]
    assert wall < RUN_LIMIT_S
    assert attacked["score"] == 0.0 and not attacked["correct"]
    if error_type is not None:
        assert attacked["error"] is not None and attacked["error"]["type"] == error_type, attacked["error"]
    assert honest["correct"] and honest["error"] is None, honest
    return attacked


class PeakRss:
    """The parent's peak resident memory above its level at entry, sampled every 2 ms."""

    def __enter__(self) -> PeakRss:
        self.baseline = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.growth = self.peak - self.baseline


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# ----- numbers too large for exact arithmetic ---------------------------------------------------------


@pytest.mark.parametrize("text", ["1e999999999", "-1E+999999999", "1e-999999999", "3/1e99999", "1" * 5000,
                                  "0." + "0" * 3000 + "1"])
def test_numbers_beyond_the_scorer_bounds_are_not_numbers(text):
    started = time.monotonic()
    assert parse_number(text) is None
    assert score_numeric(f"The answer is {text}", "18") == 0.0
    assert time.monotonic() - started < 1.0


def test_numbers_within_the_bounds_still_score():
    assert score_numeric("2.0107e-06", "2.0107e-06") == 1.0
    assert score_numeric("1e3", "1000") == 1.0
    assert score_numeric(10**999, str(10**999)) == 1.0
    assert score_numeric(10**1000, str(10**1000)) == 0.0  # 1001 digits: over MAX_DIGITS


def test_answer_1e999999999_scores_zero_in_bounded_time(run, endpoint_url, gsm8k, tmp_path):
    task, examples = gsm8k
    source = workflow(examples[0].question, "return {'answer': '1e999999999'}")
    report, _usage, wall, _requests = evaluate(run, endpoint_url, tmp_path, source, task, examples)
    attacked = assert_contained(report, wall, None)
    assert attacked["error"] is None and attacked["answer"] == "1e999999999"


# ----- forged result frames: lone surrogates, NaN, infinities ------------------------------------------


@pytest.mark.parametrize("payload", [
    rb'{"type":"result","answer":"\ud800","error":null,"stdout":""}',
    rb'{"type":"result","answer":null,"error":{"type":"\ud800","message":"x","line":null},"stdout":""}',
    rb'{"type":"result","answer":null,"error":{"type":"E","message":"tail \udfff","line":1},"stdout":""}',
    rb'{"type":"result","answer":"ok","error":null,"stdout":"\ud83d"}',
    rb'{"type":"result","answer":{"\udc00":1},"error":null,"stdout":""}',
    rb'{"type":"result","answer":NaN,"error":null,"stdout":""}',
    rb'{"type":"result","answer":[1,-Infinity],"error":null,"stdout":""}',
    rb'{"type":"result","answer":1e999,"error":null,"stdout":""}',
], ids=["answer-surrogate", "error-type-surrogate", "error-message-surrogate", "stdout-surrogate",
        "key-surrogate", "nan", "minus-infinity", "float-overflow"])
def test_forged_result_frames_are_refused(payload, run, endpoint_url, gsm8k, tmp_path):
    task, examples = gsm8k
    source = workflow(examples[0].question, f"forge(agent, {payload!r})\ntime.sleep(30)")
    report, _usage, wall, _requests = evaluate(run, endpoint_url, tmp_path, source, task, examples)
    attacked = assert_contained(report, wall, "ProtocolError")
    assert attacked["answer"] is None and "killed" in attacked["error"]["message"]


def test_frame_depth_and_value_count_are_capped():
    shallow = b'{"type":"result","answer":' + b"[" * 300 + b"]" * 300 + b',"error":null,"stdout":""}'
    assert isinstance(protocol.parse(shallow), protocol.Result)
    for payload, reason in [
        (b'{"type":"result","answer":' + b"[" * 400 + b"]" * 400 + b',"error":null,"stdout":""}', "deeper"),
        (b'{"type":"result","answer":[' + b",".join([b"0"] * 200_001) + b'],"error":null,"stdout":""}',
         "JSON values"),
        (b'{"type":"result","answer":' + b"[" * 5000 + b"]" * 5000 + b',"error":null,"stdout":""}', "recursion"),
    ]:
        with pytest.raises(protocol.ProtocolError, match=reason):
            protocol.parse(payload)


def test_a_valid_surrogate_pair_is_one_character(run, endpoint_url, gsm8k, tmp_path):
    task, examples = gsm8k
    frame = rb'{"type":"result","answer":"\ud83d\ude00","error":null,"stdout":""}'
    source = workflow(examples[0].question, f"forge(agent, {frame!r})\ntime.sleep(30)")
    report, _usage, wall, _requests = evaluate(run, endpoint_url, tmp_path, source, task, examples)
    attacked = assert_contained(report, wall, None)
    assert attacked["answer"] == "\U0001f600" and attacked["error"] is None


# ----- calls that would make the parent allocate without bound ------------------------------------------

FLOODS = {
    # 7 MB key, 1,000 responses: the frame is over sandbox.max_call_bytes, so the worker is killed unread.
    "huge-key": ("agent.call_json_format_llm(messages=[{'role': 'user', 'content': task}], "
                 "return_dict_keys=['k' * 7_000_000], num_of_response=1000)", "ProtocolError", "max_call_bytes"),
    # A count the parent once turned into list(range(n)): refused before anything is allocated.
    "2e8-responses": ("agent.call_llm(messages=[{'role': 'user', 'content': task}], num_of_response=2 * 10**8)",
                      "ValueError", "sandbox.max_responses"),
    # Forged frames of almost 8 MiB each (the frame cap), left pending.
    "8MiB-call-frames": ("pad = 'x' * (8 * 1024 * 1024 - 200)\nfor i in range(1, 6):\n"
                         "    forge(agent, ('{\"type\":\"call\",\"id\":%d,\"method\":\"call_llm\",\"kwargs\":{\"messages\":"
                         "[{\"role\":\"user\",\"content\":\"%s\"}]}}' % (i, pad)).encode())\ntime.sleep(30)",
                         "ProtocolError", "max_call_bytes"),
    # Many small forged calls never waited for: over max_threads outstanding.
    "pending-calls": ("pad = 'x' * 60_000\nfor i in range(1, 41):\n"
                      "    forge(agent, ('{\"type\":\"call\",\"id\":%d,\"method\":\"execute_code\",\"kwargs\":{\"code\":"
                      "\"import time\\\\ntime.sleep(30)\\\\n# %s\",\"timeout\":3}}' % (i, pad)).encode())\n"
                      "time.sleep(30)", "ProtocolError", "outstanding"),
    # Unknown argument names are a forgery too.
    "unknown-argument": ("forge(agent, b'{\"type\":\"call\",\"id\":1,\"method\":\"call_llm\",\"kwargs\":{\"messages\":"
                         "[{\"role\":\"user\",\"content\":\"x\"}],\"n\":100000000}}')\ntime.sleep(30)",
                         "ProtocolError", "unknown argument"),
    # Deep nesting inside an otherwise valid call.
    "deep-nesting": ("forge(agent, b'{\"type\":\"call\",\"id\":1,\"method\":\"call_llm\",\"kwargs\":{\"messages\":"
                     "[{\"role\":\"user\",\"content\":\"x\",\"name\":' + b'[' * 500 + b']' * 500 + b'}]}}')\n"
                     "time.sleep(30)", "ProtocolError", "deeper"),
}


def parent_memory_bound(settings: SandboxSettings, samples: int) -> int:
    """What one evaluation may add to the parent (docs/sandbox_threat_model.md, "The parent's side"):
    per worker one frame in flight (its bytes, their decoded text and parsed values: 3x) and its
    pending calls, at most max_threads frames of max_call_bytes and one frame's cap in all (their
    frames and the requests built from them: 4x), plus each sample's kept answer and stdout; and
    32 MiB for the interpreter's own churn."""
    frame = WorkerSpec(1, 1, 1, 1, 1, settings.max_output_bytes).max_frame_bytes
    per_worker = 3 * frame + 4 * min(frame, settings.max_threads * settings.max_call_bytes)
    return settings.workers * per_worker + samples * 2 * settings.max_output_bytes + (32 << 20)


@pytest.mark.parametrize("name", sorted(FLOODS))
def test_floods_are_refused_with_bounded_parent_memory(name, run, endpoint_url, gsm8k, tmp_path):
    task, examples = gsm8k
    attack, error_type, message = FLOODS[name]
    source = workflow(examples[0].question, attack)
    with PeakRss() as rss:
        report, _usage, wall, _requests = evaluate(run, endpoint_url, tmp_path, source, task, examples)
    attacked = assert_contained(report, wall, error_type)
    assert message in attacked["error"]["message"]
    bound = parent_memory_bound(SETTINGS, len(examples))
    assert rss.growth < bound, f"parent grew {rss.growth / 2**20:.1f} MiB, bound {bound / 2**20:.1f} MiB"


def test_outstanding_call_bytes_are_capped_per_worker():
    """Large calls left pending: at most one frame's cap (8 MiB here) of them per worker."""
    settings = SandboxSettings(workers=1, max_threads=8, max_call_bytes=3 << 20, sample_timeout_s=20.0,
                               execute_code_timeout_s=3.0, memory_mb=512)
    frames = ("pad = 'x' * (3 * 1024 * 1024 - 300)\nfor i in range(1, 5):\n"
              "    forge(agent, ('{\"type\":\"call\",\"id\":%d,\"method\":\"execute_code\",\"kwargs\":{\"code\":"
              "\"import time\\\\ntime.sleep(30)\\\\n# %s\",\"timeout\":3}}' % (i, pad)).encode())\ntime.sleep(30)")
    source = workflow("attack", frames)

    async def main():
        async with Sandbox(settings) as sandbox:
            return await sandbox.run_workflow(source, ["attack"])

    started = time.monotonic()
    with PeakRss() as rss:
        (result,) = asyncio.run(main())
    assert time.monotonic() - started < RUN_LIMIT_S
    assert result.error["type"] == "ProtocolError" and "bytes in all" in result.error["message"], result.error
    assert rss.growth < parent_memory_bound(settings, 1)


# ----- execute_code timeouts that are not finite --------------------------------------------------------


@pytest.mark.parametrize(("attack", "error_type", "message"), [
    ("forge(agent, b'{\"type\":\"call\",\"id\":1,\"method\":\"execute_code\",\"kwargs\":{\"code\":\"1\","
     "\"timeout\":NaN}}')\ntime.sleep(30)", "ProtocolError", "NaN"),
    ("forge(agent, b'{\"type\":\"call\",\"id\":1,\"method\":\"execute_code\",\"kwargs\":{\"code\":\"1\","
     "\"timeout\":Infinity}}')\ntime.sleep(30)", "ProtocolError", "Infinity"),
    ("forge(agent, b'{\"type\":\"call\",\"id\":1,\"method\":\"execute_code\",\"kwargs\":{\"code\":\"1\","
     "\"timeout\":1e999}}')\ntime.sleep(30)", "ProtocolError", "overflows"),
    ("return {'answer': agent.execute_code('while True: pass', timeout=1e300)}", "Exception", "timeout must be"),
], ids=["nan", "infinity", "overflow", "huge"])
def test_execute_code_timeouts_are_finite_and_bounded(attack, error_type, message, run, endpoint_url, gsm8k,
                                                       tmp_path):
    task, examples = gsm8k
    report, _usage, wall, _requests = evaluate(run, endpoint_url, tmp_path, workflow(examples[0].question, attack),
                                               task, examples)
    attacked = assert_contained(report, wall, error_type)
    assert message in attacked["error"]["message"]


# ----- max_completion_tokens and the budget -------------------------------------------------------------

NEGATIVE_DOUBLING = """
time.sleep(1)  # the honest sample's call first: the attacker then spends what is left of the budget
t, refused = -1, 0
for _ in range(70):
    try:
        agent.call_llm(messages=[{'role': 'user', 'content': task}], max_completion_tokens=t)
    except Exception:
        refused += 1
    t *= 2
t = 1
for _ in range(70):
    try:
        agent.call_llm(messages=[{'role': 'user', 'content': task + str(t)}], max_completion_tokens=t)
    except Exception:
        refused += 1
    t *= 2
return {'answer': refused}
"""


def test_hostile_max_tokens_keep_the_ledger_within_budget(run, endpoint_url, gsm8k, tmp_path):
    task, examples = gsm8k
    report, usage, wall, requests = evaluate(run, endpoint_url, tmp_path, workflow(examples[0].question,
                                                                                    NEGATIVE_DOUBLING), task, examples)
    attacked = assert_contained(report, wall, None)
    # 70 negative caps refused, 50 caps over 2**20 refused, the budget refuses most of the rest.
    assert attacked["answer"] >= 120
    assert usage["spent_usd"] <= BUDGET_USD and usage["reserved_usd"] == pytest.approx(0.0, abs=1e-12)
    assert usage["refused_calls"] > 0 and requests == usage["calls"]


@pytest.mark.parametrize("value", [-1, 0, -(2**63), 1.5, True, "64", math.nan, -math.inf])
def test_the_client_refuses_a_token_cap_that_cannot_bound_the_cost(value, tmp_path):
    async def main():
        async with StandInEndpoint() as endpoint:
            client = ExecutorClient(base_urls=[endpoint.url], model=MODEL, cache_path=tmp_path / "c.sqlite",
                                    prices=PRICES, budget_usd=BUDGET_USD, max_tokens=MAX_TOKENS)
            with pytest.raises(ValueError, match="max_completion_tokens must be a positive int"):
                await client.call_llm(messages=[{"role": "user", "content": "q"}], max_completion_tokens=value)
            await client.aclose()
            return endpoint.total_requests, client.usage()

    requests, usage = asyncio.run(main())
    assert requests == 0 and usage["reserved_usd"] == 0.0 and usage["spent_usd"] == 0.0


def test_a_huge_token_cap_is_clamped_to_the_configured_one(tmp_path):
    async def main():
        async with StandInEndpoint() as endpoint:
            client = ExecutorClient(base_urls=[endpoint.url], model=MODEL, cache_path=tmp_path / "c.sqlite",
                                    prices=PRICES, budget_usd=1.0, max_tokens=MAX_TOKENS)
            await client.call_llm(messages=[{"role": "user", "content": "q"}], max_completion_tokens=2**70)
            await client.aclose()
            return client.usage()

    usage = asyncio.run(main())
    assert usage["calls"] == 1 and usage["spent_usd"] <= 1.0


def test_the_ledger_never_holds_a_negative_reservation():
    ledger = Ledger(PRICES, 1.0)
    for prompt, output in [(10, -5), (10, 0), (-1, 10), (10, 1.5), (10, True)]:
        with pytest.raises(ValueError, match="bound the call's cost"):
            ledger.reserve(MODEL, "executor", prompt, output)
    with pytest.raises(ValueError, match="never negative"):
        ledger.release(-1.0)
    with pytest.raises(ValueError, match="never negative"):
        ledger.settle(MODEL, "executor", 0.0, -10, 5, 1)
    assert ledger.reserved_usd == 0.0 and ledger.spent_usd == 0.0
    # An endpoint reporting negative usage is charged the upper bounds instead of being refunded.
    assert reply_tokens({"prompt_tokens": -10**9, "completion_tokens": 5}, 100, ["abc"]) == (100, 3)
    assert reply_tokens({"prompt_tokens": 7, "completion_tokens": 5.5}, 100, ["abc"]) == (100, 3)


# ----- humaneval: an answer of 499,990 newlines ---------------------------------------------------------


def test_defines_is_linear_and_still_right():
    started = time.monotonic()
    assert not defines("\n" * 499_990, "f")
    assert not defines(" \n\t" * 300_000 + "de", "f")
    assert time.monotonic() - started < 1.0
    assert defines("import os\n\n    def f (x):\n", "f") and defines("def f(x): pass", "f")
    assert not defines("xdef f(x):", "f") and not defines("def g(x):", "f") and not defines("def\nf(x):", "f")


def test_humaneval_answer_of_newlines_scores_zero_quickly(run, endpoint_url, shared_data_dir, tmp_path):
    task = get_task("humaneval")
    examples = task.load("validate", shared_data_dir, limit=2)
    source = "def solver(agent, task):\n    return {'answer': '\\n' * 499_990}\n"
    report, _usage, wall, _requests = evaluate(run, endpoint_url, tmp_path, source, task, examples)
    assert wall < RUN_LIMIT_S and report["score"] == 0.0
    for sample in report["samples"]:
        assert sample["error"]["type"] == "ScoreError.AnswerTooLong", sample["error"]


# ----- a failing scorer fails its sample only ----------------------------------------------------------


class FragileTask:
    """A task whose scorer hangs on one answer and raises on another."""

    is_code = False

    def score(self, prediction, example):
        if prediction == "hang":
            time.sleep(3)
        if prediction == "raise":
            raise ZeroDivisionError("scorer bug")
        return 1.0


def test_a_scorer_that_hangs_or_raises_fails_only_its_sample(run, endpoint_url, gsm8k, tmp_path, monkeypatch):
    _task, examples = gsm8k
    monkeypatch.setattr(scoring, "SCORE_TIMEOUT_S", 0.5)
    three = [examples[0], examples[1], type(examples[0])("third", "q3", "0")]
    source = ("def solver(agent, task):\n"
              f"    return {{'answer': {{{examples[0].question!r}: 'hang', {examples[1].question!r}: 'raise'}}"
              ".get(task, 'fine')}\n")
    report, _usage, wall, _requests = evaluate(run, endpoint_url, tmp_path, source, FragileTask(), three)
    hung, raised, fine = report["samples"]
    assert hung["error"]["type"] == "ScoreError.TimeoutError" and hung["score"] == 0.0
    assert raised["error"]["type"] == "ScoreError.ZeroDivisionError" and raised["score"] == 0.0
    assert fine["error"] is None and fine["score"] == 1.0 and wall < RUN_LIMIT_S


# ----- end to end: `w4s-jax eval` with two hostile workflows --------------------------------------------

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
E2E_ATTACKS = {
    # Sample 1 forges an answer holding a lone surrogate, sample 2 answers a number of a billion digits.
    "surrogate-and-exponent": ("forge(agent, rb'{\"type\":\"result\",\"answer\":\"\\ud800\",\"error\":null,"
                               "\"stdout\":\"\"}')\ntime.sleep(30)", "return {'answer': '1e999999999'}"),
    # Sample 1 forges a NaN answer, sample 2 asks for negative and doubling token caps.
    "nan-and-max-tokens": ("forge(agent, b'{\"type\":\"result\",\"answer\":NaN,\"error\":null,\"stdout\":\"\"}')\n"
                           "time.sleep(30)", NEGATIVE_DOUBLING.replace("time.sleep(1)  #", "#")),
}


def _refuse_constant(name: str) -> None:
    raise ValueError(f"the report holds the non-standard JSON token {name}")


@pytest.mark.parametrize("name", sorted(E2E_ATTACKS))
def test_w4s_jax_eval_survives_hostile_workflows(name, endpoint_url, gsm8k, shared_data_dir, tmp_path):
    _task, examples = gsm8k
    first, second = E2E_ATTACKS[name]
    body = "\n".join("    " + line for line in second.strip("\n").splitlines())
    source = workflow(examples[0].question, first).replace(
        "    return honest(agent, task)\n", body + "\n")
    path = tmp_path / f"{name.replace('-', '_')}.py"
    path.write_text(source)
    budget = 0.0002
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "w4s_jax.cli.main", "eval", "--config=configs/eval.py", f"--config.workflow={path}",
         "--config.task=gsm8k", "--config.split=validate", "--config.limit=2", f"--config.data_dir={shared_data_dir}",
         f"--config.executor.base_url={endpoint_url}", "--config.executor.model=gpt-4o-mini",
         f"--config.executor.budget_usd={budget}", "--config.executor.max_tokens=64", "--config.sandbox.workers=2",
         f"--config.output={tmp_path / 'out.json'}", f"--config.output_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT, env=env)
    wall = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr[-3000:]
    raw = (tmp_path / "out.json").read_bytes()
    report = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)  # strict JSON, valid UTF-8
    assert wall < 150 and report["score"] == 0.0 and len(report["samples"]) == 2
    forged, other = report["samples"]
    assert forged["error"]["type"] == "ProtocolError" and forged["answer"] is None
    assert other["score"] == 0.0
    usage = report["usage"]
    assert usage["spent_usd"] <= usage["budget_usd"] == budget and usage["reserved_usd"] == 0.0
    if name == "nan-and-max-tokens":  # 70 negative caps, 49 over 2**20, and what the budget refused
        assert other["answer"] >= 120 and usage["refused_calls"] > 0 and usage["calls"] > 0


# ----- a worker that fails to start -------------------------------------------------------------------


def test_a_worker_that_fails_to_start_fails_only_its_sample(monkeypatch):
    async def broken_spawn(spec):
        raise WorkerDied("worker process exited with code 0 before reporting a result")

    async def main():
        async with Sandbox(SandboxSettings(workers=1, sample_timeout_s=10.0)) as sandbox:
            monkeypatch.setattr(pool_module, "spawn", broken_spawn)  # the one warm worker is already up
            return await sandbox.run_workflow("def solver(agent, task):\n    return {'answer': task}\n", ["a", "b"])

    first, second = asyncio.run(main())
    assert first.answer == "a" and first.error is None
    assert second.error["type"] == "WorkerCrashed" and "failed to start" in second.error["message"]
