"""XLA:CPU settings this project measured faster; applied when `w4s_jax` is imported.

jaxlib 0.10's XLA:CPU hands dots, reductions and elementwise ops to YNNPACK fusions by default. Its
dots are fast (on par with or ahead of PyTorch's CPU matmul), but its reductions are not: in the RLAO
train step the RMSNorm scale gradients and the loss's softmax sums took 10 to 35 ms per call where
XLA's own loops take a few, about a tenth of the step (profile in the model notes of issue 14).
Keeping YNNPACK for dots only removes that. The flag is read when JAX creates its CPU backend, so it
must be in XLA_FLAGS before the first computation; a value the user already put there wins. Only the
CPU backend reads it: TPU and GPU runs are unaffected. Numerics: the Hugging Face parity tests pass
unchanged with it.

Decode programs compile with YNNPACK's individual dots instead (`decode_compiler_options`, passed per
program by the sampler). With LIBRARY_FUSION_TYPE_DOT, YNNPACK takes each MLP's gate dot, SiLU, the
multiply by the up projection and the down dot as one fused graph: good for the thousands of rows of
a forward or a train step, slower for the 16 rows of a decode step. Measured on a 2-core AMD EPYC
(Zen 4, AVX-512; 208 GFLOP/s fp32 matmul peak), same sampler and weights, the process flag on
LIBRARY_FUSION_TYPE_DOT throughout (docs/results/cpu_ratios.md): batch-16 decode 112.6 to 118.3 ms
per step with individual dots over 122.3 to 131.6 ms fused (8 to 11% faster, 5 runs each; the machine
was loaded, load average 4 to 7); batch 1 equal (42.6 vs 42.6 ms), batch 64 2% faster. The same
choice for the whole process would cost the train step 4 to 14% and the forward about 2%, so it is
made per program. The dot kernels themselves follow the machine already: YNNPACK picks them by the
CPU's features and a cost model per microarchitecture, so nothing here reads the CPU's flags.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

YNN_FUSION_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
YNN_DOTS_ONLY = f"{YNN_FUSION_FLAG}=LIBRARY_FUSION_TYPE_DOT"
YNN_INDIVIDUAL_DOTS = "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"


def apply_cpu_flags(environ: MutableMapping[str, str] = os.environ) -> None:
    """Appends the project's XLA:CPU flags to XLA_FLAGS unless it already sets them."""
    flags = environ.get("XLA_FLAGS", "")
    if YNN_FUSION_FLAG not in flags:
        environ["XLA_FLAGS"] = f"{flags} {YNN_DOTS_ONLY}".strip()


def decode_compiler_options(platform: str, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Per-program XLA options for a decode step on `platform`: YNNPACK's individual dots on CPU (see
    the module doc); none on other back ends (they may reject a CPU option) or where the user's
    XLA_FLAGS chose the YNNPACK fusions (a value other than the one `apply_cpu_flags` appends)."""
    if platform != "cpu" or YNN_FUSION_FLAG in environ.get("XLA_FLAGS", "").replace(YNN_DOTS_ONLY, ""):
        return {}
    return {YNN_FUSION_FLAG.removeprefix("--"): YNN_INDIVIDUAL_DOTS}
