"""Builds the meta-agent `Policy` named by `config.meta_agent.kind`.

'openai' needs nothing but HTTP; 'jax' loads the model and tokenizer (model.preset + model.path) into
an in-process sampler on the configured mesh, so JAX is only imported when it is used.
"""

from __future__ import annotations

from typing import Any

from w4s_jax.executor.accounting import Ledger
from w4s_jax.w4s.policy import OpenAIPolicy, Policy, SamplerPolicy


def policy_from_config(config: Any, ledger: Ledger | None = None) -> Policy:
    """`ledger`: the command's budget, which an API meta-agent spends from (the in-process one costs nothing)."""
    if config.meta_agent.kind == "openai":
        return OpenAIPolicy.from_config(config.meta_agent, ledger)
    from w4s_jax.models import model_from_config
    from w4s_jax.parallel.mesh import mesh_from_config
    from w4s_jax.sampling.chat import ChatTokenizer
    from w4s_jax.sampling.sampler import Sampler

    mesh = mesh_from_config(config.mesh)
    _, model = model_from_config(config.model, mesh)
    tokenizer = ChatTokenizer.from_path(config.model.path)
    sampler = Sampler(model, tokenizer, mesh, max_prompt_len=config.sampling.max_prompt_len)
    return SamplerPolicy(sampler, top_p=config.sampling.top_p, top_k=config.sampling.top_k)
