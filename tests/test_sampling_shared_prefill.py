"""One prefill per distinct prompt (`Sampler(share_prefill=True)`, the default): replies are token for
token the per-row prefill's, greedy, sampled and filtered, for W4S batches (several conversations x m
candidates through `SamplerPolicy`, requests with n > 1 in shared calls) and for the server with
n > 1 (real HTTP on loopback into the continuous batcher); the shared program runs one row per
distinct prompt."""

import asyncio
import json
import urllib.request

import numpy as np
import pytest
from conftest import mesh_of, requires_devices

from w4s_jax.models import load_model
from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer
from w4s_jax.sampling.decode_state import SampleRow
from w4s_jax.sampling.params import SamplingParams
from w4s_jax.sampling.sampler import Sampler
from w4s_jax.sampling.shared_prefill import distinct_prompts, row_sources
from w4s_jax.serving.protocol import Defaults
from w4s_jax.serving.server import BackgroundServer, make_app
from w4s_jax.w4s.policy import SamplerPolicy

pytestmark = requires_devices(4)
RNG = np.random.default_rng(20)


class CountingSampler(Sampler):
    """The real sampler, recording each compiled call's program kind and shape key."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple] = []

    def _call(self, kind, shape, args, *, with_params):
        self.calls.append((kind, *shape))
        return super()._call(kind, shape, args, with_params=with_params)


@pytest.fixture(scope="module")
def sampler():
    mesh = mesh_of(2, 1, 2)  # rows over 2 data shards, kv heads over 2 tensor shards
    _, model = load_model("tiny", "", mesh=mesh, seed=3)
    return CountingSampler(model, ByteChatTokenizer(), mesh, max_prompt_len=128, max_batch=32, min_new_bucket=8)


def prompt(length: int) -> list[int]:
    return RNG.integers(3, 256, length).tolist()


def per_row_and_shared(sampler: Sampler, run):
    """`run()` with sharing off, then on (the calls recorded for the shared run only)."""
    sampler.share_prefill = False
    try:
        per_row = run()
    finally:
        sampler.share_prefill = True
    sampler.calls.clear()
    return per_row, run()


def token_ids(results) -> list:
    return [[[c.token_ids for c in sample] for sample in request] for request in results]


def assert_same_completions(got, want) -> None:
    assert token_ids(got) == token_ids(want)
    for got_request, want_request in zip(got, want):
        for got_prompt, want_prompt in zip(got_request, want_request):
            for g, w in zip(got_prompt, want_prompt):
                assert (g.text, g.finish_reason, g.prompt_tokens) == (w.text, w.finish_reason, w.prompt_tokens)
                np.testing.assert_allclose(g.logprobs, w.logprobs, rtol=0, atol=1e-6)


def test_distinct_prompts_and_row_sources():
    rows = [SampleRow(p, SamplingParams(), i, 0) for i, p in enumerate([[5, 6], [7], [5, 6], [7], [5, 6, 8]])]
    assert distinct_prompts(rows) == ([0, 1, 4], [0, 1, 0, 1, 2])
    # batch padding rows copy a padding row of the distinct batch if there is one, else row 0
    np.testing.assert_array_equal(row_sources([0, 1, 0, 1, 2], 8, 4), [0, 1, 0, 1, 2, 3, 3, 3])
    np.testing.assert_array_equal(row_sources([0, 1, 0, 1], 8, 2), [0, 1, 0, 1, 0, 0, 0, 0])


@pytest.mark.parametrize("mode", ["greedy", "sampled", "filtered"])
def test_w4s_batch_of_conversations_times_candidates(sampler, mode):
    """A W4S generation step: 3 conversations x 5 candidates, each candidate its own request (n = 1)
    with its own seed, as `GenerationBatcher` sends them through `SamplerPolicy`."""
    knobs = {"greedy": dict(temperature=0.0), "sampled": dict(temperature=1.0),
             "filtered": dict(temperature=0.9, top_k=6, top_p=0.9)}[mode]
    conversations = [[{"role": "user", "content": text}] for text in
                     ("Improve the workflow.", "Write a solver for task 2, then test it.", "x" * 70)]
    batch = [c for c in conversations for _ in range(5)]
    seeds = [1000 * i + j for i in range(3) for j in range(5)]
    policy = SamplerPolicy(sampler, top_p=knobs.get("top_p", 1.0), top_k=knobs.get("top_k", 0))

    def run():
        return asyncio.run(policy.generate(batch, n=1, temperature=knobs["temperature"], max_new_tokens=24,
                                           seed=seeds))

    per_row, shared = per_row_and_shared(sampler, run)
    assert shared == per_row and sum(len(reply) for (reply,) in shared) > 15 * 10
    if mode != "greedy":
        assert len({reply for (reply,) in shared[:5]}) > 1  # the candidates of one conversation differ: own random streams
    # One shared prefill of the 3 prompts (a batch bucket of 4 over the 2 data shards) for 16 rows.
    prefills = [call for call in sampler.calls if call[0].startswith("prefill")]
    assert [call[:3] for call in prefills] == [("prefill_shared", 16, 4)]


def test_requests_with_n_and_repeated_prompts_in_shared_calls(sampler):
    """Requests with n > 1, one prompt that two requests share with other knobs, and a row that is
    alone (all in one chunk): replies and logprobs equal the per-row prefill's."""
    common, other = prompt(40), prompt(9)
    requests = [
        ([common, other], SamplingParams(max_new_tokens=20, temperature=1.0, n=3, seed=7, stop_token_ids=())),
        ([common], SamplingParams(max_new_tokens=12, temperature=0.0, n=2, stop_token_ids=())),
        ([prompt(33)], SamplingParams(max_new_tokens=16, temperature=0.7, top_k=5, seed=2, stop_token_ids=(9, 40))),
    ]
    per_row, shared = per_row_and_shared(sampler, lambda: sampler.generate_requests(requests))
    assert_same_completions(shared, per_row)
    assert len({tuple(c.token_ids) for c in shared[0][0]}) == 3
    # 9 rows of 3 distinct prompts in one chunk: a batch bucket of 16 prefilled as 4 rows.
    assert [call[:3] for call in sampler.calls if call[0].startswith("prefill")] == [("prefill_shared", 16, 4)]


def test_first_token_is_drawn_per_row_from_the_shared_logits(sampler):
    """With one new token, the first token is all a reply has: 64 rows of one prompt, each drawn
    with its own key from the one prefill's logits, equal the per-row draws and spread out."""
    params = SamplingParams(max_new_tokens=1, temperature=2.0, n=64, seed=5, stop_token_ids=())
    requests = [([prompt(20)], params)]
    per_row, shared = per_row_and_shared(sampler, lambda: sampler.generate_requests(requests))
    assert_same_completions(shared, per_row)
    assert len({c.token_ids[0] for c in shared[0][0]}) > 10
    assert [call[:3] for call in sampler.calls if call[0].startswith("prefill")] == [("prefill_shared", 32, 2)] * 2


def post_chat(url: str, body: dict) -> dict:
    request = urllib.request.Request(url + "/v1/chat/completions", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def test_server_with_n_prefills_each_prompt_once(sampler):
    messages = [{"role": "user", "content": "Say something long."}]
    defaults = Defaults(max_new_tokens=8, temperature=1.0, top_p=1.0, top_k=0, seed=0)
    app = make_app(sampler, served_name="tiny", defaults=defaults, steps_per_call=3, json_retries=0)
    cases = [dict(n=4, seed=11, temperature=1.0, max_tokens=14), dict(n=3, temperature=0.0, max_tokens=10),
             dict(n=5, seed=3, temperature=0.8, top_p=0.8, max_tokens=12)]
    sampler.calls.clear()
    with BackgroundServer(app) as url:
        replies = [post_chat(url, {"model": "tiny", "messages": messages, "logprobs": True, **case})
                   for case in cases]
    served_prefills = [call for call in sampler.calls if call[0].startswith("prefill")]
    sampler.share_prefill = False
    try:
        for case, reply in zip(cases, replies):
            params = SamplingParams(max_new_tokens=case["max_tokens"], temperature=case["temperature"],
                                    top_p=case.get("top_p", 1.0), n=case["n"], seed=case.get("seed", 0))
            want = sampler.generate_chat([messages], params)[0]
            choices = sorted(reply["choices"], key=lambda choice: choice["index"])
            assert len(choices) == case["n"]
            for choice, completion in zip(choices, want):
                assert choice["message"]["content"] == completion.text
                assert choice["finish_reason"] == completion.finish_reason
                logprobs = [entry["logprob"] for entry in choice["logprobs"]["content"]]
                np.testing.assert_allclose(logprobs, completion.logprobs, rtol=0, atol=1e-5)
    finally:
        sampler.share_prefill = True
    # Each request's n rows came from one prefilled prompt row (a batch bucket of 2 on 2 data shards).
    assert [call[:3] for call in served_prefills] == [("prefill_shared", 4, 2), ("prefill_shared", 4, 2),
                                                      ("prefill_shared", 8, 2)]
