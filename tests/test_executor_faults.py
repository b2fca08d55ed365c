"""Retries, Retry-After, faults, concurrency caps and load spreading, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import pathlib
import time

import pytest

from w4s_jax.executor import ExecutorClient, ExecutorError
from w4s_jax.executor.repliers import ReplyRequest
from w4s_jax.executor.retry import BackoffPolicy, parse_retry_after
from w4s_jax.executor.stand_in_endpoint import Fault, StandInEndpoint


def unique_reply(request: ReplyRequest) -> str:
    return f"reply-{request.seed}"


@pytest.fixture(params=["openai", "aiohttp"])
def transport(request) -> str:
    """Fault handling must be the same over both HTTP transports."""
    return request.param


def make_client(urls: list[str], tmp_path: pathlib.Path, *, retries: int = 4, **overrides) -> ExecutorClient:
    options = dict(base_urls=urls, model="test-executor", cache_path=tmp_path / "cache.sqlite",
                   backoff=BackoffPolicy(max_retries=retries, base_s=0.02, max_s=0.05))
    options.update(overrides)
    return ExecutorClient(**options)


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_retry_after_is_honoured(tmp_path, transport):
    async def main():
        faults = [Fault("429", first=1, retry_after_s=0.6)]
        async with StandInEndpoint(unique_reply, faults=faults) as endpoint:
            client = make_client([endpoint.url], tmp_path, transport=transport)
            start = time.monotonic()
            texts = await client.call_llm(messages=user("hello"))
            elapsed = time.monotonic() - start
            await client.aclose()
            return texts, elapsed, client.usage(), endpoint.stats()

    texts, elapsed, usage, stats = asyncio.run(main())
    assert texts[0].startswith("reply-")
    assert 0.6 <= elapsed < 2.0, f"waited {elapsed:.3f}s for Retry-After 0.6s"
    assert usage["by_model_role"]["test-executor|executor"]["retries"] == 1
    assert stats["total_requests"] == 2 and stats["answered"] == 1


@pytest.mark.parametrize("fault_spec", ["500:first=2", "drop:first=2", "malformed:first=2", "429:first=2"])
def test_faults_recover(tmp_path, fault_spec, transport):
    async def main():
        async with StandInEndpoint(unique_reply, faults=[Fault.parse(fault_spec)]) as endpoint:
            client = make_client([endpoint.url], tmp_path, transport=transport)
            texts = await client.call_llm(messages=user("hello"), num_of_response=2)
            await client.aclose()
            return texts, client.usage(), endpoint.stats()

    texts, usage, stats = asyncio.run(main())
    assert len(set(texts)) == 2
    entry = usage["by_model_role"]["test-executor|executor"]
    assert entry["retries"] == 2 and entry["calls"] == 1 and entry["failed"] == 0
    assert stats["total_requests"] == 3 and stats["answered"] == 1


def test_persistent_fault_gives_the_final_error(tmp_path, transport):
    async def main():
        async with StandInEndpoint(unique_reply, faults=[Fault("500")]) as endpoint:
            client = make_client([endpoint.url], tmp_path, transport=transport, retries=2,
                                 prices={"test-executor": {"input": 1, "output": 1}})
            with pytest.raises(ExecutorError) as caught:
                await client.call_llm(messages=user("hello"))
            await client.aclose()
            return caught.value, client.usage(), endpoint

    error, usage, endpoint = asyncio.run(main())
    assert error.attempts == 3 and error.endpoint == endpoint.url and error.model == "test-executor"
    assert "HTTP 500" in error.last_status
    assert f"endpoint {endpoint.url}" in str(error) and "3 attempt(s)" in str(error)
    assert endpoint.total_requests == 3
    assert usage["spent_usd"] == 0 and usage["reserved_usd"] == 0  # a 500 is not billed


def test_dropped_connections_count_as_maybe_billed(tmp_path, transport):
    """A request dropped mid-flight may have been billed: its worst case stays spent, never released."""
    prices = {"test-executor": {"input": 1000.0, "output": 1000.0}}

    async def main():
        async with StandInEndpoint(unique_reply, faults=[Fault("drop")]) as endpoint:
            client = make_client([endpoint.url], tmp_path, transport=transport, retries=1, prices=prices,
                                 max_tokens=10)
            with pytest.raises(ExecutorError, match="connection dropped") as caught:
                await client.call_llm(messages=user("hello"))
            await client.aclose()
            return caught.value, client.usage()

    error, usage = asyncio.run(main())
    assert error.attempts == 2
    assert usage["spent_usd"] > 0 and usage["reserved_usd"] == 0
    assert usage["by_model_role"]["test-executor|executor"]["failed"] == 1


def test_timeout_is_retried_then_reported(tmp_path, transport):
    async def main():
        faults = [Fault("slow", marker="SLOW", delay_s=1.0)]
        async with StandInEndpoint(unique_reply, faults=faults) as endpoint:
            client = make_client([endpoint.url], tmp_path, transport=transport, retries=1, timeout_s=0.2)
            with pytest.raises(ExecutorError, match="timeout"):
                await client.call_llm(messages=user("SLOW please"))
            fine = await client.call_llm(messages=user("fast please"))
            await client.aclose()
            return fine

    assert asyncio.run(main())[0].startswith("reply-")


def test_markers_fault_only_matching_prompts(tmp_path):
    async def main():
        faults = [Fault("500", marker="FLAKY", every=2)]
        async with StandInEndpoint(unique_reply, faults=faults) as endpoint:
            client = make_client([endpoint.url], tmp_path)
            calls = [client.call_llm(messages=user(f"{'FLAKY' if i % 2 else 'calm'} {i}")) for i in range(20)]
            results = await asyncio.gather(*calls)
            await client.aclose()
            return results, client.usage(), endpoint.stats()

    results, usage, stats = asyncio.run(main())
    assert len(results) == 20
    # Every 2nd FLAKY request fails, retries included: 10 calls need T requests with T - floor(T/2) = 10,
    # so T = 19 FLAKY requests (9 retries); the 10 calm calls go through at once.
    assert usage["by_model_role"]["test-executor|executor"]["retries"] == 9
    assert stats["total_requests"] == 29


def test_no_call_lost_or_counted_twice_under_faults(tmp_path, transport):
    async def main():
        faults = [Fault("500", every=7), Fault("drop", every=11), Fault("429", every=13, retry_after_s=0.01)]
        async with StandInEndpoint(unique_reply, faults=faults, latency_ms=5) as endpoint:
            client = make_client([endpoint.url], tmp_path, transport=transport, retries=8)
            calls = [client.call_llm(messages=user(f"question {i}"), scope=f"wf:{i % 10}") for i in range(150)]
            results = await asyncio.gather(*calls)
            await client.aclose()
            return results, client.usage(), endpoint.stats()

    results, usage, stats = asyncio.run(main())
    assert all(len(r) == 1 for r in results) and len({r[0] for r in results}) == 150
    entry = usage["by_model_role"]["test-executor|executor"]
    assert entry["calls"] == stats["answered"] == 150
    assert stats["max_answered_per_hash"] == 1
    assert stats["total_requests"] == 150 + entry["retries"]


def test_concurrency_cap_and_least_in_flight_spreading(tmp_path):
    async def main():
        async with StandInEndpoint(unique_reply, latency_ms=40) as first, \
                StandInEndpoint(unique_reply, latency_ms=40) as second:
            client = make_client([first.url, second.url], tmp_path, max_concurrency=3)
            calls = [client.call_llm(messages=user(f"q{i}")) for i in range(36)]
            await asyncio.gather(*calls)
            await client.aclose()
            return first.stats(), second.stats()

    first, second = asyncio.run(main())
    assert first["max_in_flight"] == 3 and second["max_in_flight"] == 3
    assert first["answered"] + second["answered"] == 36
    assert abs(first["answered"] - second["answered"]) <= 6


def test_global_cap_limits_all_endpoints_together(tmp_path):
    async def main():
        async with StandInEndpoint(unique_reply, latency_ms=30) as first, \
                StandInEndpoint(unique_reply, latency_ms=30) as second:
            client = make_client([first.url, second.url], tmp_path, max_concurrency=8, global_max_concurrency=4)
            peak = 0

            async def watch():
                nonlocal peak
                while True:
                    peak = max(peak, first.in_flight + second.in_flight)
                    await asyncio.sleep(0.002)

            watcher = asyncio.create_task(watch())
            await asyncio.gather(*(client.call_llm(messages=user(f"q{i}")) for i in range(24)))
            watcher.cancel()
            await client.aclose()
            return peak

    assert asyncio.run(main()) == 4


def test_parse_retry_after():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert 0 <= parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") <= 0.0  # a date in the past = now


def test_fault_spec_parsing():
    fault = Fault.parse("429:first=2:retry_after=1.5:marker=X")
    assert (fault.kind, fault.first, fault.retry_after_s, fault.marker) == ("429", 2, 1.5, "X")
    with pytest.raises(ValueError, match="unknown option 'bogus'"):
        Fault.parse("500:bogus=1")
    with pytest.raises(ValueError, match="fault kind must be one of"):
        Fault.parse("418")
