"""XLA:CPU settings this project measured faster; applied when `w4s_jax` is imported.

jaxlib 0.10's XLA:CPU hands dots, reductions and elementwise ops to YNNPACK fusions by default. Its
dots are fast (on par with or ahead of PyTorch's CPU matmul), but its reductions are not: in the RLAO
train step the RMSNorm scale gradients and the loss's softmax sums took 10 to 35 ms per call where
XLA's own loops take a few, about a tenth of the step (profile in the model notes of issue 14).
Keeping YNNPACK for dots only removes that. The flag is read when JAX creates its CPU backend, so it
must be in XLA_FLAGS before the first computation; a value the user already put there wins. Only the
CPU backend reads it: TPU and GPU runs are unaffected. Numerics: the Hugging Face parity tests pass
unchanged with it.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

YNN_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
YNN_DOTS_ONLY = f"{YNN_FUSION_FLAG}=LIBRARY_FUSION_TYPE_DOT"


def apply_cpu_flags(environ: MutableMapping[str, str] = os.environ) -> None:
    """Appends the project's XLA:CPU flags to XLA_FLAGS unless it already sets them."""
    flags = environ.get("XLA_FLAGS", "")
    if YNN_FUSION_FLAG not in flags:
        environ["XLA_FLAGS"] = f"{flags} {YNN_DOTS_ONLY}".strip()
