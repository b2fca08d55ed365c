"""Presets carry the published shapes: parameter counts, and a lossless HF config round trip."""

import jax
import numpy as np
import pytest
from flax import nnx

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.decoder import Decoder
from w4s_jax.models.presets import PRESETS, get_preset

# Published parameter counts (model cards / Hub safetensors metadata).
PUBLISHED_PARAMS = {
    "smollm2_135m": 134.5e6,
    "qwen2p5_0p5b": 0.494e9,
    "qwen2p5_1p5b": 1.54e9,
    "qwen2p5_7b": 7.61e9,
    "qwen2p5_coder_7b": 7.61e9,
    "qwen2p5_14b": 14.7e9,
    "qwen2p5_32b": 32.8e9,
    "llama3p1_8b": 8.03e9,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_preset_parameter_count_matches_the_published_model(name):
    config = get_preset(name)
    abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
    count = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(nnx.state(abstract)))
    assert abs(count - PUBLISHED_PARAMS[name]) / PUBLISHED_PARAMS[name] < 0.005


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_hf_config_round_trip_is_lossless(name):
    config = get_preset(name)
    back = ModelConfig.from_hf_config(config.to_hf_config(), name=config.name)
    assert back == config


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown model preset 'gpt5'; known presets: \['llama3p1_8b'"):
        get_preset("gpt5")
