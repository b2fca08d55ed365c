"""`ModelConfig`: the shape and numerics of one Llama/Qwen2-family decoder.

One frozen dataclass describes every model the project runs, so presets, Hugging Face
config.json files and GGUF metadata all land in the same place and can be compared field by
field (a preset that disagrees with a checkpoint's config is an error, not a silent reshape).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any

from w4s_jax.models.errors import ConfigMismatchError, WeightFormatError

REMAT_POLICIES = ("none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable")
ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}

# Fields that fix the parameter shapes and the maths of the forward pass; the rest (dtypes,
# scan/remat) only choose how it is run.
SHAPE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "head_dim",
    "tie_embeddings",
    "qkv_bias",
)


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Llama-3.1 RoPE frequency scaling (`rope_type: "llama3"` in config.json)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position: int = 8192


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of one decoder; presets live in `w4s_jax.models.presets`."""

    name: str
    architecture: str  # "llama" or "qwen2"
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float = 10_000.0
    rope_scaling: RopeScaling | None = None
    rms_eps: float = 1e-6
    tie_embeddings: bool = False
    qkv_bias: bool = False
    max_positions: int = 32_768
    dtype: str = "float32"  # compute dtype
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat: str = "none"
    # Queries per attention block (0 = one block): bounds the score matrix to [chunk, S] per block,
    # and without a cache a block skips the keys after its last query (models/blocked_attention.py).
    attention_chunk: int = 128

    def __post_init__(self) -> None:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"ModelConfig {self.name}: num_heads={self.num_heads} must be a multiple of "
                f"num_kv_heads={self.num_kv_heads}"
            )
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"ModelConfig {self.name}: remat={self.remat!r}; expected one of {REMAT_POLICIES}")
        if self.architecture not in ARCHITECTURES.values():
            raise ValueError(f"ModelConfig {self.name}: architecture={self.architecture!r}; expected llama or qwen2")

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def mismatches(self, other: ModelConfig) -> list[str]:
        """Names and values of the shape fields on which two configs disagree."""
        diffs = []
        for field in (*SHAPE_FIELDS, "rope_theta", "rope_scaling"):
            mine, theirs = getattr(self, field), getattr(other, field)
            if mine != theirs:
                diffs.append(f"{field}: {mine!r} != {theirs!r}")
        return diffs

    def check_matches(self, other: ModelConfig, source: str) -> None:
        """Raises ConfigMismatchError when `other` (read from `source`) has another shape."""
        diffs = self.mismatches(other)
        if diffs:
            raise ConfigMismatchError(
                f"preset/config mismatch: preset {self.name!r} disagrees with {source}: " + "; ".join(diffs)
            )

    @classmethod
    def from_hf_config(cls, path_or_dict: str | pathlib.Path | dict[str, Any], **overrides: Any) -> ModelConfig:
        """Builds a config from a Hugging Face config.json (a file, its directory, or the dict)."""
        if isinstance(path_or_dict, dict):
            source, raw = "<config dict>", path_or_dict
        else:
            path = pathlib.Path(path_or_dict)
            if path.is_dir():
                path = path / "config.json"
            source = str(path)
            if not path.is_file():
                raise WeightFormatError(f"{source}: config.json not found")
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise WeightFormatError(f"{source}: not valid JSON ({exc})") from exc
        return _config_from_hf_dict(raw, source, overrides)

    def to_hf_config(self) -> dict[str, Any]:
        """The config.json that transformers needs to rebuild this model (used by export_hf)."""
        arch = {v: k for k, v in ARCHITECTURES.items()}[self.architecture]
        out: dict[str, Any] = {
            "architectures": [arch],
            "model_type": self.architecture,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": self.max_positions,
            "rms_norm_eps": self.rms_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_embeddings,
            "torch_dtype": self.param_dtype,
        }
        if self.rope_scaling is not None:
            out["rope_scaling"] = {
                "rope_type": "llama3",
                "factor": self.rope_scaling.factor,
                "low_freq_factor": self.rope_scaling.low_freq_factor,
                "high_freq_factor": self.rope_scaling.high_freq_factor,
                "original_max_position_embeddings": self.rope_scaling.original_max_position,
            }
        if self.architecture == "llama":
            out["attention_bias"] = self.qkv_bias
            out["mlp_bias"] = False
        return out


def _require(raw: dict[str, Any], field: str, source: str) -> Any:
    if field not in raw:
        raise WeightFormatError(f"{source}: missing field {field!r}")
    return raw[field]


def _config_from_hf_dict(raw: dict[str, Any], source: str, overrides: dict[str, Any]) -> ModelConfig:
    archs = raw.get("architectures") or []
    known = [a for a in archs if a in ARCHITECTURES]
    if not known:
        raise WeightFormatError(
            f"{source}: field 'architectures' = {archs!r}; unknown architecture, expected one of "
            f"{sorted(ARCHITECTURES)}"
        )
    architecture = ARCHITECTURES[known[0]]
    heads = int(_require(raw, "num_attention_heads", source))
    hidden = int(_require(raw, "hidden_size", source))
    rope_params = raw.get("rope_scaling") or raw.get("rope_parameters") or None
    rope_theta = raw.get("rope_theta")
    if rope_theta is None and isinstance(rope_params, dict):
        rope_theta = rope_params.get("rope_theta")
    scaling = None
    if isinstance(rope_params, dict):
        rope_type = rope_params.get("rope_type", rope_params.get("type", "default"))
        if rope_type == "llama3":
            scaling = RopeScaling(
                factor=float(rope_params["factor"]),
                low_freq_factor=float(rope_params["low_freq_factor"]),
                high_freq_factor=float(rope_params["high_freq_factor"]),
                original_max_position=int(rope_params["original_max_position_embeddings"]),
            )
        elif rope_type != "default":
            raise WeightFormatError(
                f"{source}: field 'rope_scaling.rope_type' = {rope_type!r}; supported: default, llama3"
            )
    if architecture == "llama":
        qkv_bias = bool(raw.get("attention_bias", False))
    else:
        qkv_bias = True
    fields: dict[str, Any] = {
        "name": str(raw.get("_name_or_path") or known[0]),
        "architecture": architecture,
        "vocab_size": int(_require(raw, "vocab_size", source)),
        "hidden_size": hidden,
        "intermediate_size": int(_require(raw, "intermediate_size", source)),
        "num_layers": int(_require(raw, "num_hidden_layers", source)),
        "num_heads": heads,
        "num_kv_heads": int(raw.get("num_key_value_heads") or heads),
        "head_dim": int(raw.get("head_dim") or hidden // heads),
        "rope_theta": float(rope_theta if rope_theta is not None else 10_000.0),
        "rope_scaling": scaling,
        "rms_eps": float(raw.get("rms_norm_eps", 1e-6)),
        "tie_embeddings": bool(raw.get("tie_word_embeddings", False)),
        "qkv_bias": qkv_bias,
        "max_positions": int(raw.get("max_position_embeddings", 32_768)),
    }
    fields.update(overrides)
    return ModelConfig(**fields)
