"""`ModelSettings`: the `model` config section, typed (standard library only: no JAX at config load)."""

from __future__ import annotations

import dataclasses

from w4s_jax.config_errors import ConfigError
from w4s_jax.models.config import REMAT_POLICIES
from w4s_jax.models.presets import PRESETS
from w4s_jax.settings_fields import at_least, check_fields, one_of, setting

DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    preset: str = setting("smollm2_135m", "named model preset (w4s_jax.models.presets), e.g. qwen2p5_coder_7b")
    path: str = setting("", "weights: a Hugging Face safetensors directory or a .gguf file; '' = random init")
    dtype: str = setting("float32", "compute dtype: float32 (CPU tests) or bfloat16 (accelerators)", one_of(DTYPES, "dtype"))
    param_dtype: str = setting("float32", "parameter (master weight) dtype", one_of(DTYPES, "dtype"))
    scan_layers: bool = setting(True, "scan the decoder layers (compile time independent of depth)")
    remat: str = setting("none", "rematerialisation policy: " + ", ".join(REMAT_POLICIES), one_of(REMAT_POLICIES, "policy"))
    attention_chunk: int = setting(128, "queries per attention block (bounds the score matrix; in training a block "
                                        "skips the keys after it); 0 = one block", at_least(0))

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"model.preset: unknown preset {self.preset!r}; fix: use one of {sorted(PRESETS)}")
        check_fields(self, "model")
