"""Logit parity with transformers' PyTorch models (tiny random Qwen2 and Llama saved locally),
and export round trips: ours -> safetensors -> transformers, and ours -> export -> our import."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import numpy as np
import pytest
from conftest import requires_torch
from flax import nnx

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.hf_export import export_hf
from w4s_jax.models.weights import load_model

if TYPE_CHECKING:
    import torch

pytestmark = requires_torch  # torch and transformers are imported where used, so collection needs neither

TINY = {"vocab_size": 128, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
        "initializer_range": 0.15}  # large weights: logits of order 1, so the tolerance bites
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                  "original_max_position_embeddings": 32}


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Random biases and norm scales too (transformers initialises them to 0 and 1)."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                param.normal_(0.0, 0.5)
    return model.eval()


def save_tiny(kind: str, directory) -> torch.nn.Module:
    import torch
    import transformers

    torch.manual_seed(0)
    if kind == "qwen2":
        config = transformers.Qwen2Config(**TINY, tie_word_embeddings=False, rope_theta=10_000.0, rms_norm_eps=1e-6)
        model = transformers.Qwen2ForCausalLM(config)
    else:
        config = transformers.LlamaConfig(**TINY, tie_word_embeddings=True, rope_theta=10_000.0, rms_norm_eps=1e-5,
                                          rope_scaling=LLAMA3_SCALING)
        model = transformers.LlamaForCausalLM(config)
    config._attn_implementation = "eager"
    model = randomized(model)
    model.save_pretrained(directory, safe_serialization=True)
    return model


def left_padded(rng: np.random.Generator, lengths=(20, 13), total=20, offset=0):
    tokens = rng.integers(0, TINY["vocab_size"], (len(lengths), total))
    mask = np.zeros_like(tokens)
    positions = np.zeros_like(tokens)
    for row, n in enumerate(lengths):
        mask[row, total - n :] = 1
        positions[row, total - n :] = offset + np.arange(n)
    return tokens, mask, positions


def torch_logits(model, tokens, mask, positions) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(input_ids=torch.tensor(tokens), attention_mask=torch.tensor(mask),
                    position_ids=torch.tensor(positions))
    return out.logits.float().numpy()


def our_logits(model, tokens, mask, positions) -> np.ndarray:
    graphdef, state = nnx.split(model)
    logits = jax.jit(lambda state, *batch: nnx.merge(graphdef, state)(*batch)[0])(
        state, tokens, positions, mask.astype(np.int32)
    )
    return np.asarray(logits)


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def checkpoint(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp(request.param)
    return request.param, directory, save_tiny(request.param, directory)


def test_config_from_hf_matches_the_saved_model(checkpoint):
    kind, directory, _ = checkpoint
    config = ModelConfig.from_hf_config(directory)
    assert (config.architecture, config.qkv_bias, config.tie_embeddings) == (
        (kind, True, False) if kind == "qwen2" else (kind, False, True)
    )
    assert (config.rope_scaling is not None) == (kind == "llama")


@pytest.mark.parametrize("offset", [0, 90])  # 90: positions past the llama3 scaling's original length
def test_logits_match_transformers_with_left_padding(checkpoint, one_device_mesh, offset):
    _, directory, reference = checkpoint
    config, model = load_model("", directory, mesh=one_device_mesh)
    tokens, mask, positions = left_padded(np.random.default_rng(offset), offset=offset)
    expected = torch_logits(reference, tokens, mask, positions)
    got = our_logits(model, tokens, mask, positions)
    real = mask.astype(bool)
    assert np.abs(got[real] - expected[real]).max() <= 1e-4
    assert config.num_layers == 2


def test_export_round_trips_through_transformers_and_our_importer(checkpoint, one_device_mesh, tmp_path):
    import transformers

    kind, directory, _ = checkpoint
    config, model = load_model("", directory, mesh=one_device_mesh, scan_layers=(kind == "qwen2"))
    export_hf(model, config, tmp_path / "export")
    tokens, mask, positions = left_padded(np.random.default_rng(7))
    ours = our_logits(model, tokens, mask, positions)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "export", attn_implementation="eager")
    real = mask.astype(bool)
    assert np.abs(torch_logits(reloaded.float().eval(), tokens, mask, positions)[real] - ours[real]).max() <= 1e-4
    _, again = load_model("", tmp_path / "export", mesh=one_device_mesh)
    np.testing.assert_array_equal(our_logits(again, tokens, mask, positions), ours)
