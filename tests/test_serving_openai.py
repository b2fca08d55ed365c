"""The OpenAI-compatible server in-process on port 0, driven by the official `openai` client.

The model is a random `tiny` decoder widened to SmolLM2's vocabulary so the real GGUF tokenizer
and chat template apply; every server answer is compared with the sampler's own (batch) output.
Tests of streaming and continuous batching hold the batcher's decode calls at a gate (the real
sampler, whose decode waits for a permit the test hands out), so the order of events they assert
on never depends on timing.
"""

import asyncio
import contextlib
import json
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
from conftest import mesh_of, requires_devices

from w4s_jax.models import get_preset, load_model
from w4s_jax.sampling.chat import ChatTokenizer
from w4s_jax.sampling.params import SamplingParams
from w4s_jax.sampling.sampler import Sampler
from w4s_jax.serving.protocol import Defaults
from w4s_jax.serving.server import BATCHER_KEY, BackgroundServer, make_app

NAME = "tiny-chat"
DEFAULTS = Defaults(max_new_tokens=8, temperature=1.0, top_p=1.0, top_k=0, seed=0)
MESSAGES = [{"role": "user", "content": "Say something."}]
pytestmark = requires_devices(2)


class GatedSampler(Sampler):
    """The real sampler; while `gate` is set, each decode call first takes one of its permits."""

    gate: threading.Semaphore | None = None

    def decode(self, *args, **kwargs):
        if self.gate is not None:
            self.gate.acquire()
        return super().decode(*args, **kwargs)


@contextlib.contextmanager
def gated(sampler: GatedSampler):
    """Decode calls wait for permits (`gate.release(k)`) until the block ends."""
    gate = sampler.gate = threading.Semaphore(0)
    try:
        yield gate
    finally:
        sampler.gate = None
        gate.release(1_000_000)


def wait_for(condition, what: str, limit_s: float = 300.0) -> None:
    """Polls `condition` (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def server(smollm2_gguf_path):
    tokenizer = ChatTokenizer.from_path(smollm2_gguf_path)
    mesh = mesh_of(2)
    config = get_preset("tiny").replace(vocab_size=tokenizer.vocab_size)
    _, model = load_model(config, "", mesh=mesh, seed=0)
    sampler = GatedSampler(model, tokenizer, mesh, max_prompt_len=64, max_batch=32, min_new_bucket=8)
    app = make_app(sampler, served_name=NAME, defaults=DEFAULTS, steps_per_call=1, json_retries=2)
    with BackgroundServer(app) as url:
        yield url, sampler, app
    assert not app[BATCHER_KEY].engine.running  # the batcher stopped with the app


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
    engine = app[BATCHER_KEY].engine

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

    calls, finished = engine.decode_calls, engine.finished_rows
    replies = []
    with gated(sampler):
        sender = threading.Thread(target=lambda: replies.extend(asyncio.run(run())))
        sender.start()
        # Decoding waits until all are in: those that came first hold rows, the others wait to join.
        wait_for(lambda: engine.waiting_rows + engine.live_rows + engine.finished_rows - finished == 16,
                 "16 submitted requests")
    sender.join()
    # One after another they would take sum(max_tokens - 1) = 66 decode calls. Together: the longest
    # reply's 6, plus one if it joined a call late.
    assert engine.decode_calls - calls <= 7
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


def content_chunks(stream):
    """(choice index, text) of every chunk that carries text, in arrival order."""
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                yield choice.index, choice.delta.content


def clean_first_token(sampler, max_tokens: int) -> list[dict]:
    """Messages whose greedy reply starts with a token that decodes to whole characters (so it is
    streamed right after the prefill) and runs the full `max_tokens`."""
    for i in range(50):
        messages = [{"role": "user", "content": f"Tell me about item {i}."}]
        (want,) = expected(sampler, messages, temperature=0, max_new_tokens=max_tokens)
        first = sampler.tokenizer.decode(want.token_ids[:1])
        if first.strip() and "\ufffd" not in first and want.finish_reason == "length":
            return messages
    raise AssertionError("no prompt with a clean first token")


def test_stream_sends_the_first_token_before_decoding_the_rest(server, client):
    _, sampler, app = server
    engine = app[BATCHER_KEY].engine
    messages = clean_first_token(sampler, 12)
    (want,) = expected(sampler, messages, temperature=0, max_new_tokens=12)
    with gated(sampler) as gate:
        calls = engine.decode_calls
        pieces = content_chunks(client.chat.completions.create(
            model=NAME, messages=messages, temperature=0, max_tokens=12, stream=True))
        first = next(pieces)
        # The client holds text while no decode call has run: it came from the prefill, and 11 more
        # tokens (11 decode calls) are still to come.
        assert engine.decode_calls == calls
        assert first[1] == sampler.tokenizer.decode(want.token_ids[:1])
        gate.release(1_000_000)
        rest = list(pieces)
    assert first[1] + "".join(text for _, text in rest) == want.text
    assert len(rest) >= 5  # sent piece by piece as decoded, not in one block at the end
    assert engine.decode_calls - calls == 11


def test_a_request_arriving_mid_decode_is_served_without_waiting(server, client):
    _, sampler, app = server
    engine = app[BATCHER_KEY].engine
    long_messages = clean_first_token(sampler, 40)
    short_messages = [{"role": "user", "content": "A short one, please."}]
    (long_want,) = expected(sampler, long_messages, temperature=0, max_new_tokens=40)
    (short_want,) = expected(sampler, short_messages, seed=5, temperature=0.9, max_new_tokens=3)
    with gated(sampler) as gate:
        calls = engine.decode_calls
        pieces = content_chunks(client.chat.completions.create(
            model=NAME, messages=long_messages, temperature=0, max_tokens=40, stream=True))
        received = [next(pieces)]
        gate.release(3)  # the long request decodes a few tokens, then waits at the gate
        wait_for(lambda: engine.decode_calls == calls + 3, "3 decode calls")
        finished, short = engine.finished_rows, {}
        asker = threading.Thread(target=lambda: short.update(reply=client.chat.completions.create(
            model=NAME, messages=short_messages, seed=5, temperature=0.9, max_tokens=3)))
        asker.start()
        wait_for(lambda: engine.waiting_rows == 1, "the short request to arrive")
        while engine.finished_rows == finished:  # one decode call at a time until a row finishes
            target = engine.decode_calls + 1
            gate.release(1)
            wait_for(lambda target=target: engine.decode_calls >= target, "a decode call")
        asker.join()
        # The short request joined the running batch (one call to finish the long one's step, one to
        # admit it, two for its tokens; one more if a permit raced its finish) and got its reply while
        # the long one, 39 decode calls long, still runs.
        assert short["reply"].choices[0].message.content == short_want.text
        assert engine.decode_calls - calls <= 7 and engine.live_rows == 1
        gate.release(1_000_000)
        received += list(pieces)
    assert "".join(text for _, text in received) == long_want.text


def test_a_client_that_leaves_a_stream_frees_its_rows(server, client):
    _, sampler, app = server
    engine = app[BATCHER_KEY].engine
    messages = clean_first_token(sampler, 40)
    with gated(sampler) as gate:
        calls = engine.decode_calls
        stream = client.chat.completions.create(model=NAME, messages=messages, temperature=0, max_tokens=40,
                                                stream=True)
        next(content_chunks(stream))
        stream.close()  # the client goes away after the first token
        for _ in range(30):  # the reply needs 39 decode calls; the server notices at its next writes
            if engine.live_rows == 0:
                break
            target = engine.decode_calls + 1
            gate.release(1)
            wait_for(lambda target=target: engine.decode_calls >= target or engine.live_rows == 0, "a decode call")
        wait_for(lambda: engine.live_rows == 0, "the row to be freed")
        assert engine.decode_calls - calls < 39


def test_streamed_text_equals_the_non_streamed_text(server, client):
    _, sampler, _ = server
    want = expected(sampler, MESSAGES, n=3, seed=21, temperature=1.0, top_p=0.9, max_new_tokens=16)
    stop = want[0].text[4:6]
    request = dict(model=NAME, messages=MESSAGES, n=3, seed=21, temperature=1.0, top_p=0.9, max_tokens=16,
                   stop=[stop], logprobs=True)
    whole = client.chat.completions.create(**request)
    texts, finish, logprobs = [""] * 3, [None] * 3, [None] * 3
    for chunk in client.chat.completions.create(**request, stream=True):
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
                logprobs[choice.index] = [t.logprob for t in choice.logprobs.content]
    assert texts == [c.message.content for c in whole.choices]
    assert finish == [c.finish_reason for c in whole.choices]
    for streamed, complete in zip(logprobs, whole.choices):  # float noise of other batch shapes aside
        assert streamed == pytest.approx([t.logprob for t in complete.logprobs.content], abs=1e-5)
    cut = [w.text[: w.text.find(stop)] if stop in w.text else w.text for w in want]
    assert texts == cut and finish[0] == "stop"


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
