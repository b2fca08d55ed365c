"""The API meta-agent (`OpenAIPolicy`) is an `ExecutorClient` with role "meta-agent": its request
body, retries and backoff, shared ledger, budget refusal, prompts over the context, and its cache, over
real loopback HTTP against a small endpoint that records every request body."""

from __future__ import annotations

import asyncio
import pathlib
import time

import pytest
from aiohttp import web

from w4s_jax.config_errors import ConfigError
from w4s_jax.executor import BudgetExceeded, ExecutorClient
from w4s_jax.executor.accounting import Ledger
from w4s_jax.executor.retry import BackoffPolicy
from w4s_jax.executor.settings import ExecutorSettings
from w4s_jax.sampling.settings import SamplingSettings
from w4s_jax.w4s.policy import ROLE, OpenAIPolicy, PolicyError
from w4s_jax.w4s.settings import MetaAgentSettings

MODEL = "meta-test"
PROMPT_TOKENS = 10  # what the endpoint reports per request
TOO_LONG = "TOO LONG"  # a prompt holding this is refused as over the model's context
# OpenAI's error for such a prompt: the code comes after a message longer than a status line shows.
CONTEXT_ERROR = {"error": {"message": "This model's maximum context length is 128 tokens. " + "x" * 300,
                           "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}


class RecordingEndpoint:
    """A chat-completions endpoint on loopback that records each request body. The replies in
    `script` ((status, JSON body), in order) come first, then `always` if set, else choice i of a
    request answers `reply-<seed>-<i>` with usage (PROMPT_TOKENS, 3 per choice)."""

    def __init__(self, script: list[tuple[int, dict]] | None = None, always: tuple[int, dict] | None = None) -> None:
        self.script = list(script or [])
        self.always = always
        self.bodies: list[dict] = []
        self.url = ""

    async def __aenter__(self) -> RecordingEndpoint:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.bodies.append(body)
        if self.script or self.always:
            status, payload = self.script.pop(0) if self.script else self.always
            return web.json_response(payload, status=status)
        if any(TOO_LONG in message["content"] for message in body["messages"]):
            return web.json_response(CONTEXT_ERROR, status=400)
        n = body.get("n", 1)
        return web.json_response({
            "choices": [{"index": i, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"reply-{body['seed']}-{i}"}} for i in range(n)],
            "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": 3 * n},
        })


def make_policy(url: str, output_dir: pathlib.Path, *, transport: str = "aiohttp", ledger: Ledger | None = None,
                top_k: int = 20, **executor: object) -> OpenAIPolicy:
    settings = dict(max_retries=3, backoff_base_s=0.01, backoff_max_s=0.02, transport=transport)
    settings.update(executor)
    return OpenAIPolicy.from_settings(MetaAgentSettings(base_url=url, model=MODEL), ExecutorSettings(**settings),
                                      SamplingSettings(max_new_tokens=64, top_p=0.9, top_k=top_k), output_dir, ledger)


def conversation(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You design workflows."}, {"role": "user", "content": text}]


@pytest.mark.parametrize("transport", ["openai", "aiohttp"])
def test_the_request_carries_the_sampling_fields_and_the_seed_of_each_conversation(tmp_path, transport):
    async def main():
        async with RecordingEndpoint() as endpoint:
            policy = make_policy(endpoint.url, tmp_path, transport=transport)
            replies = await policy.generate([conversation("a"), conversation("b")], n=2, temperature=0.7,
                                            max_new_tokens=48, seed=[11, 12])
            await policy.aclose()
            return replies, endpoint.bodies, policy

    replies, bodies, policy = asyncio.run(main())
    assert replies == [["reply-11-0", "reply-11-1"], ["reply-12-0", "reply-12-1"]]
    assert sorted(body["seed"] for body in bodies) == [11, 12]
    for body in bodies:
        assert {key: body[key] for key in ("model", "temperature", "max_tokens", "n", "top_p", "top_k")} == {
            "model": MODEL, "temperature": 0.7, "max_tokens": 48, "n": 2, "top_p": 0.9, "top_k": 20}
    assert policy.usage.to_json() == {"replies": 4, "prompt_tokens": 2 * PROMPT_TOKENS, "completion_tokens": 12}
    assert (tmp_path / "meta_agent_cache.sqlite").is_file()


def test_retries_use_the_executor_backoff_and_count_under_the_meta_agent_role(tmp_path):
    server_error = {"error": {"message": "overloaded"}}

    async def main():
        async with RecordingEndpoint(script=[(500, server_error), (429, server_error)]) as endpoint:
            policy = make_policy(endpoint.url, tmp_path)
            started = time.monotonic()
            replies = await policy.generate([conversation("a")], temperature=0.5, max_new_tokens=16, seed=3)
            elapsed = time.monotonic() - started
            await policy.aclose()
            return replies, elapsed, len(endpoint.bodies), policy

    replies, elapsed, requests, policy = asyncio.run(main())
    assert replies == [["reply-3-0"]] and requests == 3
    assert policy.client.backoff == BackoffPolicy(max_retries=3, base_s=0.01, max_s=0.02)
    assert elapsed < 1.0  # two retries of at most 0.01 and 0.02 s, not the old 1 s and 2 s
    entry = policy.client.usage()["by_model_role"][f"{MODEL}|{ROLE}"]
    assert (entry["retries"], entry["calls"], entry["failed"]) == (2, 1, 0)


def test_a_failure_after_the_retries_is_a_policy_error_naming_endpoint_and_model(tmp_path):
    async def main():
        async with RecordingEndpoint(always=(503, {"error": {"message": "down"}})) as endpoint:
            policy = make_policy(endpoint.url, tmp_path, max_retries=2)
            with pytest.raises(PolicyError) as caught:
                await policy.generate([conversation("a")], temperature=0.5, max_new_tokens=16, seed=3)
            await policy.aclose()
            return caught.value, endpoint, policy

    error, endpoint, policy = asyncio.run(main())
    assert len(endpoint.bodies) == 3
    assert endpoint.url in str(error) and repr(MODEL) in str(error) and "3 attempt(s)" in str(error)
    assert "HTTP 503" in str(error)
    assert policy.client.usage()["reserved_usd"] == 0


def test_the_meta_agent_spends_from_the_shared_ledger_next_to_the_executor(tmp_path):
    prices = {MODEL: {"input": 1.0, "output": 2.0}, "exec-test": {"input": 3.0, "output": 4.0}}
    ledger = Ledger(prices, budget_usd=1.0)

    async def main():
        async with RecordingEndpoint() as endpoint:
            policy = make_policy(endpoint.url, tmp_path, ledger=ledger)
            executor = ExecutorClient(base_urls=[endpoint.url], model="exec-test", ledger=ledger,
                                      cache_path=tmp_path / "executor_cache.sqlite", transport="aiohttp")
            await policy.generate([conversation("a"), conversation("b")], n=2, temperature=0.5, max_new_tokens=16,
                                  seed=[1, 2])
            await executor.call_llm(messages=[{"role": "user", "content": "q"}])
            await policy.aclose()
            await executor.aclose()
            return policy, executor

    policy, executor = asyncio.run(main())
    report = ledger.report()
    assert policy.client.ledger is ledger and executor.usage()["by_model_role"] == report["by_model_role"]
    meta = report["by_model_role"][f"{MODEL}|{ROLE}"]
    assert (meta["role"], meta["calls"], meta["responses"]) == ("meta-agent", 2, 4)
    assert meta["dollars"] == pytest.approx((2 * PROMPT_TOKENS * 1.0 + 12 * 2.0) / 1e6)
    paid = report["by_model_role"]["exec-test|executor"]
    assert (paid["role"], paid["calls"]) == ("executor", 1)
    assert paid["dollars"] == pytest.approx((PROMPT_TOKENS * 3.0 + 3 * 4.0) / 1e6)
    assert report["spent_usd"] == pytest.approx(meta["dollars"] + paid["dollars"]) and report["reserved_usd"] == 0


def test_a_call_past_the_budget_is_refused_before_it_is_sent(tmp_path):
    ledger = Ledger({MODEL: {"input": 1.0, "output": 2.0}}, budget_usd=1e-6)

    async def main():
        async with RecordingEndpoint() as endpoint:
            policy = make_policy(endpoint.url, tmp_path, ledger=ledger)
            with pytest.raises(BudgetExceeded, match=f"model '{MODEL}'"):
                await policy.generate([conversation("a")], temperature=0.5, max_new_tokens=16, seed=3)
            await policy.aclose()
            return endpoint.bodies

    assert asyncio.run(main()) == []
    report = ledger.report()
    assert report["by_model_role"][f"{MODEL}|{ROLE}"]["refused"] == 1 and report["spent_usd"] == 0


@pytest.mark.parametrize("transport", ["openai", "aiohttp"])
def test_a_prompt_over_the_context_gets_empty_replies(tmp_path, transport):
    ledger = Ledger({MODEL: {"input": 1.0, "output": 2.0}}, budget_usd=1.0)

    async def main():
        async with RecordingEndpoint() as endpoint:
            policy = make_policy(endpoint.url, tmp_path, transport=transport, ledger=ledger)
            replies = await policy.generate([conversation(TOO_LONG), conversation("fits")], n=2, temperature=0.5,
                                            max_new_tokens=16, seed=[1, 2])
            await policy.aclose()
            return replies, len(endpoint.bodies), policy

    replies, requests, policy = asyncio.run(main())
    assert replies == [["", ""], ["reply-2-0", "reply-2-1"]]
    assert requests == 2  # refused once, not retried
    assert policy.too_long == 1 and policy.usage.replies == 2
    assert ledger.reserved_usd == 0
    assert ledger.spent_usd == pytest.approx((PROMPT_TOKENS * 1.0 + 6 * 2.0) / 1e6)  # the other prompt only


def test_a_rerun_with_the_same_output_dir_is_served_from_the_cache(tmp_path):
    async def run(url: str, seeds: list[int]) -> tuple[list[list[str]], OpenAIPolicy]:
        policy = make_policy(url, tmp_path, top_k=0)
        replies = await policy.generate([conversation("a"), conversation("b")], temperature=0.5, max_new_tokens=16,
                                        seed=seeds)
        await policy.aclose()
        return replies, policy

    async def main():
        async with RecordingEndpoint() as endpoint:
            first, _ = await run(endpoint.url, [1, 2])
            sent = len(endpoint.bodies)
            again, policy = await run(endpoint.url, [1, 2])  # a new client on the same cache file
            resent = len(endpoint.bodies) - sent
            other, _ = await run(endpoint.url, [1, 5])  # another seed is another sample
            return first, sent, again, resent, policy, other, endpoint.bodies[sent:]

    first, sent, again, resent, policy, other, later = asyncio.run(main())
    assert first == again == [["reply-1-0"], ["reply-2-0"]] and sent == 2 and resent == 0
    assert policy.usage.replies == 0  # nothing answered by the endpoint, nothing paid
    assert policy.client.usage()["by_model_role"][f"{MODEL}|{ROLE}"]["cache_hits"] == 2
    assert other == [["reply-1-0"], ["reply-5-0"]] and [body["seed"] for body in later] == [5]
    assert "top_k" not in later[0]  # top_k 0 (off) is left out of the request


def test_max_new_tokens_above_the_configured_cap_is_refused(tmp_path):
    policy = make_policy("http://127.0.0.1:9/v1", tmp_path)
    with pytest.raises(ValueError, match="max_new_tokens=65 is above"):
        asyncio.run(policy.generate([conversation("a")], temperature=0.5, max_new_tokens=65, seed=1))


def test_api_openai_com_needs_a_key_and_a_price(tmp_path, monkeypatch):
    settings = (ExecutorSettings(), SamplingSettings(), tmp_path)
    monkeypatch.delenv("W4S_TEST_META_KEY", raising=False)
    unkeyed = MetaAgentSettings(base_url="https://api.openai.com/v1", model="gpt-4o", api_key_env="W4S_TEST_META_KEY")
    with pytest.raises(ConfigError, match=r"meta_agent\.api_key_env: environment variable 'W4S_TEST_META_KEY'"):
        OpenAIPolicy.from_settings(unkeyed, *settings)
    monkeypatch.setenv("W4S_TEST_META_KEY", "sk-test")
    unpriced = MetaAgentSettings(base_url="https://api.openai.com/v1", model="gpt-9", api_key_env="W4S_TEST_META_KEY")
    with pytest.raises(ConfigError, match=r"executor\.prices: no price for the meta-agent model 'gpt-9'"):
        OpenAIPolicy.from_settings(unpriced, *settings)
    assert OpenAIPolicy.from_settings(unkeyed, *settings).client.api_key == "sk-test"
