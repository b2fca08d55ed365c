"""Bad checkpoints raise WeightFormatError / ConfigMismatchError naming the file and tensor/field."""

import json
import shutil

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.errors import ConfigMismatchError, WeightFormatError
from w4s_jax.models.hf_export import export_hf
from w4s_jax.models.weights import load_model


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory, tiny_model):
    config, model = tiny_model
    return export_hf(model, config, tmp_path_factory.mktemp("tiny_hf"))


@pytest.fixture
def checkpoint(good_checkpoint, tmp_path):
    return shutil.copytree(good_checkpoint, tmp_path / "ckpt")


def edit_config(directory, **changes):
    path = directory / "config.json"
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def test_missing_tensor_names_the_tensor(checkpoint, one_device_mesh):
    tensors = load_file(checkpoint / "model.safetensors")
    del tensors["model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, checkpoint / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(WeightFormatError, match=r"ckpt: missing tensor 'model.layers.1.mlp.up_proj.weight'"):
        load_model("tiny", checkpoint, mesh=one_device_mesh)


def test_shape_mismatch_names_file_tensor_and_shapes(checkpoint, one_device_mesh):
    tensors = load_file(checkpoint / "model.safetensors")
    tensors["model.layers.0.self_attn.k_proj.bias"] = np.zeros(40, np.float32)
    save_file(tensors, checkpoint / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        WeightFormatError,
        match=r"model\.safetensors: tensor 'model\.layers\.0\.self_attn\.k_proj\.bias' has shape \(40,\), expected \(32,\)",
    ):
        load_model("tiny", checkpoint, mesh=one_device_mesh)


def test_unknown_architecture_names_config_field(checkpoint, one_device_mesh):
    edit_config(checkpoint, architectures=["GPT2LMHeadModel"])
    with pytest.raises(WeightFormatError, match=r"config\.json: field 'architectures' = \['GPT2LMHeadModel'\]; unknown"):
        load_model("tiny", checkpoint, mesh=one_device_mesh)
    with pytest.raises(WeightFormatError, match=r"<config dict>: missing field 'vocab_size'"):
        ModelConfig.from_hf_config({"architectures": ["Qwen2ForCausalLM"], "num_attention_heads": 2, "hidden_size": 8})


def test_preset_config_mismatch_names_preset_file_and_field(checkpoint, one_device_mesh):
    with pytest.raises(
        ConfigMismatchError, match=r"preset 'smollm2_135m' disagrees with .*ckpt: vocab_size: 49152 != 256"
    ):
        load_model("smollm2_135m", checkpoint, mesh=one_device_mesh)


def test_truncated_safetensors_names_the_file(checkpoint, one_device_mesh):
    file = checkpoint / "model.safetensors"
    data = file.read_bytes()
    file.write_bytes(data[: len(data) - 1000])
    with pytest.raises(WeightFormatError, match=r"model\.safetensors: corrupt or truncated safetensors file"):
        load_model("tiny", checkpoint, mesh=one_device_mesh)


def test_missing_files_and_unknown_formats(tmp_path, one_device_mesh):
    with pytest.raises(WeightFormatError, match=r"nowhere: weights path does not exist"):
        load_model("tiny", tmp_path / "nowhere", mesh=one_device_mesh)
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(WeightFormatError, match=r"weights\.bin: expected a Hugging Face safetensors directory or a \.gguf"):
        load_model("tiny", tmp_path / "weights.bin", mesh=one_device_mesh)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightFormatError, match=r"empty/config\.json: config\.json not found"):
        load_model("tiny", tmp_path / "empty", mesh=one_device_mesh)


def test_truncated_gguf_names_the_file(smollm2_gguf_path, tmp_path, one_device_mesh):
    truncated = tmp_path / "smollm2_truncated.gguf"
    with open(smollm2_gguf_path, "rb") as source:
        truncated.write_bytes(source.read(2_000_000))
    with pytest.raises(WeightFormatError, match=r"smollm2_truncated\.gguf: corrupt or truncated GGUF file"):
        load_model("smollm2_135m", truncated, mesh=one_device_mesh)


def test_gguf_unknown_architecture_names_the_field(tmp_path, one_device_mesh):
    path = tmp_path / "gpt2.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(WeightFormatError, match=r"gpt2\.gguf: field 'general\.architecture' = 'gpt2'; unknown architecture"):
        load_model("", path, mesh=one_device_mesh)
