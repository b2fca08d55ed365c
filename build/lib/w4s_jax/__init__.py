"""w4s-jax: Weak-for-Strong harnessing with a JAX/Flax NNX meta-agent trained by RLAO."""

from w4s_jax.cpu_backend import apply_cpu_flags

apply_cpu_flags()

__version__ = "0.1.0"
