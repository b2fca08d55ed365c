"""`w4s-jax bench`: every module in benchmarks/ (or a chosen few), JSON + markdown under output_dir.

Pick benchmarks with `--config.benchmarks=forward,train_step`; `--config.quick=True` is the CI smoke
run. Each benchmark measures whatever accelerator JAX finds, in its own process.
"""

import ml_collections

from w4s_jax.config import sections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.update(sections.bench_fields())
    config.update(sections.output_fields("runs/bench"))
    return config
