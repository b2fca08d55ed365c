"""w4s-jax: Weak-for-Strong harnessing with a JAX/Flax NNX meta-agent trained by RLAO."""

__version__ = "0.1.0"
