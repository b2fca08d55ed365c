"""The OpenAI-compatible server in-process on port 0, driven by the official `openai` client.

The model is a random `tiny` decoder widened to SmolLM2's vocabulary so the real GGUF tokenizer
and chat template apply; every server answer is compared with the sampler's own output.
"""

import asyncio
import json
import urllib.error
import urllib.request

import openai
import pytest
from conftest import mesh_of, requires_devices

from w4s_jax.models import get_preset, load_model
from w4s_jax.sampling.chat import ChatTokenizer
from w4s_jax.sampling.params import SamplingParams
from w4s_jax.serving.protocol import Defaults
from w4s_jax.serving.server import BATCHER_KEY, BackgroundServer, make_app

NAME = "tiny-chat"
DEFAULTS = Defaults(max_new_tokens=8, temperature=1.0, top_p=1.0, top_k=0, seed=0)
MESSAGES = [{"role": "user", "content": "Say something."}]
pytestmark = requires_devices(2)


@pytest.fixture(scope="module")
def server(smollm2_gguf_path):
    from w4s_jax.sampling.sampler import Sampler

    tokenizer = ChatTokenizer.from_path(smollm2_gguf_path)
    mesh = mesh_of(2)
    config = get_preset("tiny").replace(vocab_size=tokenizer.vocab_size)
    _, model = load_model(config, "", mesh=mesh, seed=0)
    sampler = Sampler(model, tokenizer, mesh, max_prompt_len=64, max_batch=32, min_new_bucket=8)
    app = make_app(sampler, served_name=NAME, defaults=DEFAULTS, max_batch=32, batch_wait_ms=20, json_retries=2)
    with BackgroundServer(app) as url:
        yield url, sampler, app
    assert app[BATCHER_KEY]._task is None  # the batcher stopped with the app


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0, timeout=300)


def expected(sampler, messages, **params):
    return sampler.generate_chat([messages], SamplingParams(**params))[0]


def test_models_lists_the_served_name(client):
    assert [m.id for m in client.models.list().data] == [NAME]


def test_greedy_request_returns_the_samplers_completion(server, client):
    _, sampler, _ = server
    reply = client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=0, max_tokens=6, logprobs=True)
    (want,) = expected(sampler, MESSAGES, temperature=0, max_new_tokens=6)
    assert reply.choices[0].message.content == want.text
    assert reply.choices[0].finish_reason == want.finish_reason
    assert reply.usage.prompt_tokens == want.prompt_tokens == len(sampler.tokenizer.encode_chat(MESSAGES))
    assert reply.usage.completion_tokens == len(want.token_ids)
    assert [t.logprob for t in reply.choices[0].logprobs.content] == pytest.approx(want.logprobs, abs=1e-5)


def test_seeded_n4_and_stop_strings(server, client):
    _, sampler, _ = server
    reply = client.chat.completions.create(model=NAME, messages=MESSAGES, n=4, seed=123, temperature=1.0, max_tokens=8)
    want = expected(sampler, MESSAGES, n=4, seed=123, temperature=1.0, max_new_tokens=8)
    assert [c.message.content for c in reply.choices] == [w.text for w in want]
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    stop = want[0].text[3:5]
    reply = client.chat.completions.create(model=NAME, messages=MESSAGES, seed=123, max_tokens=8, stop=[stop])
    assert reply.choices[0].message.content == want[0].text[: want[0].text.find(stop)]
    assert reply.choices[0].finish_reason == "stop"


def test_sixteen_concurrent_async_requests_are_batched(server):
    url, sampler, app = server
    batcher = app[BATCHER_KEY]

    async def run():
        async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300) as aclient:
            calls = [
                aclient.chat.completions.create(
                    model=NAME, messages=[{"role": "user", "content": f"Request number {i}" + " more" * i}],
                    seed=i, temperature=0.8, top_p=0.9 if i % 2 else 1.0, max_tokens=4 + i % 4,
                )
                for i in range(16)
            ]
            return await asyncio.gather(*calls)

    before = batcher.calls
    replies = asyncio.run(run())
    assert batcher.calls - before < 16  # requests shared sampler calls
    for i, reply in enumerate(replies):
        messages = [{"role": "user", "content": f"Request number {i}" + " more" * i}]
        (want,) = expected(sampler, messages, seed=i, temperature=0.8, top_p=0.9 if i % 2 else 1.0,
                           max_new_tokens=4 + i % 4)
        assert reply.choices[0].message.content == want.text


def test_streaming_matches_the_full_reply(server, client):
    _, sampler, _ = server
    want = expected(sampler, MESSAGES, n=2, seed=9, temperature=1.0, max_new_tokens=8)
    stream = client.chat.completions.create(
        model=NAME, messages=MESSAGES, n=2, seed=9, max_tokens=8, stream=True, stream_options={"include_usage": True}
    )
    texts, finish, usage = ["", ""], [None, None], None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            finish[choice.index] = choice.finish_reason or finish[choice.index]
    assert texts == [w.text for w in want]
    assert finish == [w.finish_reason for w in want]
    assert usage.completion_tokens == sum(len(w.token_ids) for w in want)
    with urllib.request.urlopen(_post(server[0], {"messages": MESSAGES, "stream": True, "max_tokens": 2})) as raw:
        lines = [line for line in raw.read().decode().split("\n") if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


def test_json_mode_refuses_non_json_after_retries(client):
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model=NAME, messages=MESSAGES, max_tokens=4, response_format={"type": "json_object"})
    assert info.value.body["code"] == "json_invalid"


def _post(url: str, body, raw: bytes | None = None) -> urllib.request.Request:
    data = raw if raw is not None else json.dumps(body).encode()
    return urllib.request.Request(url + "/v1/chat/completions", data=data, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("body", "raw", "status", "param"),
    [
        (None, b"{not json", 400, None),
        ({"model": NAME}, None, 400, "messages"),
        ({"messages": "hello"}, None, 400, "messages"),
        ({"messages": [{"role": "user", "content": 5}]}, None, 400, "messages[0].content"),
        ({"messages": MESSAGES, "temperature": "hot"}, None, 400, "temperature"),
        ({"messages": MESSAGES, "n": 0}, None, 400, "n"),
        ({"messages": MESSAGES, "max_tokens": -3}, None, 400, "max_tokens"),
        ({"messages": MESSAGES, "stop": [1, 2]}, None, 400, "stop"),
        ({"messages": [{"role": "user", "content": "word " * 200}]}, None, 400, "messages"),
        ({"messages": MESSAGES, "model": "gpt-5"}, None, 404, "model"),
    ],
)
def test_malformed_requests_get_openai_errors(server, client, body, raw, status, param):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(_post(server[0], body, raw))
    assert info.value.code == status
    error = json.loads(info.value.read())["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    # the server keeps serving
    assert client.chat.completions.create(model=NAME, messages=MESSAGES, temperature=0, max_tokens=2).choices


def test_unknown_route_is_a_json_404(server):
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server[0] + "/v1/completions")
    assert info.value.code in (404, 405) and "error" in json.loads(info.value.read())
