"""Workflows written for the W4S release run unchanged: each call of the release's agent interface,
inside the real sandbox, its LLM calls going through the executor client over HTTP to the loopback
StandInEndpoint; execute_code's Python values through the real code workers."""

from __future__ import annotations

import asyncio
import json

import pytest

from w4s_jax.executor import ExecutorClient
from w4s_jax.executor.repliers import ReplyRequest, TableReplier
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint
from w4s_jax.sandbox import Sandbox, SandboxSettings
from w4s_jax.sandbox.values import decode, encode
from w4s_jax.tasks import get_task
from w4s_jax.w4s.scoring import executor_handler
from w4s_jax.w4s.seeds import seed_workflows
from w4s_jax.workflows import SEED_SETS, builtin_source

SETTINGS = SandboxSettings(workers=3, sample_timeout_s=20.0, execute_code_timeout_s=5.0)
TABLE = {"What is 6 times 7?": "42"}
SEEN: list[ReplyRequest] = []


def replier(request: ReplyRequest) -> str:
    """The table's answers; with an "ECHO" message the last message comes back, "BROKEN" gets text that is
    not JSON."""
    SEEN.append(request)
    contents = [m["content"] for m in request.messages]
    if "ECHO" in contents:
        return f"echo:{contents[-1]}"
    if contents[-1].startswith("BROKEN"):
        return "this is { not JSON"
    return TableReplier(TABLE)(request)


@pytest.fixture(scope="module")
def run():
    loop = asyncio.new_event_loop()
    endpoint = StandInEndpoint(replier)
    loop.run_until_complete(endpoint.start())
    executor = ExecutorClient(base_urls=[endpoint.url], model="test-executor", cache_path=None, budget_usd=1.0)
    sandbox = Sandbox(SETTINGS, executor_handler(executor))
    loop.run_until_complete(sandbox.__aenter__())

    def run_one(body: str, task: str = "What is 6 times 7?"):
        source = "def solver(agent, task):\n" + "".join(f"    {line}\n" for line in body.splitlines())
        return loop.run_until_complete(sandbox.run_workflow(source, [task]))[0]

    run_one.endpoint = endpoint
    yield run_one
    loop.run_until_complete(sandbox.close())
    loop.run_until_complete(executor.aclose())
    loop.run_until_complete(endpoint.stop())
    loop.close()


def test_call_llm_json_returns_parsed_values(run):
    SEEN.clear()
    result = run('replies = agent.call_llm(messages=[{"role": "user", "content": task}], response_format="json",\n'
                 '                         num_of_response=2, agent_role="math expert")\n'
                 'return {"answer": [type(r).__name__ for r in replies] + [replies[0]["answer"]]}')
    assert result.error is None, result.error
    assert result.answer == ["dict", "dict", "42"]
    assert all(r.response_format == "json_object" for r in SEEN)  # sent as the JSON mode the release uses
    assert SEEN[0].messages[0] == {"role": "system", "content": "You are a helpful math expert.\n"}


def test_call_llm_json_that_does_not_parse_comes_back_as_the_release_returns_it(run):
    result = run('reply = agent.call_llm(messages=[{"role": "user", "content": "BROKEN " + task}],\n'
                 '                       response_format="json")[0]\n'
                 'return {"answer": reply}')
    assert result.error is None, result.error
    assert result.answer == {"JSONDecodeError": "this is { not JSON"}


def test_call_llm_accepts_tools_and_tool_choice(run):
    result = run('tools = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]\n'
                 'text = agent.call_llm(messages=[{"role": "user", "content": "ECHO"}], tools=tools,\n'
                 '                      tool_choice="auto")[0]\n'
                 'return {"answer": text}')
    assert result.error is None, result.error
    assert result.answer == "echo:ECHO"


@pytest.mark.parametrize(("content", "sent"), [("42", "42"), ("[1, 2]", "[1, 2]"), ("None", "None"),
                                               ("{'a': (1, 2)}", "{'a': (1, 2)}")])
def test_call_llm_coerces_content_with_str(run, content, sent):
    result = run(f'return {{"answer": agent.call_llm(messages=[{{"role": "user", "content": "ECHO"}},\n'
                 f'                                              {{"role": "user", "content": {content}}}])[0]}}')
    assert result.error is None, result.error
    assert result.answer == f"echo:{sent}"  # what the executor received: str(content)


def test_call_json_format_llm_content_error_is_caught_by_the_workflow(run):
    body = ('try:\n'
            '    agent.call_json_format_llm(messages=[{"role": "user", "content": 42}], return_dict_keys=["answer"])\n'
            'except ValueError as error:\n'
            '    return {"answer": "caught: " + str(error)}\n'
            'return {"answer": "not raised"}')
    result = run(body)
    assert result.error is None, result.error
    assert result.answer == "caught: 'content' at index 0 must be a string"
    assert result.executor_calls == 0  # refused before anything was sent
    uncaught = run('return {"answer": agent.call_json_format_llm(messages=[{"role": "user", "content": 42}])}')
    assert uncaught.error == {"type": "ValueError", "message": "'content' at index 0 must be a string", "line": 2}
    extra = run('return {"answer": agent.call_json_format_llm(messages=[{"role": "user", "content": "x", '
                '"name": "n"}])}')
    assert extra.error["type"] == "ValueError" and "Found extra keys: {'name'}" in extra.error["message"]
    bad_role = run('return {"answer": agent.call_llm(messages=[{"role": 1, "content": "x"}])}')
    assert bad_role.error == {"type": "ValueError", "message": "'role' at index 0 must be a string", "line": 2}
    after = run('return {"answer": agent.call_json_format_llm(messages=[{"role": "user", "content": task}],\n'
                '                                              return_dict_keys=["answer"])[0]["answer"]}')
    assert after.error is None and after.answer == "42"  # the sandbox carries on


CODE_VALUES = [
    ("return (1, 2)", "tuple", "(1, 2)"),
    ("return {3, 1, 2}", "set", "{1, 2, 3}"),
    ("return frozenset({4})", "frozenset", "frozenset({4})"),
    ("from fractions import Fraction\n    return Fraction(3, 4)", "Fraction", "Fraction(3, 4)"),
    ("from decimal import Decimal\n    return Decimal('0.10')", "Decimal", "Decimal('0.10')"),
    ("return {1: 'a', (2, 3): {5}}", "dict", "{1: 'a', (2, 3): {5}}"),
    ("return [(1, 2), {'k': (3,)}]", "list", "[(1, 2), {'k': (3,)}]"),
    ("return float('inf')", "float", "inf"),
    ("return 2 + 3j", "complex", "(2+3j)"),
    ("return b'\\x00\\xff'", "bytes", "b'\\x00\\xff'"),
    ("return 10**30", "int", str(10**30)),
    ("import collections\n    return collections.Counter('aab')", "dict", "{'a': 2, 'b': 1}"),
    ("return object", "str", repr("<class 'object'>")),  # another type: str(value), as before
]


@pytest.mark.parametrize(("body", "kind", "text"), CODE_VALUES, ids=[c[1] + str(i) for i, c in enumerate(CODE_VALUES)])
def test_execute_code_returns_python_values(run, body, kind, text):
    code = f"def solution():\n    {body}\n"
    result = run(f"value = agent.execute_code({code!r})\n"
                 "return {'answer': [type(value).__name__, repr(value) if type(value) is not float else str(value)]}")
    assert result.error is None, result.error
    assert result.answer == [kind, text]


def test_execute_code_value_is_used_as_a_python_value_by_the_workflow(run):
    code = "from fractions import Fraction\ndef solution():\n    return (Fraction(1, 3), {2, 2, 3})"
    result = run(f"third, items = agent.execute_code({code!r})\n"
                 "return {'answer': str(third * 3 + sum(items))}")
    assert result.error is None and result.answer == "6"


def test_encoding_round_trips_and_rejects_malformed_data():
    from decimal import Decimal
    from fractions import Fraction

    value = [(1, (2.5, None)), {frozenset({1}): {Fraction(-7, 3)}}, Decimal("-1.50"), b"\x00", True, "$"]
    assert decode(json.loads(json.dumps(encode(value)))) == value
    assert encode({"$": 1}) == {"$": "dict", "v": [["$", 1]]}  # a user dict can never pass for a tag
    for bad in [{"$": "tuple"}, {"$": "eval", "v": "1"}, {"$": "set", "v": [[1]]}, {"$": "fraction", "v": [1, 0]},
                {"$": "fraction", "v": [True, 1]}, {"a": 1}, {"$": "dict", "v": [[1]]}]:
        with pytest.raises(ValueError):
            decode(bad)
    nested: list = []
    for _ in range(200):
        nested = [nested]
    with pytest.raises(TypeError, match="deeper"):
        encode(nested)


def test_official_seed_set_expands_in_order():
    task = get_task("gsm_hard")
    assert [name for name, _ in seed_workflows(task, "official")] == list(SEED_SETS["official"])
    assert [name for name, _ in seed_workflows(task, "cot, official, official_cot")] == [
        "cot", "official_cot", "official_cot_sc", "official_code_generation"]
    assert "temperature=0.8" in builtin_source("official_cot") and 'agent_role="math expert"' in builtin_source(
        "official_cot")
