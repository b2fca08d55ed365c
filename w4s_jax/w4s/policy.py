"""The meta-agent as a `Policy`: a batch of chat conversations in, sampled replies out.

Two implementations: `OpenAIPolicy` for any OpenAI-compatible endpoint (vLLM, SGLang, the project's
own `w4s-jax serve`) and `SamplerPolicy` for the in-process JAX sampler. `seed` may be one int per
conversation: the loop seeds every sample by (rollout, episode, turn, candidate, repair), so a sample
does not depend on which other requests shared its batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pathlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from w4s_jax import crash_points
from w4s_jax.executor.accounting import Ledger
from w4s_jax.executor.client import ExecutorClient, PromptTooLong, Sampling, endpoint_api_key
from w4s_jax.executor.errors import BudgetExceeded, ExecutorError
from w4s_jax.executor.retry import BackoffPolicy

if TYPE_CHECKING:
    from w4s_jax.executor.settings import ExecutorSettings
    from w4s_jax.sampling.settings import SamplingSettings
    from w4s_jax.w4s.settings import MetaAgentSettings

Conversation = list[dict[str, str]]
LOG = logging.getLogger("w4s_jax.w4s")
ROLE = "meta-agent"  # the role an API meta-agent's spending is reported under
CACHE_FILE = "meta_agent_cache.sqlite"  # an API meta-agent's replies, in the run's output_dir


class PolicyError(RuntimeError):
    """The meta-agent could not produce a reply (endpoint down, bad status after retries)."""


@dataclasses.dataclass
class TokenUsage:
    """The meta-agent's tokens: prompts read and completions written, over all its replies."""

    replies: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Policy(Protocol):
    """`process_index` / `process_count`: which share of the rollouts this process runs (several
    only for the in-process sampler on several hosts); `usage`: tokens generated and read so far."""

    process_index: int
    process_count: int
    usage: TokenUsage

    async def generate(self, conversations: Sequence[Conversation], *, n: int = 1, temperature: float,
                       max_new_tokens: int, seed: int | Sequence[int]) -> list[list[str]]:
        """`n` replies per conversation; `seed` is one int for all or one per conversation."""
        ...

    async def finish(self) -> None:
        """Called once this process's rollouts have all ended (on several hosts: serves the others'
        generation rounds until every host is done)."""
        ...

    async def aclose(self) -> None:
        """Releases what this process holds open in the run's event loop (on any exit, error included)."""
        ...


def per_conversation_seeds(count: int, seed: int | Sequence[int]) -> list[int]:
    if isinstance(seed, int):
        return [seed] * count
    seeds = list(seed)
    if len(seeds) != count:
        raise ValueError(f"got {len(seeds)} seeds for {count} conversations; pass one int or one per conversation")
    return seeds


class OpenAIPolicy:
    """The meta-agent behind an OpenAI-compatible endpoint: one seeded request per conversation, sent
    by an `ExecutorClient` with role "meta-agent", so it has the executor's cache, retries, backoff,
    concurrency cap and budget, and its spending shows under that role in the client's ledger (the
    command's, when one is given). A reply from the cache (a rerun with the same output_dir) costs
    nothing and is not counted in `usage`, which holds what the endpoint answered in this process."""

    process_index = 0
    process_count = 1

    def __init__(self, client: ExecutorClient, *, top_p: float = 1.0, top_k: int = 0) -> None:
        self.client = client
        self.top_p = top_p
        self.top_k = top_k
        self.too_long = 0
        self.usage = TokenUsage()

    @classmethod
    def from_settings(cls, meta_agent: MetaAgentSettings, executor: ExecutorSettings, sampling: SamplingSettings,
                      output_dir: str | pathlib.Path, ledger: Ledger | None = None) -> OpenAIPolicy:
        """The endpoint of `meta_agent`, with the executor's retries, backoff and transport. `ledger`:
        the command's budget, spent from under role "meta-agent"; None gives the client its own ledger
        from executor.prices and executor.budget_usd. Replies are cached in `output_dir`. As for the
        executor, api.openai.com needs an API key and a price for the model."""
        prices = ledger.prices if ledger is not None else executor.prices
        api_key = endpoint_api_key(meta_agent.api_key_env, [meta_agent.base_url], meta_agent.model, prices,
                                   section="meta_agent", model_noun="the meta-agent model")
        client = ExecutorClient(
            base_urls=[meta_agent.base_url],
            model=meta_agent.model,
            role=ROLE,
            api_key=api_key,
            max_concurrency=meta_agent.max_concurrency,
            timeout_s=meta_agent.timeout_s,
            max_tokens=sampling.max_new_tokens,
            cache_path=pathlib.Path(output_dir) / CACHE_FILE,
            budget_usd=executor.budget_usd,
            prices=executor.prices,
            backoff=BackoffPolicy(executor.max_retries, executor.backoff_base_s, executor.backoff_max_s),
            transport=executor.transport,
            ledger=ledger,
        )
        return cls(client, top_p=sampling.top_p, top_k=sampling.top_k)

    async def generate(self, conversations: Sequence[Conversation], *, n: int = 1, temperature: float,
                       max_new_tokens: int, seed: int | Sequence[int]) -> list[list[str]]:
        seeds = per_conversation_seeds(len(conversations), seed)
        if max_new_tokens > self.client.max_tokens:
            raise ValueError(f"max_new_tokens={max_new_tokens} is above the meta-agent client's max_tokens="
                             f"{self.client.max_tokens} (sampling.max_new_tokens); the replies would be cut short")
        return list(await asyncio.gather(*[
            self._one(conversation, n, temperature, max_new_tokens, one_seed)
            for conversation, one_seed in zip(conversations, seeds)
        ]))

    async def _one(self, conversation: Conversation, n: int, temperature: float, max_new_tokens: int,
                   seed: int) -> list[str]:
        sampling = Sampling(seed=seed, top_p=self.top_p, top_k=self.top_k)
        try:
            completion = await self.client.sample(conversation, sampling=sampling, n=n, temperature=temperature,
                                                  max_tokens=max_new_tokens)
        except PromptTooLong as error:
            # As with the in-process sampler: an empty reply (an invalid action) for a prompt the model
            # cannot read, instead of failing the whole run.
            self.too_long += 1
            LOG.warning("meta-agent prompt too long for %s: %s", error.endpoint, error.last_status)
            return [""] * n
        except BudgetExceeded:
            raise
        except ExecutorError as error:
            raise PolicyError(f"meta-agent endpoint {error.endpoint or self.client.base_urls[0]} (model "
                              f"{self.client.model!r}) failed after {error.attempts} attempt(s): "
                              f"{error.last_status}") from error
        self.usage.replies += completion.answered
        self.usage.prompt_tokens += completion.prompt_tokens
        self.usage.completion_tokens += completion.completion_tokens
        return completion.texts

    async def finish(self) -> None:
        """Nothing to do: an endpoint serves each process on its own (the runner's `aclose` closes the client)."""

    async def aclose(self) -> None:
        """Closes the client's HTTP sessions in this event loop and its cache (both reopen if used again)."""
        await self.client.aclose()


class SamplerPolicy:
    """The in-process JAX sampler (`w4s_jax.sampling.Sampler`) behind the Policy seam.

    Each conversation is its own sampler request with its own seed (the sampler keys its random
    stream by seed, prompt and sample index), so a reply does not depend on its batch-mates, and all
    of them still run in shared compiled calls. Generation runs in a worker thread so that evaluations
    keep running meanwhile.

    On several hosts (multi-controller JAX) each host runs its own share of the rollouts, and
    generation is a collective round: a host enters one with its batch (or, once its rollouts have
    ended, with nothing), the hosts' requests are gathered into one global batch in host order, every
    host runs the sampler on that same batch (same programs, same collectives) and keeps its own
    slice of the replies. A host enters a round only when its batcher flushes or it is done, so a
    host busy evaluating delays the round but cannot deadlock it; rounds need not line up with turns,
    as replies are seeded per request. `finish` keeps a done host joining rounds until all are done.
    """

    def __init__(self, sampler: Any, *, top_p: float = 1.0, top_k: int = 0) -> None:
        import jax

        self.sampler = sampler
        self.top_p = top_p
        self.top_k = top_k
        self.too_long = 0
        self.usage = TokenUsage()
        self.rounds = 0  # collective generation rounds joined (several hosts only)
        self.process_index = jax.process_index()
        self.process_count = jax.process_count()

    def prompt_limit(self, max_new_tokens: int) -> int:
        return min(self.sampler.max_prompt_len, self.sampler.config.max_positions - max_new_tokens)

    async def generate(self, conversations: Sequence[Conversation], *, n: int = 1, temperature: float,
                       max_new_tokens: int, seed: int | Sequence[int]) -> list[list[str]]:
        seeds = per_conversation_seeds(len(conversations), seed)
        prompts = [self.sampler.tokenizer.encode_chat(conversation) for conversation in conversations]
        limit = self.prompt_limit(max_new_tokens)
        fits = [index for index, prompt in enumerate(prompts) if len(prompt) <= limit]
        if len(fits) < len(prompts):
            # The model cannot read these: they get empty replies, which the loop records as invalid
            # actions ("empty reply"), instead of one long prompt failing the whole batch and run.
            self.too_long += len(prompts) - len(fits)
            LOG.warning("%d of %d meta-agent prompts exceed %d tokens and get empty replies",
                        len(prompts) - len(fits), len(prompts), limit)
        entries = [{"prompt": [int(t) for t in prompts[index]], "n": n, "temperature": temperature,
                    "max_new_tokens": max_new_tokens, "seed": seeds[index] % 2**31} for index in fits]
        if self.process_count == 1:
            results = await asyncio.to_thread(self._sample, entries) if entries else []
        else:
            results, _ = await asyncio.to_thread(self._round, entries, False)
        crash_points.reached("generation")  # sampled, not yet journaled
        replies = [[""] * n for _ in prompts]
        for index, result in zip(fits, results):
            replies[index] = [completion.text for completion in result[0]]
            self.usage.replies += n
            self.usage.prompt_tokens += len(prompts[index]) * n
            self.usage.completion_tokens += sum(len(completion.token_ids) for completion in result[0])
        return replies

    async def aclose(self) -> None:
        """Nothing to release: the sampler holds no connections."""

    async def finish(self) -> None:
        """On several hosts: joins empty rounds (running the others' batches) until every host is done."""
        done = self.process_count == 1
        while not done:
            _, done = await asyncio.to_thread(self._round, [], True)

    def _sample(self, entries: list[dict]) -> list:
        from w4s_jax.sampling.params import SamplingParams

        return self.sampler.generate_requests([
            ([entry["prompt"]], SamplingParams(max_new_tokens=entry["max_new_tokens"], temperature=entry["temperature"],
                                               top_p=self.top_p, top_k=self.top_k, n=entry["n"], seed=entry["seed"]))
            for entry in entries
        ])

    def _round(self, entries: list[dict], done: bool) -> tuple[list, bool]:
        """One collective round (see class doc): (this host's results, whether every host is done)."""
        from w4s_jax.parallel.distributed import allgather_json

        hosts = allgather_json({"entries": entries, "done": done})
        self.rounds += 1
        everyone = [entry for host in hosts for entry in host["entries"]]
        results = self._sample(everyone) if everyone else []
        offset = sum(len(host["entries"]) for host in hosts[: self.process_index])
        return results[offset: offset + len(entries)], all(host["done"] for host in hosts)
