"""SmolLM2-135M-Instruct from the shipped Q4_1 GGUF: our import vs transformers' GGUF loader."""

import jax
import numpy as np
import pytest
from conftest import mesh_of, requires_devices, requires_torch
from flax import nnx

from w4s_jax.models.gguf_import import load_gguf_config
from w4s_jax.models.presets import get_preset
from w4s_jax.models.weights import load_model


@pytest.fixture(scope="module")
def token_batch() -> np.ndarray:
    """Two rows of 48 random token ids."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 49_152, (2, 48))


@pytest.fixture(scope="module")
def reference_logits(smollm2_gguf_path, token_batch) -> np.ndarray:
    import torch
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(
        smollm2_gguf_path.parent, gguf_file=smollm2_gguf_path.name, dtype=torch.float32
    ).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(token_batch)).logits.float().numpy()
    del model
    return logits


def test_gguf_config_matches_the_smollm2_preset(smollm2_gguf_path):
    assert get_preset("smollm2_135m").mismatches(load_gguf_config(smollm2_gguf_path)) == []


@requires_torch
@requires_devices(8)
def test_gguf_logits_match_transformers(smollm2_gguf_path, token_batch, reference_logits):
    mesh = mesh_of(1, 2, 4)
    config, model = load_model("smollm2_135m", smollm2_gguf_path, mesh=mesh)
    length = token_batch.shape[1]
    positions = np.broadcast_to(np.arange(length), token_batch.shape)
    segments = np.ones_like(token_batch, dtype=np.int32)
    graphdef, state = nnx.split(model)
    logits = jax.jit(lambda state, *batch: nnx.merge(graphdef, state)(*batch)[0])(state, token_batch, positions, segments)
    logits = np.asarray(logits)
    assert np.abs(logits - reference_logits).max() <= 1e-3
    np.testing.assert_array_equal(logits.argmax(-1), reference_logits.argmax(-1))
    assert config.tie_embeddings and config.num_layers == 30
