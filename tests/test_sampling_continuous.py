"""ContinuousBatcher on the tiny random model (byte tokenizer) over a data x tensor mesh: requests that
join a running batch at chosen tokens (long prompts, long replies, more rows than the batch holds)
get exactly what the batch path with one prefill per row gives them (the batcher prefills a
request's n rows once per prompt); streamed deltas add up to the reply; cancel frees rows; a failed
compiled call fails only the requests it touched; stop strings are decided as early as the text
allows, with the same cut as on the finished text."""

import threading

import jax
import numpy as np
import pytest

from w4s_jax.models import load_model
from w4s_jax.parallel.mesh import make_mesh
from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer
from w4s_jax.sampling.continuous import ContinuousBatcher, RowEvent
from w4s_jax.sampling.params import SamplingParams
from w4s_jax.sampling.sampler import Sampler
from w4s_jax.sampling.stopping import cut_at_stop_string, settled_text

RNG = np.random.default_rng(4)


def prompt(length: int) -> list[int]:
    return RNG.integers(3, 256, length).tolist()


class ScriptedSampler(Sampler):
    """The real sampler; after its k-th decode call it runs `script[k]` (on the batcher's thread,
    between decode calls: where a request that arrives mid-decode joins)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.script, self.decode_calls = {}, 0

    def decode(self, *args, **kwargs):
        out = super().decode(*args, **kwargs)
        self.decode_calls += 1
        action = self.script.pop(self.decode_calls, None)
        if action is not None:
            action()
        return out


@pytest.fixture(scope="module")
def sampler():
    mesh = make_mesh(2, 1, 2, devices=jax.devices()[:4])
    _, model = load_model("tiny", "", mesh=mesh, seed=11)
    return ScriptedSampler(model, ByteChatTokenizer(), mesh, max_prompt_len=128, max_batch=16)


class Collector:
    """A request's sink: streamed text and completions per (prompt, sample), or the error."""

    def __init__(self, rows: int):
        self.rows, self.text, self.completions, self.errors = rows, {}, {}, []
        self.finished = threading.Event()

    def __call__(self, event):
        if isinstance(event, BaseException):
            self.errors.append(event)
            self.finished.set()
            return
        assert isinstance(event, RowEvent) and not self.finished.is_set()
        key = (event.prompt_index, event.sample_index)
        self.text[key] = self.text.get(key, "") + event.text
        if event.completion is not None:
            self.completions[key] = event.completion
            if len(self.completions) == self.rows:
                self.finished.set()


def submit(batcher, prompts, params, stream=True) -> Collector:
    collector = Collector(len(prompts) * params.n)
    batcher.submit(prompts, params, collector, stream=stream)
    return collector


def wait(collector: Collector) -> Collector:
    assert collector.finished.wait(600), "the request never finished"  # a guard against hanging only
    return collector


def assert_same(want, collector, prompts, params):
    assert not collector.errors
    for p in range(len(prompts)):
        for s in range(params.n):
            got, ref = collector.completions[(p, s)], want[p][s]
            assert (got.token_ids, got.text, got.finish_reason) == (ref.token_ids, ref.text, ref.finish_reason)
            np.testing.assert_allclose(got.logprobs, ref.logprobs, atol=1e-5)
            assert collector.text[(p, s)] == got.text  # the streamed deltas add up to the reply


def test_rows_joining_a_running_batch_get_what_the_batch_path_gives(sampler):
    requests = {
        "first": ([prompt(5)], SamplingParams(max_new_tokens=30, temperature=0, stop_token_ids=())),
        # prompts longer than the slots before the running row's newest token: the window grows in
        # front; 4 rows where 1 of 2 is free: the batch grows
        "long_prompt": ([prompt(100), prompt(40)], SamplingParams(max_new_tokens=20, temperature=1.0, n=2, seed=3,
                                                                  stop_token_ids=(), stop_strings=("e", "q"))),
        # a reply longer than the slots after it: the window grows at the back; filtered sampling
        "long_reply": ([prompt(9)], SamplingParams(max_new_tokens=90, temperature=0.8, top_k=5, n=3, seed=4,
                                                   stop_token_ids=())),
        # 10 more rows: the batch grows to max_batch (16) and two rows wait for free slots
        "many": ([prompt(12), prompt(3)], SamplingParams(max_new_tokens=6, temperature=1.2, top_p=0.8, n=5, seed=5,
                                                         stop_token_ids=(7, 200, 201))),
    }
    # The batch path with one prefill per row: the batcher's shared prefills must give the same replies.
    sampler.share_prefill = False
    try:
        want = {name: sampler.generate_requests([request])[0] for name, request in requests.items()}
    finally:
        sampler.share_prefill = True
    batcher = ContinuousBatcher(sampler, steps_per_call=2)
    batcher.start()
    collectors = {}
    calls = sampler.decode_calls

    def join(name):
        return lambda: collectors.update({name: submit(batcher, *requests[name])})

    # "first" needs 15 decode calls of 2 steps; the others arrive while it runs.
    sampler.script = {calls + 2: join("long_prompt"), calls + 4: join("long_reply"), calls + 6: join("many")}
    collectors["first"] = submit(batcher, *requests["first"])
    wait(collectors["first"])
    for name in requests:
        wait(collectors[name])
    batcher.close()
    for name, (prompts, params) in requests.items():
        assert_same(want[name], collectors[name], prompts, params)
    assert batcher.max_live_rows == 16
    assert any(key[0] == "prefill_shared" for key in sampler._programs)  # the n > 1 requests shared prefills
    # grown in front, for rows, at the back; shrunk when only the long replies were left
    assert batcher.relayouts >= 4 and batcher.live_rows == 0


def test_cancel_frees_the_rows(sampler):
    batcher = ContinuousBatcher(sampler, steps_per_call=1)
    batcher.start()
    params = SamplingParams(max_new_tokens=60, temperature=0, stop_token_ids=())
    cancelled, ticket = Collector(1), None
    calls = sampler.decode_calls
    sampler.script = {calls + 3: lambda: batcher.cancel(ticket)}
    ticket = batcher.submit([prompt(6)], params, cancelled, stream=False)
    other = wait(submit(batcher, [prompt(4)], params.replace(max_new_tokens=10)))
    batcher.close()
    assert not cancelled.completions and not cancelled.errors  # nothing after the cancel
    assert len(other.completions) == 1
    assert sampler.decode_calls - calls < 59  # the cancelled row did not run to its end
    assert batcher.live_rows == 0


def test_a_failed_call_fails_its_requests_and_the_batcher_lives_on(sampler):
    batcher = ContinuousBatcher(sampler, steps_per_call=2)
    batcher.start()
    params = SamplingParams(max_new_tokens=8, temperature=0, stop_token_ids=())

    def fail():
        raise RuntimeError("injected decode failure")

    sampler.script = {sampler.decode_calls + 2: fail}  # fault injection: the second decode call raises
    failed = wait(submit(batcher, [prompt(5)], params))
    served = wait(submit(batcher, [prompt(5)], params))
    batcher.close()
    assert [str(e) for e in failed.errors] == ["injected decode failure"] and not failed.completions
    assert not served.errors and len(served.completions) == 1


@pytest.mark.parametrize(
    ("text", "stops", "settled", "stopped"),
    [
        ("hello wor", ("world",), 6, False),  # "wor" may become the stop string: held back
        ("hello world!", ("world",), 6, True),
        ("xabcd", ("abcdef", "cd"), 1, False),  # "cd" matched, but an earlier "abcdef" is still possible
        ("xabcdz", ("abcdef", "cd"), 3, True),  # ... and then it is not: cut at "cd"
        ("caf\ufffd", (), 3, False),  # an incomplete UTF-8 character is held back
        ("plain", (), 5, False),
    ],
)
def test_settled_text_decides_stop_strings_as_early_as_the_text_allows(text, stops, settled, stopped):
    assert settled_text(text, stops) == (settled, stopped)


def test_streamed_stop_decisions_match_the_cut_on_the_finished_text():
    rng = np.random.default_rng(0)
    alphabet = list("abc ")
    for _ in range(300):
        pieces = ["".join(rng.choice(alphabet, rng.integers(1, 4))) for _ in range(12)]
        stops = tuple("".join(rng.choice(alphabet, rng.integers(1, 4))) for _ in range(2))
        full = "".join(pieces)
        ids = list(range(len(pieces)))
        decode = lambda ids, pieces=pieces: "".join(pieces[i] for i in ids)  # noqa: E731
        _, _, want, _ = cut_at_stop_string(ids, [0.0] * len(ids), full, stops, decode)
        sent, text = "", ""
        for piece in pieces:
            text += piece
            settled, stopped = settled_text(text, stops)
            if stopped:
                break
            assert text[:settled].startswith(sent)
            sent = text[:settled]
        _, _, got, _ = cut_at_stop_string(ids, [0.0] * len(ids), text, stops, decode)
        assert got == want and want.startswith(sent)
