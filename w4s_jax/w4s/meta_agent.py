"""The meta-agent a command samples from, built in one place for every command.

'openai' is an endpoint behind an `ExecutorClient` with role "meta-agent" (the command's ledger, the
executor's retries and backoff); 'jax' loads model.preset / model.path with its tokenizer
(`train.tokenizer` where the command trains: '' = beside the weights) into an in-process sampler on
the configured mesh, whose parameters a trainer in the same process may start from. JAX is imported
only when it is used.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

from w4s_jax.executor.accounting import Ledger
from w4s_jax.w4s.policy import OpenAIPolicy, Policy
from w4s_jax.w4s.settings import RunSettings


@dataclasses.dataclass(frozen=True)
class InProcessMetaAgent:
    """The meta-agent that one process both samples from and trains. The sampler holds the one copy of
    its parameters (`Sampler.source_params` gives them in the trainer's layout)."""

    mesh: Any  # jax.sharding.Mesh
    model_config: Any  # models.ModelConfig
    tokenizer: Any  # rlao.examples.TrainingTokenizer
    sampler: Any  # sampling.sampler.Sampler
    policy: Any  # w4s.policy.SamplerPolicy over `sampler`


def in_process_meta_agent(settings: RunSettings, *, tokenizer: str = "", seed: int = 0) -> InProcessMetaAgent:
    """Loads model.preset / model.path on the configured mesh with its tokenizer, sampler and policy.
    `tokenizer`: train.tokenizer of a command that trains ('' = beside the weights); `seed`: of a
    random initialisation (model.path '')."""
    from flax import nnx

    from w4s_jax.models import abstract_model
    from w4s_jax.parallel.mesh import mesh_from_settings
    from w4s_jax.rlao.loading import load_meta_agent, load_tokenizer
    from w4s_jax.sampling.sampler import Sampler
    from w4s_jax.w4s.policy import SamplerPolicy

    mesh = mesh_from_settings(settings.mesh)
    chat_tokenizer = load_tokenizer(tokenizer, settings.model)
    model_config, params = load_meta_agent(settings.model, mesh, seed)
    graphdef, _ = abstract_model(model_config)
    sampler = Sampler(nnx.merge(graphdef, params), chat_tokenizer, mesh,
                      max_prompt_len=settings.sampling.max_prompt_len, max_batch=settings.sampling.max_batch)
    del params  # the sampler's copy is the one kept
    policy = SamplerPolicy(sampler, top_p=settings.sampling.top_p, top_k=settings.sampling.top_k)
    return InProcessMetaAgent(mesh, model_config, chat_tokenizer, sampler, policy)


def meta_agent_policy(settings: RunSettings, output_dir: str | pathlib.Path, ledger: Ledger | None = None) -> Policy:
    """The policy `meta_agent.kind` names. `ledger`: the command's budget, which an API meta-agent
    spends from (the in-process one costs nothing); its cache lives in `output_dir`."""
    if settings.meta_agent.kind == "openai":
        return OpenAIPolicy.from_settings(settings.meta_agent, settings.executor, settings.sampling, output_dir, ledger)
    return in_process_meta_agent(settings).policy
