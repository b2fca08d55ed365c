"""ExecutorClient against the StandInEndpoint over real HTTP on loopback: semantics, cache, budget, n."""

from __future__ import annotations

import asyncio
import json
import pathlib

import pytest

from w4s_jax.config_errors import ConfigError
from w4s_jax.executor import BudgetExceeded, ExecutorClient, ExecutorError
from w4s_jax.executor.repliers import ReplyRequest
from w4s_jax.executor.settings import ExecutorSettings
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint, count_tokens


class RecordingReplier:
    """Returns a reply unique to each choice (its seed) and records what it was asked."""

    def __init__(self, reply: str | None = None) -> None:
        self.reply = reply
        self.requests: list[ReplyRequest] = []

    def __call__(self, request: ReplyRequest) -> str:
        self.requests.append(request)
        return self.reply if self.reply is not None else f"sample-{request.seed}"


def make_client(url: str, tmp_path: pathlib.Path, **overrides) -> ExecutorClient:
    options = dict(base_urls=[url], model="test-executor", cache_path=tmp_path / "cache.sqlite",
                   budget_usd=1.0, max_retries=3)
    options.update(overrides)
    return ExecutorClient(**options)


USER = [{"role": "user", "content": "What is 2 + 3?"}]


def test_call_json_format_llm_follows_the_paper_interface(tmp_path):
    replier = RecordingReplier('{"answer": "5", "extra": 1}')

    async def main():
        async with StandInEndpoint(replier) as endpoint:
            client = make_client(endpoint.url, tmp_path)
            replies = await client.call_json_format_llm(
                messages=USER, agent_role="math expert", return_dict_keys=["thinking", "answer"],
                instructions="Be brief.", num_of_response=2, model="gpt-4o")
            await client.aclose()
            return replies, client.usage()

    replies, usage = asyncio.run(main())
    assert replies == [{"answer": "5", "extra": 1, "thinking": "NO thinking IN DICTIONARY"}] * 2
    request = replier.requests[0]
    assert request.messages[0] == {
        "role": "system",
        "content": "You are a helpful math expert.\nReply in JSON format, ONLY using the keys "
                   "['thinking', 'answer'].\nBe brief."}
    assert request.messages[1:] == USER
    assert request.response_format == "json_object"
    entry = usage["by_model_role"]["test-executor|executor"]
    assert entry["format_errors"] == 0 and entry["calls"] == 1 and entry["responses"] == 2


def test_invalid_json_is_a_counted_format_error(tmp_path):
    async def main():
        async with StandInEndpoint(RecordingReplier("not json at all")) as endpoint:
            client = make_client(endpoint.url, tmp_path)
            replies = await client.call_json_format_llm(messages=USER, return_dict_keys=["answer"],
                                                        num_of_response=3)
            await client.aclose()
            return replies, client.usage()

    replies, usage = asyncio.run(main())
    assert replies == [{"JSONDecodeError": "not json at all", "answer": "NO answer IN DICTIONARY"}] * 3
    assert usage["by_model_role"]["test-executor|executor"]["format_errors"] == 3


def test_call_llm_system_prompt_and_model_argument(tmp_path):
    replier = RecordingReplier("five")

    async def main():
        async with StandInEndpoint(replier) as endpoint:
            client = make_client(endpoint.url, tmp_path, model="configured-model")
            first = await client.call_llm(messages=USER, agent_role="solver", instructions="Think.", model="gpt-4o")
            own_system = [{"role": "system", "content": "Custom."}, *USER]
            second = await client.call_llm(messages=own_system)
            await client.aclose()
            return first, second

    first, second = asyncio.run(main())
    assert first == ["five"] and second == ["five"]
    assert replier.requests[0].messages[0] == {"role": "system", "content": "You are a helpful solver.\nThink."}
    assert replier.requests[1].messages == [{"role": "system", "content": "Custom."}, *USER]


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ("hello", "non-empty list"),
        ([], "empty"),
        (["hi"], r"messages\[0\] must be a dict"),
        ([{"role": "user"}], "exactly the keys 'role' and 'content'"),
        ([{"role": "user", "content": "a", "name": "x"}], "exactly the keys"),
        ([{"role": "user", "content": 5}], r"messages\[0\]\['content'\] must be a str, got int"),
    ],
)
def test_bad_messages_give_a_clear_error(tmp_path, messages, expected):
    client = make_client("http://127.0.0.1:9/v1", tmp_path)
    with pytest.raises(ValueError, match=expected):
        asyncio.run(client.call_llm(messages=messages))


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"num_of_response": 0}, "num_of_response must be a positive int"),
        ({"num_of_response": "3"}, "num_of_response must be a positive int"),
        ({"temperature": "hot"}, r"temperature must be a number in \[0, 2\]"),
        ({"temperature": 3.5}, r"temperature must be a number in \[0, 2\]"),
        ({"return_dict_keys": "answer"}, "return_dict_keys must be a list of str"),
    ],
)
def test_bad_arguments_give_a_clear_error(tmp_path, kwargs, expected):
    client = make_client("http://127.0.0.1:9/v1", tmp_path)
    with pytest.raises(ValueError, match=expected):
        asyncio.run(client.call_json_format_llm(messages=USER, **kwargs))


def test_cache_survives_restart_and_repeats_stay_distinct(tmp_path):
    """Five identical calls in one scope give five samples; a new client on the same file pays nothing."""
    replier = RecordingReplier()

    async def run_workflow(url: str) -> tuple[list[str], dict]:
        client = make_client(url, tmp_path)
        texts = []
        for _ in range(5):
            texts += await client.call_llm(messages=USER, scope="wf1:sample0")
        texts += await client.call_llm(messages=USER, scope="wf1:sample0", num_of_response=3)
        texts += await client.call_llm(messages=USER, scope="wf1:sample1")
        await client.aclose()
        usage = client.usage()
        for scope in ("wf1:sample0", "wf1:sample1"):
            usage[f"scope {scope}"] = client.scope_usage(scope)
        return texts, usage

    async def main():
        async with StandInEndpoint(replier) as endpoint:
            first, usage_first = await run_workflow(endpoint.url)
            requests_after_first = endpoint.total_requests
            second, usage_second = await run_workflow(endpoint.url)
            return first, second, usage_first, usage_second, requests_after_first, endpoint

    first, second, usage_first, usage_second, requests_after_first, endpoint = asyncio.run(main())
    assert len(set(first[:8])) == 8, "repeated calls in one scope must be distinct samples"
    assert first[8] == first[0], "another scope starts again at sample 0"
    assert second == first
    assert endpoint.total_requests == requests_after_first == 6
    assert usage_second["calls"] == 0 and usage_second["cache_hits"] == 9
    assert usage_first["by_model_role"]["test-executor|executor"]["responses"] == 8
    assert endpoint.stats()["max_answered_per_hash"] == 1
    assert usage_first["scope wf1:sample0"]["calls"] == 6 and usage_first["scope wf1:sample0"]["responses"] == 8
    assert usage_first["scope wf1:sample1"]["calls"] == 0 and usage_first["scope wf1:sample1"]["cache_hits"] == 1
    assert usage_second["scope wf1:sample0"]["cache_hits"] == 8 and usage_second["scope wf1:sample0"]["calls"] == 0


def test_client_serves_again_after_aclose_in_a_new_event_loop(tmp_path):
    with StandInEndpoint(RecordingReplier()).in_thread() as endpoint:
        client = make_client(endpoint.url, tmp_path)

        async def once() -> list[str]:
            texts = await client.call_llm(messages=USER, scope="s")
            await client.aclose()
            return texts

        first, second = asyncio.run(once()), asyncio.run(once())
    assert first != second and client.cache.count() == 2  # scope numbering continues: sample 0, then 1


def test_n_samples_are_cached_per_index(tmp_path):
    async def main():
        async with StandInEndpoint(RecordingReplier()) as endpoint:
            client = make_client(endpoint.url, tmp_path)
            four = await client.call_llm(messages=USER, num_of_response=4, scope="s")
            await client.aclose()
            client = make_client(endpoint.url, tmp_path)
            halves = await client.call_llm(messages=USER, num_of_response=2, scope="s")
            halves += await client.call_llm(messages=USER, num_of_response=2, scope="s")
            more = await client.call_llm(messages=USER, num_of_response=1, scope="s")
            await client.aclose()
            return four, halves, more, endpoint.total_requests

    four, halves, more, requests = asyncio.run(main())
    assert len(set(four)) == 4 and halves == four
    assert more[0] not in four
    assert requests == 2


def test_endpoint_without_n_support_is_detected(tmp_path):
    async def main():
        async with StandInEndpoint(RecordingReplier(), supports_n=False) as endpoint:
            client = make_client(endpoint.url, tmp_path)
            texts = await client.call_llm(messages=USER, num_of_response=4)
            native_after = client.native_n
            await client.aclose()
            return texts, native_after, endpoint.total_requests

    texts, native_after, requests = asyncio.run(main())
    assert len(set(texts)) == 4
    assert native_after is False
    assert requests == 4  # one n=4 request answered with 1 choice, then 3 single requests


def test_budget_is_never_exceeded_by_racing_calls(tmp_path):
    """60 concurrent calls race for a budget that fits some; refused calls are never sent."""
    price = {"test-executor": {"input": 1000.0, "output": 2000.0}}
    max_tokens = 40

    async def main():
        async with StandInEndpoint(RecordingReplier("short reply"), latency_ms=20) as endpoint:
            client = make_client(endpoint.url, tmp_path, prices=price, budget_usd=1.0, max_tokens=max_tokens)
            calls = [client.call_llm(messages=[{"role": "user", "content": f"question {i}"}]) for i in range(60)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            await client.aclose()
            return results, client.usage(), endpoint

    results, usage, endpoint = asyncio.run(main())
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    answered = [r for r in results if isinstance(r, list)]
    assert len(refused) + len(answered) == 60 and refused and answered
    assert "budget" in str(refused[0]) and "not sent" in str(refused[0])
    assert usage["spent_usd"] <= usage["budget_usd"]
    assert usage["reserved_usd"] == pytest.approx(0.0, abs=1e-12)
    assert usage["refused_calls"] == len(refused)
    assert endpoint.total_requests == len(answered)
    # Real cost from the endpoint's own token counts.
    system = "You are a helpful task solver.\n"
    expected = sum(
        (count_tokens(system) + 4 + count_tokens(f"question {i}") + 4 + 3) * 1000.0 / 1e6
        + count_tokens("short reply") * 2000.0 / 1e6
        for i, r in enumerate(results) if isinstance(r, list)
    )
    assert usage["spent_usd"] == pytest.approx(expected, rel=1e-9)


def test_meta_agent_client_shares_the_ledger(tmp_path):
    """An API meta-agent and the executor report per model and role under one budget."""
    prices = {"exec": {"input": 1.0, "output": 1.0}, "meta": {"input": 10.0, "output": 10.0}}

    async def main():
        async with StandInEndpoint(RecordingReplier("ok")) as endpoint:
            executor = make_client(endpoint.url, tmp_path, model="exec", prices=prices)
            meta = make_client(endpoint.url, tmp_path, model="meta", role="meta-agent", ledger=executor.ledger,
                               cache_path=tmp_path / "meta.sqlite")
            await executor.call_llm(messages=USER)
            await meta.complete(USER, n=2, temperature=0.5)
            await executor.aclose()
            await meta.aclose()
            return executor.usage()

    usage = asyncio.run(main())
    assert set(usage["by_model_role"]) == {"exec|executor", "meta|meta-agent"}
    assert usage["by_model_role"]["meta|meta-agent"]["responses"] == 2
    total = sum(entry["dollars"] for entry in usage["by_model_role"].values())
    assert usage["spent_usd"] == pytest.approx(total) and total > 0


def test_from_settings_and_usage_is_json_safe(tmp_path):
    async def main():
        async with StandInEndpoint(RecordingReplier("ok")) as endpoint:
            settings = ExecutorSettings(base_url=endpoint.url, model="gpt-4o-mini")
            client = ExecutorClient.from_settings(settings, tmp_path)
            await client.call_llm(messages=USER)
            await client.aclose()
            return client

    client = asyncio.run(main())
    assert (tmp_path / "executor_cache.sqlite").is_file()
    usage = json.loads(json.dumps(client.usage()))
    entry = usage["by_model_role"]["gpt-4o-mini|executor"]
    assert entry["dollars"] == pytest.approx((entry["prompt_tokens"] * 0.15 + entry["completion_tokens"] * 0.6) / 1e6)
    assert entry["dollars"] > 0


def test_openai_url_without_key_is_a_config_error(tmp_path, monkeypatch):
    settings = ExecutorSettings(api_key_env="W4S_TEST_KEY_THAT_IS_NOT_SET")
    monkeypatch.delenv("W4S_TEST_KEY_THAT_IS_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match="W4S_TEST_KEY_THAT_IS_NOT_SET"):
        ExecutorClient.from_settings(settings, tmp_path)


def test_openai_model_without_price_is_a_config_error(tmp_path, monkeypatch):
    settings = ExecutorSettings(model="gpt-9-unpriced", api_key_env="W4S_TEST_KEY")
    monkeypatch.setenv("W4S_TEST_KEY", "sk-test")
    with pytest.raises(ConfigError, match=r"executor\.prices: no price for model 'gpt-9-unpriced'"):
        ExecutorClient.from_settings(settings, tmp_path)


def test_unreachable_endpoint_gives_final_error(tmp_path):
    client = make_client("http://127.0.0.1:9/v1", tmp_path, max_retries=1,
                         prices={"test-executor": {"input": 1.0, "output": 1.0}})
    client.backoff = type(client.backoff)(max_retries=1, base_s=0.01, max_s=0.01)

    async def main():
        async with client:
            await client.call_llm(messages=USER)

    with pytest.raises(ExecutorError, match=r"127\.0\.0\.1:9.*'test-executor'.*2 attempt.*connection refused"):
        asyncio.run(main())
    assert client.usage()["spent_usd"] == 0  # nothing was sent, nothing is charged


CRASHING_RUN = """
import asyncio, sys
from w4s_jax.executor import ExecutorClient

async def main(url, cache_path):
    client = ExecutorClient(base_urls=[url], model="test-executor", cache_path=cache_path)
    for i in range(12):
        text = (await client.call_llm(messages=[{"role": "user", "content": f"question {i}"}], scope="wf:0"))[0]
        print(f"done {i} {text}", flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def test_paid_calls_survive_a_killed_process(tmp_path):
    """SIGKILL a run midway: every reply it printed is in the cache, and a rerun (new process) pays
    only for the calls that had not completed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[1])}
    cache_path = tmp_path / "cache.sqlite"
    with StandInEndpoint(RecordingReplier(), latency_ms=30).in_thread() as endpoint:
        child = subprocess.Popen([sys.executable, "-c", CRASHING_RUN, endpoint.url, str(cache_path)],
                                 stdout=subprocess.PIPE, text=True, env=env)
        first_run = [child.stdout.readline().split(" ", 2) for _ in range(5)]
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        time.sleep(0.1)  # let the endpoint finish the request that was in flight
        answered_before_rerun = endpoint.stats()["answered"]
        rerun = subprocess.run([sys.executable, "-c", CRASHING_RUN, endpoint.url, str(cache_path)],
                               capture_output=True, text=True, env=env, timeout=120, check=True)
        stats = endpoint.stats()
    replies = [line.split(" ", 2) for line in rerun.stdout.splitlines()]
    assert [r[1] for r in replies] == [str(i) for i in range(12)]
    assert [r[2] for r in replies[:5]] == [r[2].strip() for r in first_run]  # the same samples, from the cache
    # Each of the 12 calls was paid once, except possibly the one in flight when the run was killed
    # (the endpoint answered it, the dead process never stored it).
    assert 5 <= answered_before_rerun <= 6
    assert stats["answered"] - 12 == answered_before_rerun - 5
    assert stats["max_answered_per_hash"] <= 2
