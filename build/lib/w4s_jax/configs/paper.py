"""The paper's setup (Nie et al. 2025): `--config=configs/paper.py:BENCHMARK[,HARDWARE]`.

Meta-agent Qwen2.5-Coder-7B-Instruct (`qwen2p5_coder_7b`, in-process JAX sampler) writing workflows
for GPT-4o-mini; m = 5 candidates per turn sampled at temperature 0.5, episodes of 3 turns, at most
30 iterations, RLAO weights exp(r / tau) with tau = 0.4. BENCHMARK is one of BENCHMARKS; HARDWARE a
`config.presets.HARDWARE_PRESETS` name (default v5p-8), e.g. `paper.py:humaneval,h100-2x8`.
Built on base.py, so it serves optimize, collect, train and rlao alike.
"""

import ml_collections
from w4s_jax.configs import base

from w4s_jax.config.loading import config_arg
from w4s_jax.config_errors import ConfigError

BENCHMARKS = ("humaneval", "mbpp", "gsm8k", "gsm_hard", "math", "mgsm", "drop", "svamp", "gpqa", "hotpotqa")
DEFAULT_HARDWARE = "v5p-8"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    benchmark, hardware = config_arg(arg, "benchmark", "hardware")
    benchmark = benchmark or "humaneval"
    if benchmark not in BENCHMARKS:
        raise ConfigError(f"paper benchmark {benchmark!r} is unknown; fix: use one of {BENCHMARKS}")
    config = base.get_config(f"{hardware or DEFAULT_HARDWARE},7b")
    config.output_dir = f"runs/paper/{benchmark}"

    config.task.name = benchmark
    config.executor.model = "gpt-4o-mini"
    config.meta_agent.kind = "jax"
    config.sampling.temperature = 0.5
    config.sampling.max_new_tokens = 2048
    config.w4s.candidates_per_turn = 5
    config.w4s.turns_per_episode = 3
    config.w4s.max_iterations = 30
    config.rlao.tau = 0.4
    return config
