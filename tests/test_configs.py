"""Config files, hardware presets and `config_checks.validate`: every field documented, bad values named."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import ml_collections
import pytest
from conftest import requires_devices

from w4s_jax.config import config_checks, presets
from w4s_jax.config.fields import FIELD_DOCS, iter_leaves
from w4s_jax.config.loading import CONFIGS_DIR, config_arg, load_config_file
from w4s_jax.config_errors import ConfigError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted(path for path in CONFIGS_DIR.glob("*.py") if path.name != "__init__.py")
PAPER_BENCHMARKS = ("humaneval", "mbpp", "gsm8k", "gsm_hard", "math", "mgsm", "drop", "svamp", "gpqa", "hotpotqa")


def load(spec: str) -> ml_collections.ConfigDict:
    return load_config_file(CONFIGS_DIR / spec)


def undocumented(config: ml_collections.ConfigDict) -> list[str]:
    return [path for path, _ in iter_leaves(config) if not FIELD_DOCS.get(path)]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_every_config_file_loads_with_every_field_documented(path: pathlib.Path) -> None:
    config = load_config_file(path)
    assert isinstance(config, ml_collections.ConfigDict)
    assert undocumented(config) == []


def test_configs_readme_describes_every_config_file() -> None:
    readme = (CONFIGS_DIR / "README.md").read_text()
    missing = [p.name for p in CONFIG_FILES if f"`{p.name}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("benchmark", PAPER_BENCHMARKS)
def test_paper_config_has_the_papers_numbers(benchmark: str) -> None:
    config = load(f"paper.py:{benchmark}")
    assert undocumented(config) == []
    assert config.task.name == benchmark
    assert config.model.preset == "qwen2p5_coder_7b"
    assert config.meta_agent.kind == "jax"
    assert config.executor.model == "gpt-4o-mini"
    assert config.w4s.candidates_per_turn == 5
    assert config.sampling.temperature == 0.5
    assert config.w4s.turns_per_episode == 3
    assert config.w4s.max_iterations == 30
    assert config.rlao.tau == 0.4
    assert config.output_dir == f"runs/paper/{benchmark}"
    config_checks.check_task(config)  # a benchmark the tasks registry knows


def test_paper_config_takes_a_hardware_preset() -> None:
    config = load("paper.py:math,h100-2x8")
    assert (config.mesh.data, config.mesh.fsdp, config.mesh.tensor) == (2, 8, 1)
    assert config.model.dtype == "bfloat16" and config.model.remat == "full"
    assert config.train.micro_batch == presets.HARDWARE_PRESETS["h100-2x8"]["micro_batch"]["7b"]
    with pytest.raises(ConfigError, match="unknown"):
        load("paper.py:imagenet")
    with pytest.raises(ConfigError, match="does not fit gpu-1"):
        load("paper.py:math,gpu-1")


@pytest.mark.parametrize("subcommand_config", ["optimize.py", "collect.py", "train.py", "rlao.py"])
def test_paper_and_base_configs_serve_the_w4s_and_rlao_subcommands(subcommand_config: str) -> None:
    """`--config=configs/paper.py:X` must work for every subcommand of the W4S/RLAO pipeline."""
    needed = set(load(subcommand_config).keys())
    assert needed - set(load("paper.py:humaneval").keys()) == set()
    assert needed - set(load("base.py").keys()) == set()


@pytest.mark.parametrize("hardware", sorted(presets.HARDWARE_PRESETS))
def test_hardware_presets_are_consistent(hardware: str) -> None:
    preset = presets.HARDWARE_PRESETS[hardware]
    devices = preset["devices"] or 8  # cpu: whatever the host has (8 fake devices in tests)
    config = load(f"base.py:{hardware}")
    config_checks.check_mesh(config, num_devices=devices)
    data, fsdp, _ = (devices // (preset["fsdp"] * preset["tensor"]) if preset["data"] == -1 else preset["data"],
                     preset["fsdp"], preset["tensor"])
    assert preset["micro_batch"], "a machine that fits no model size is not a preset"
    for size, micro_batch in preset["micro_batch"].items():
        assert size in presets.MODEL_SIZES
        if preset["devices"]:
            assert micro_batch % (data * fsdp) == 0, f"{hardware}/{size}: micro-batch must split over data x fsdp"
        sized = load(f"base.py:{hardware},{size}")
        assert sized.model.preset == presets.MODEL_SIZES[size]["preset"]
        assert sized.train.micro_batch == micro_batch
        config_checks.check_model(sized)


def test_model_size_presets_name_real_model_presets() -> None:
    from w4s_jax.models.presets import PRESETS

    assert {size["preset"] for size in presets.MODEL_SIZES.values()} <= set(PRESETS)
    assert presets.MODEL_SIZES["7b"]["preset"] == "qwen2p5_coder_7b"


def test_unknown_hardware_or_size_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="hardware preset 'v9-8' is unknown"):
        load("base.py:v9-8")
    with pytest.raises(ConfigError, match="model size '3b' is unknown"):
        load("base.py:v5p-8,3b")
    with pytest.raises(ConfigError, match="hardware preset '' is unknown"):
        load("base.py:,7b")  # a size needs a machine
    with pytest.raises(ConfigError, match=r"config argument 'v5p-8,7b,x': expected at most 2 comma-separated values \(HARDWARE,SIZE\)"):
        load("train.py:v5p-8,7b,x")


def test_config_arg_names_the_parts_of_a_config_files_argument() -> None:
    assert config_arg("humaneval,h100-2x8", "benchmark", "hardware") == ("humaneval", "h100-2x8")
    assert config_arg("gsm8k", "benchmark", "hardware") == ("gsm8k", "")
    assert config_arg(None, "hardware", "size") == ("", "")
    assert load("paper.py").task.name == "humaneval"  # no argument: the file's own default


def test_config_defaults_are_the_typed_dataclasses_defaults() -> None:
    """Each default is written once, in the dataclass that consumes the section."""
    from w4s_jax.config.sections import full_run_config, learning_section
    from w4s_jax.config.typed import SECTION_CLASSES, section_settings
    from w4s_jax.rlao.settings import LoraConfig, OptimizerConfig

    config = full_run_config("runs/x")
    config.learning = learning_section()
    for name, settings_class in SECTION_CLASSES.items():
        assert section_settings(config, name) == settings_class(), name
    assert section_settings(config, "optimizer").schedule(7) == OptimizerConfig(total_steps=7)
    config.lora.enabled = True
    assert section_settings(config, "lora").adapters() == LoraConfig()


def test_loading_every_config_file_imports_no_accelerator_library() -> None:
    """A config error must show in a fraction of a second: defaults come from light modules."""
    names = [str(path) for path in CONFIG_FILES]
    program = (
        "import sys\nfrom w4s_jax.config.loading import load_config_file\n"
        f"for path in {names!r}:\n    load_config_file(path)\n"
        "print(sorted(m for m in ('jax', 'optax', 'orbax', 'grain', 'flax', 'torch') if m in sys.modules))"
    )
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "[]"


@pytest.fixture
def good_config(monkeypatch: pytest.MonkeyPatch) -> ml_collections.ConfigDict:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = load("base.py")
    config.mesh.data = -1
    return config


def test_the_base_config_validates(good_config: ml_collections.ConfigDict) -> None:
    config_checks.validate(good_config, num_devices=8)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("model.preset", "gpt5_1t", "model.preset: unknown preset 'gpt5_1t'"),
    ("model.dtype", "float8", "model.dtype: unknown dtype"),
    ("model.remat", "some", "model.remat: unknown policy"),
    ("mesh.fsdp", 3, "mesh: "),
    ("executor.budget_usd", -1.0, "executor.budget_usd: must be >= 0"),
    ("executor.max_concurrency", 0, "executor.max_concurrency: must be > 0"),
    ("executor.base_url", "api.openai.com/v1", "executor.base_url: 'api.openai.com/v1' is not an http(s) URL"),
    ("task.name", "imagenet", "task.name: unknown benchmark 'imagenet'"),
    ("task.val_limit", -5, "task.val_limit: must be >= 0"),
    ("sampling.temperature", -0.1, "sampling.temperature: must be >= 0"),
    ("sampling.top_p", 0.0, "sampling.top_p: must be in (0, 1]"),
    ("sandbox.sample_timeout_s", 0.0, "sandbox.sample_timeout_s: must be > 0"),
    ("output_dir", " ", "output_dir: is empty"),
    ("train.micro_batch", 6, "train.micro_batch: 6 rows do not split over data x fsdp = 8 devices"),
    ("train.seq_len", 0, "train.seq_len: must be > 0"),
    ("rlao.tau", 0.0, "rlao.tau: must be > 0"),
])
def test_bad_values_raise_a_config_error_naming_the_field(
    good_config: ml_collections.ConfigDict, field: str, value: object, message: str
) -> None:
    *parents, name = field.split(".")
    target = good_config
    for part in parents:
        target = target[part]
    target[name] = value
    with pytest.raises(ConfigError, match="fix: ") as error:
        config_checks.validate(good_config, num_devices=8)
    assert str(error.value).startswith(message)


def test_remote_executor_needs_its_api_key(good_config: ml_collections.ConfigDict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match=r"executor\.api_key_env: environment variable OPENAI_API_KEY is empty"):
        config_checks.validate(good_config, num_devices=8)
    good_config.executor.base_url = "http://127.0.0.1:8000/v1,http://localhost:8001/v1,http://[::1]:9/v1"
    config_checks.validate(good_config, num_devices=8)  # loopback endpoints need no key
    good_config.executor.base_url = "http://10.0.0.7:8000/v1"
    good_config.executor.api_key_env = ""  # an in-cluster endpoint without auth, said explicitly
    config_checks.validate(good_config, num_devices=8)


def test_validate_checks_only_the_sections_asked_for(good_config: ml_collections.ConfigDict,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    config_checks.validate(good_config, sections=("model", "mesh", "output_dir"), num_devices=8)
    with pytest.raises(ValueError, match="no config check named"):
        config_checks.validate(good_config, sections=("modle",))


@requires_devices(8)
def test_mesh_is_checked_against_the_visible_devices() -> None:
    """Without num_devices the check asks JAX: 8 fake CPU devices here (conftest)."""
    config = load("base.py:v5p-8")  # fsdp=4 x data=1 is 4 devices, not 8
    with pytest.raises(ConfigError, match="does not match the device count 8"):
        config_checks.check_mesh(config)


def test_cli_turns_a_bad_value_into_exit_2_naming_the_field(tmp_path: pathlib.Path) -> None:
    completed = subprocess.run([sys.executable, "-m", "w4s_jax.cli.main", "bench", "--config.output_dir="],
                               capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert completed.returncode == 2
    assert "configuration error: output_dir: is empty" in completed.stderr
