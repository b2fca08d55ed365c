"""Config sections shared by the files in configs/, with a one-line doc for every field.

Config files stay data: each `configs/<name>.py` composes the sections below in `get_config()` and
overrides values. `FIELD_DOCS` documents every leaf by its dotted path; `tests/test_configs.py`
checks that no config in configs/ has an undocumented field. A field whose doc starts with "map:"
is a free-form mapping whose keys are not documented one by one.
"""

from __future__ import annotations

import importlib.util
import pathlib
from collections.abc import Iterator

import ml_collections


class ConfigError(ValueError):
    """A config value or combination that cannot work; the message names the field and the fix."""


FIELD_DOCS: dict[str, str] = {}


def section(prefix: str, **fields: tuple[object, str]) -> ml_collections.ConfigDict:
    """Builds one config section from `name=(default, one-line doc)` pairs and records the docs."""
    values = {}
    for name, (value, doc) in fields.items():
        FIELD_DOCS[f"{prefix}.{name}" if prefix else name] = doc
        values[name] = value
    return ml_collections.ConfigDict(values)


def model_section() -> ml_collections.ConfigDict:
    return section(
        "model",
        preset=("smollm2_135m", "named model preset (w4s_jax.models.presets), e.g. qwen2p5_coder_7b"),
        path=("", "weights: a Hugging Face safetensors directory or a .gguf file; '' = random init"),
        dtype=("float32", "compute dtype: float32 (CPU tests) or bfloat16 (accelerators)"),
        param_dtype=("float32", "parameter (master weight) dtype"),
        scan_layers=(True, "scan the decoder layers (compile time independent of depth)"),
        remat=("none", "rematerialisation policy: none, full, dots_saveable, dots_with_no_batch_dims_saveable"),
    )


def mesh_section() -> ml_collections.ConfigDict:
    return section(
        "mesh",
        data=(-1, "data-parallel mesh axis size; -1 = all devices left over"),
        fsdp=(1, "fully sharded data-parallel axis size (parameters sharded); -1 = the rest"),
        tensor=(1, "tensor-parallel axis size (heads and MLP sharded); -1 = the rest"),
    )


def sampling_section() -> ml_collections.ConfigDict:
    return section(
        "sampling",
        max_new_tokens=(512, "maximum tokens generated per reply"),
        temperature=(0.5, "sampling temperature; 0 = greedy"),
        top_p=(1.0, "nucleus sampling threshold (1.0 = off)"),
        top_k=(0, "top-k sampling (0 = off)"),
        seed=(0, "sampling seed (reproducible for a given seed)"),
        max_prompt_len=(4096, "longest prompt in tokens; longer prompts are rejected"),
    )


def executor_section() -> ml_collections.ConfigDict:
    return section(
        "executor",
        base_url=("https://api.openai.com/v1", "OpenAI-compatible endpoint(s) of the strong executor, comma-separated to spread load"),
        model=("gpt-4o-mini", "executor model name sent to the endpoint"),
        api_key_env=("OPENAI_API_KEY", "environment variable holding the executor's API key"),
        max_concurrency=(64, "in-flight calls per endpoint"),
        timeout_s=(60.0, "per-call timeout in seconds"),
        max_retries=(6, "retries on 429, 5xx, timeouts and dropped connections"),
        max_tokens=(2048, "max completion tokens per executor call"),
        cache_path=("", "SQLite cache of executor calls; '' = <output_dir>/executor_cache.sqlite"),
        budget_usd=(5.0, "hard budget in dollars; calls that would exceed it are refused"),
        prices=(
            ml_collections.ConfigDict(
                {
                    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
                    "gpt-4o": {"input": 2.50, "output": 10.00},
                    "gpt-3.5-turbo": {"input": 0.50, "output": 1.50},
                }
            ),
            "map: model -> {input, output} dollars per million tokens",
        ),
    )


def sandbox_section() -> ml_collections.ConfigDict:
    return section(
        "sandbox",
        sample_timeout_s=(120.0, "wall-clock limit per sample, seconds"),
        workflow_timeout_s=(1800.0, "wall-clock limit for one workflow over all its samples, seconds"),
        cpu_seconds=(60, "CPU-time limit per worker process, seconds"),
        memory_mb=(1024, "address-space limit per worker process, MiB"),
        max_file_mb=(16, "largest file a worker may write, MiB"),
        max_open_files=(64, "open file descriptors per worker"),
        max_output_bytes=(1_000_000, "largest answer or captured stdout per sample, bytes"),
        execute_code_timeout_s=(10.0, "wall-clock limit for one execute_code() call, seconds"),
        workers=(16, "sandbox worker processes per workflow (samples run concurrently)"),
    )


def task_section() -> ml_collections.ConfigDict:
    return section(
        "task",
        name=("gsm8k", "benchmark name (w4s_jax.tasks registry)"),
        data_dir=("../shared/data", "directory laid out like shared/data (one folder per benchmark)"),
        val_limit=(0, "use only the first N validation samples (0 = all)"),
        test_limit=(0, "use only the first N test samples (0 = all)"),
        seed=(0, "seed for splits of single-file benchmarks and option shuffling"),
    )


def load_config_file(path: str | pathlib.Path) -> ml_collections.ConfigDict:
    """Loads `get_config()` from a config file, with a clear error naming the file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    spec = importlib.util.spec_from_file_location(f"w4s_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: defines no get_config()")
    return module.get_config()


def iter_leaves(config: ml_collections.ConfigDict, prefix: str = "") -> Iterator[tuple[str, object]]:
    """Yields (dotted path, value) for every leaf, stopping at documented maps."""
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, ml_collections.ConfigDict) and not FIELD_DOCS.get(path, "").startswith("map:"):
            yield from iter_leaves(value, path)
        else:
            yield path, value


def describe_fields(config: ml_collections.ConfigDict) -> str:
    """One line per field: path, default and doc (what `--help` prints)."""
    lines = []
    for path, value in iter_leaves(config):
        doc = FIELD_DOCS.get(path, "(undocumented)")
        shown = repr(value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value)
        lines.append(f"  --config.{path}={shown}\n      {doc}")
    return "\n".join(lines)
