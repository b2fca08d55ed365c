"""The sandbox doing its ordinary job: the paper's agent interface, concurrency, limits, protocol checks."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from w4s_jax.sandbox import Sandbox, SandboxSettings, workflow_hash
from w4s_jax.sandbox.agent_proxy import Agent
from w4s_jax.sandbox.framing import HEADER, FrameError, encode_frame
from w4s_jax.sandbox.protocol import Call, ProtocolError, Ready, Result, parse

SETTINGS = SandboxSettings(workers=4, sample_timeout_s=5.0, execute_code_timeout_s=2.0, workflow_timeout_s=30.0)
CALLS: list[tuple[str, dict, str]] = []


class BudgetExceeded(Exception):
    """Stands in for the executor's error of the same name: the workflow must see the name."""


async def handler(method: str, kwargs: dict, scope: str) -> object:
    CALLS.append((method, kwargs, scope))
    content = kwargs["messages"][-1]["content"]
    if content == "slow":
        await asyncio.sleep(0.5)
    if content == "broke":
        raise BudgetExceeded("budget of $0.01 spent")
    if content == "unsendable":
        return [float("nan")]
    if method == "call_json_format_llm":
        return [{key: f"{key}:{content}" for key in kwargs["return_dict_keys"]}] * kwargs["num_of_response"]
    return [f"reply:{content}"] * kwargs["num_of_response"]


@pytest.fixture(scope="module")
def run():
    loop = asyncio.new_event_loop()
    sandbox = Sandbox(SETTINGS, handler)
    loop.run_until_complete(sandbox.__aenter__())

    def run_coroutine(coroutine):
        return loop.run_until_complete(coroutine)

    run_coroutine.sandbox = sandbox
    yield run_coroutine
    loop.run_until_complete(sandbox.close())
    loop.close()


def one(run, source: str, task: str = "q", **kwargs):
    return run(run.sandbox.run_workflow(source, [task], **kwargs))[0]


PAPER_STYLE = '''
import concurrent.futures

def solver(agent, task):
    def ask(i):
        return agent.call_json_format_llm(
            messages=[{"role": "user", "content": "slow"}], model="gpt-4o-mini", temperature=0.5,
            num_of_response=2, agent_role="solver", return_dict_keys=["reasoning", "answer"],
            instructions="step by step")
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        replies = list(pool.map(ask, range(5)))
    text = agent.call_llm(messages=[{"role": "user", "content": task}])[0]
    return {"answer": [len(replies), replies[0][1]["answer"], text]}
'''


def test_paper_style_workflow_with_threads_runs_calls_concurrently(run):
    CALLS.clear()
    started = time.monotonic()
    result = one(run, PAPER_STYLE, "what?")
    elapsed = time.monotonic() - started
    assert result.error is None, result.error
    assert result.answer == [5, "answer:slow", "reply:what?"]
    assert result.executor_calls == 6
    assert elapsed < 5 * 0.5, "five 0.5 s calls from five threads must overlap"
    scopes = {scope for _, _, scope in CALLS}
    assert scopes == {f"{workflow_hash(PAPER_STYLE)}:0"}
    assert all("scope" not in kwargs for _, kwargs, _ in CALLS)


def test_scope_is_workflow_hash_and_sample_id(run):
    CALLS.clear()
    source = "def solver(agent, task):\n    return {'answer': agent.call_llm(messages=[{'role': 'user', 'content': task}])}\n"
    results = run(run.sandbox.run_workflow(source, ["a", "b"], sample_ids=["gsm8k-1", "gsm8k-2"]))
    assert [r.answer for r in results] == [["reply:a"], ["reply:b"]]
    assert sorted(scope for _, _, scope in CALLS) == [f"{workflow_hash(source)}:gsm8k-1",
                                                      f"{workflow_hash(source)}:gsm8k-2"]


def test_handler_errors_reach_the_workflow_by_name(run):
    source = ("def solver(agent, task):\n    try:\n        agent.call_llm(messages=[{'role': 'user', 'content': 'broke'}])\n"
              "    except Exception as e:\n        return {'answer': type(e).__name__ + ': ' + str(e)}\n")
    assert one(run, source).answer == "BudgetExceeded: budget of $0.01 spent"
    uncaught = "def solver(agent, task):\n    return {'answer': agent.call_llm(messages=[{'role': 'user', 'content': 'broke'}])}\n"
    assert one(run, uncaught).error == {"type": "BudgetExceeded", "message": "budget of $0.01 spent", "line": 2}
    unsendable = uncaught.replace("broke", "unsendable")
    error = one(run, unsendable).error
    assert error["type"] == "ExecutorError" and "could not be sent" in error["message"]


@pytest.mark.parametrize(("code", "expected"), [
    ("def solution():\n    return sum(range(10))", 45),
    ("x = 6\ny = x * 7", 42),
    ("import math\nmath.factorial(5)", 120),
    ("def solution():\n    return {'a': (1, 2), 'b': {3}}", "{'a': (1, 2), 'b': {3}}"),  # Python values
])
def test_execute_code_returns_the_value(run, code, expected):
    source = (f"def solver(agent, task):\n    value = agent.execute_code({code!r})\n"
              "    return {'answer': value if type(value) is int else repr(value)}\n")
    result = one(run, source)
    assert result.error is None and result.answer == expected


@pytest.mark.parametrize(("code", "fragment"), [
    ("def solution():\n    return 1 / 0", "ZeroDivisionError: division by zero"),
    ("while True:\n    pass", "TimeoutError: code exceeded 2 s wall clock"),
    ("def solution(:", "SyntaxError"),
])
def test_execute_code_errors_are_catchable(run, code, fragment):
    source = (f"def solver(agent, task):\n    try:\n        return {{'answer': agent.execute_code({code!r}, timeout=30)}}\n"
              "    except Exception as e:\n        return {'answer': str(e)}\n")
    result = one(run, source)
    assert result.error is None
    assert result.answer.startswith("Error when executing code: ") and fragment in result.answer


def test_public_tests_are_run_for_code_workflows(run):
    source = '''
def solver(agent, task):
    good = "def add(a, b):\\n    return a + b"
    bad = "def add(a, b):\\n    return a - b"
    broken = "def add(a, b) return"
    return {"answer": [agent.exec_test(good, "add"), agent.exec_test(bad, "add"),
                       agent.exec_test(broken, "add"),
                       agent.test_on_public_test(task, good, "add")["result"]]}
'''
    from w4s_jax.sandbox import SampleContext

    context = SampleContext(public_tests=("assert candidate(1, 2) == 3", "assert candidate(0, 0) == 0"),
                            entry_point="add")
    result = run(run.sandbox.run_workflow(source, ["add two numbers"], contexts=[context]))[0]
    assert result.error is None, result.error
    good, bad, broken, checked = result.answer
    assert good == "no error"
    assert [f["test_case"] for f in bad] == ["assert candidate(1, 2) == 3"]
    assert "SyntaxError" in broken["exec_fail_case"]
    assert checked is True


def test_errors_carry_the_workflow_line(run):
    source = "import json\n\ndef helper(x):\n    return json.loads(x)\n\ndef solver(agent, task):\n    return {'answer': helper('{')}\n"
    error = one(run, source).error
    assert error["type"] == "JSONDecodeError" and error["line"] == 4
    syntax = one(run, "def solver(agent, task):\n    return {'answer': 1\n").error
    assert syntax["type"] == "SyntaxError" and syntax["line"] in (1, 2)
    missing = one(run, "def helper():\n    pass\n").error
    assert missing["type"] == "NameError" and "solver" in missing["message"]


def test_sample_and_workflow_time_limits():
    async def main():
        settings = SandboxSettings(workers=2, sample_timeout_s=1.0, workflow_timeout_s=1.5)
        async with Sandbox(settings, handler) as sandbox:
            spin = "import time\ndef solver(agent, task):\n    time.sleep(float(task))\n    return {'answer': task}\n"
            return await sandbox.run_workflow(spin, ["0", "5", "0.6", "0.6", "0.6", "0.6"])

    results = asyncio.run(main())
    assert results[0].answer == "0"
    assert results[1].error["message"] == "sample exceeded 1 s wall clock (sandbox.sample_timeout_s)"
    assert any(r.error and "workflow exceeded 1.5 s" in r.error["message"] for r in results[2:])


def test_text_helpers_match_the_reference_behaviour():
    agent = Agent(lambda method, kwargs: None, [], "")
    assert agent.extract_answer_str(r"so \boxed{\frac{1}{2}} and \boxed{7}") == "7"
    assert agent.extract_answer_str("it costs 1,234.5 dollars, or 12") == "12"
    assert agent.extract_answer_str("It is blue. The answer is red") == "The answer is red"
    response = "text\n```python\ndef helper():\n    pass\n```\n```python\ndef solution():\n    return 1\n```"
    assert agent.extract_code_block(response) == "def solution():\n    return 1"
    assert agent.extract_code_block("no code here") == ""


def test_protocol_rejects_malformed_frames():
    assert isinstance(parse(b'{"type": "ready", "layers": ["x"], "pid": 3}'), Ready)
    assert isinstance(parse(b'{"type": "result", "answer": 1, "error": null, "stdout": ""}'), Result)
    call = parse(json.dumps({"type": "call", "id": 1, "method": "call_llm",
                             "kwargs": {"messages": [{"role": "user", "content": "x"}]}}).encode())
    assert isinstance(call, Call) and call.method == "call_llm"
    bad = [
        b"\xff\xfe", b"[1, 2]", b'{"type": "shell"}',
        b'{"type": "call", "id": -1, "method": "call_llm", "kwargs": {}}',
        b'{"type": "call", "id": 1, "method": "os.system", "kwargs": {}}',
        b'{"type": "call", "id": 1, "method": "call_llm", "kwargs": {"messages": "hi"}}',
        b'{"type": "call", "id": 1, "method": "execute_code", "kwargs": {"code": 1, "timeout": 1}}',
        b'{"type": "result", "answer": 1, "error": "oops", "stdout": ""}',
        b'{"type": "result", "answer": 1, "error": null, "stdout": 5}',
        b'{"type": "ready", "layers": "all", "pid": 1}',
    ]
    for payload in bad:
        with pytest.raises(ProtocolError):
            parse(payload)
    with pytest.raises(FrameError):
        encode_frame({"x": {1, 2}})
    assert HEADER.unpack(encode_frame({"a": 1})[:4]) == (len(b'{"a":1}'),)


def test_destroying_a_worker_the_parent_stopped_reading_does_not_hang():
    """A worker that sent more than the parent read fills the channel's reader, which pauses; Python
    3.11's Process.wait() waits for every pipe's EOF, which a paused reader never sees. destroy() reads
    the rest away: it returns in seconds (it hung for good before, and with it the pool's close)."""
    from w4s_jax.sandbox.pool import WorkerSpec, spawn

    async def main() -> float:
        spec = WorkerSpec(cpu_seconds=20, memory_mb=1024, max_file_mb=16, max_open_files=64, max_threads=8,
                          max_output_bytes=1_000_000)
        worker = await spawn(spec)
        await worker.send({"type": "run", "kind": "code", "source": "def solution():\n    return 'x' * 900_000\n"})
        await asyncio.sleep(2.0)  # the reply (a ~900 KB frame) fills the pipe and the reader's buffer
        started = time.monotonic()
        await asyncio.wait_for(worker.destroy(), 30)
        return time.monotonic() - started

    assert asyncio.run(main()) < 30
