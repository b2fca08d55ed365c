"""SmolLM2-135M-Instruct from the GGUF on both sides: greedy parity with transformers' `generate`,
logprobs against a full forward, and stop strings cut on the decoded text."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import requires_torch

from w4s_jax.models import load_model
from w4s_jax.sampling.chat import ChatTokenizer
from w4s_jax.sampling.params import SamplingParams
from w4s_jax.sampling.sampler import Sampler

QUESTIONS = [
    "What is 2+2?",
    "Write a haiku about the sea.",
    "Name three colors and explain in one long sentence why the sky is blue during the day.",
    "Write a long, detailed story about a young dragon who learns to fly over the snowy northern mountains.",
]
NEW_TOKENS = 64


@pytest.fixture(scope="module")
def smollm(smollm2_gguf_path, one_device_mesh):
    _, model = load_model("smollm2_135m", smollm2_gguf_path, mesh=one_device_mesh)
    tokenizer = ChatTokenizer.from_path(smollm2_gguf_path)
    sampler = Sampler(model, tokenizer, one_device_mesh, max_prompt_len=128, max_batch=8)
    return model, tokenizer, sampler


@pytest.fixture(scope="module")
def greedy(smollm):
    _, tokenizer, sampler = smollm
    conversations = [[{"role": "user", "content": q}] for q in QUESTIONS]
    prompts = [tokenizer.encode_chat(c) for c in conversations]
    return prompts, sampler.generate(prompts, SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0))


@requires_torch
def test_greedy_matches_transformers_generate(smollm2_gguf_path, smollm, greedy):
    import torch
    from transformers import AutoModelForCausalLM

    _, tokenizer, _ = smollm
    prompts, ours = greedy
    assert len({len(p) for p in prompts}) == len(prompts)  # all prompt lengths differ
    reference = AutoModelForCausalLM.from_pretrained(
        str(smollm2_gguf_path.parent), gguf_file=smollm2_gguf_path.name, dtype=torch.float32
    ).eval()
    width = max(len(p) for p in prompts)
    input_ids = torch.tensor([[tokenizer.pad_id] * (width - len(p)) + p for p in prompts])
    attention_mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    with torch.no_grad():
        generated = reference.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=NEW_TOKENS, do_sample=False,
            eos_token_id=list(tokenizer.eos_token_ids), pad_token_id=tokenizer.pad_id,
        )[:, width:].tolist()
    stops = set(tokenizer.eos_token_ids)
    for (completion,), theirs in zip(ours, generated):
        end = next((i for i, t in enumerate(theirs) if t in stops), None)
        assert completion.token_ids == theirs[:end]
        assert completion.finish_reason == ("length" if end is None else "stop")
    assert sum(c.finish_reason == "length" for (c,) in ours) >= 1  # at least one row runs all 64 steps


def test_logprobs_match_a_full_forward(smollm, greedy):
    model, _, _ = smollm
    prompts, ours = greedy
    prompt, completion = prompts[2], ours[2][0]
    ids = jnp.asarray([prompt + completion.token_ids], jnp.int32)
    logits, _ = jax.jit(lambda t: model(t, jnp.arange(t.shape[1])[None], jnp.ones_like(t)))(ids)
    steps = np.asarray(logits[0, len(prompt) - 1 : -1])
    expected = np.asarray(jax.nn.log_softmax(steps, axis=-1))[np.arange(len(completion.token_ids)), completion.token_ids]
    np.testing.assert_allclose(completion.logprobs, expected, atol=1e-4)


def test_stop_strings_cut_text_tokens_and_logprobs(smollm, greedy):
    _, tokenizer, sampler = smollm
    prompts, ours = greedy
    reference = ours[3][0]
    text = reference.text
    word = text.split()[6]
    stop_mid_token = word[1:3]  # starts inside a token
    for stop in (word, stop_mid_token):
        params = SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0, stop_strings=(stop, "never-there"))
        (got,) = sampler.generate([prompts[3]], params)[0]
        cut = text.find(stop)
        assert got.text == text[:cut] and got.finish_reason == "stop"
        assert got.text.startswith(tokenizer.decode(got.token_ids))
        assert got.token_ids == reference.token_ids[: len(got.token_ids)]
        # same tokens; logprobs agree to float32 noise (batch 1 here, batch 4 for the reference)
        np.testing.assert_allclose(got.logprobs, reference.logprobs[: len(got.token_ids)], atol=1e-4)
        assert len(tokenizer.decode(reference.token_ids[: len(got.token_ids) + 1])) > cut  # longest such prefix


def test_generate_chat_applies_the_template(smollm, greedy):
    _, _, sampler = smollm
    _, ours = greedy
    out = sampler.generate_chat(
        [[{"role": "user", "content": QUESTIONS[0]}]], SamplingParams(max_new_tokens=NEW_TOKENS, temperature=0)
    )
    assert out[0][0].token_ids == ours[0][0].token_ids
    assert "4" in out[0][0].text and out[0][0].finish_reason == "stop"
