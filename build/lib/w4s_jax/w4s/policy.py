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
import os
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp

from w4s_jax import crash_points
from w4s_jax.executor.accounting import Ledger, estimate_prompt_tokens_upper_bound, reply_tokens

Conversation = list[dict[str, str]]
LOG = logging.getLogger("w4s_jax.w4s")
ROLE = "meta-agent"  # the role an API meta-agent's spending is reported under


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


def per_conversation_seeds(count: int, seed: int | Sequence[int]) -> list[int]:
    if isinstance(seed, int):
        return [seed] * count
    seeds = list(seed)
    if len(seeds) != count:
        raise ValueError(f"got {len(seeds)} seeds for {count} conversations; pass one int or one per conversation")
    return seeds


class OpenAIPolicy:
    """Chat completions over HTTP, one request per conversation, at most `max_concurrency` in flight."""

    process_index = 0
    process_count = 1

    def __init__(self, base_url: str, model: str, *, api_key: str = "", timeout_s: float = 600.0,
                 max_concurrency: int = 16, max_retries: int = 3, ledger: Ledger | None = None) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.semaphore = asyncio.Semaphore(max_concurrency)
        self.max_retries = max_retries
        self.too_long = 0
        self.usage = TokenUsage()
        # The command's budget (w4s.budget.command_ledger, which the executor client shares): an API
        # meta-agent spends from it like the executor, under role "meta-agent", priced from
        # executor.prices. None: its calls are counted in `usage` but not priced.
        self.ledger = ledger

    @classmethod
    def from_config(cls, meta_agent_cfg: Any, ledger: Ledger | None = None) -> OpenAIPolicy:
        key = os.environ.get(meta_agent_cfg.api_key_env, "") if meta_agent_cfg.api_key_env else ""
        return cls(meta_agent_cfg.base_url, meta_agent_cfg.model, api_key=key, timeout_s=meta_agent_cfg.timeout_s,
                   max_concurrency=meta_agent_cfg.max_concurrency, ledger=ledger)

    async def _one(self, session: aiohttp.ClientSession, conversation: Conversation, n: int,
                   temperature: float, max_new_tokens: int, seed: int) -> list[str]:
        """One conversation's replies, with retries; spends from `ledger` when one is set (reserve
        the worst case before sending, settle to the endpoint's reported usage)."""
        body = {"model": self.model, "messages": conversation, "n": n, "temperature": temperature,
                "max_tokens": max_new_tokens, "seed": seed}
        prompt_bound = estimate_prompt_tokens_upper_bound(conversation)
        reservation = self.ledger.reserve(self.model, ROLE, prompt_bound, max_new_tokens * n) if self.ledger else 0.0
        last, maybe_billed = "", False
        try:
            for attempt in range(self.max_retries + 1):
                if attempt:
                    await asyncio.sleep(min(8.0, 0.5 * 2**attempt))
                try:
                    async with self.semaphore, session.post(self.url, json=body, headers=self.headers) as response:
                        text = await response.text()
                        if response.status == 200:
                            reply = await response.json(content_type=None)
                            texts = [choice["message"]["content"] or "" for choice in reply["choices"]]
                            self._settle(reservation, reply.get("usage") or {}, prompt_bound, texts)
                            return texts
                        last = f"HTTP {response.status}: {text[:300]}"
                        if response.status == 400 and "context_length_exceeded" in text:
                            # As with the in-process sampler: an empty reply (an invalid action) for a
                            # prompt the model cannot read, instead of failing the whole run.
                            self.too_long += 1
                            LOG.warning("meta-agent prompt too long for %s: %s", self.url, text[:200])
                            self._release(reservation)
                            return [""] * n
                        if response.status < 500 and response.status != 429:
                            break
                except (TimeoutError, aiohttp.ClientError) as error:
                    last, maybe_billed = f"{type(error).__name__}: {error}", True
        except BaseException:
            self._release(reservation)
            raise
        if self.ledger:
            self.ledger.close_unanswered(self.model, ROLE, reservation, prompt_bound, max_new_tokens * n, maybe_billed)
        raise PolicyError(f"meta-agent endpoint {self.url} (model {self.model!r}) failed: {last}")

    def _settle(self, reservation: float, usage: dict, prompt_bound: int, texts: list[str]) -> None:
        """Counts a reply's tokens (the endpoint's usage; else upper bounds) and settles its cost."""
        prompt_tokens, completion_tokens = reply_tokens(usage, prompt_bound, texts)
        self.usage.replies += len(texts)
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        if self.ledger:
            self.ledger.settle(self.model, ROLE, reservation, prompt_tokens, completion_tokens, len(texts))

    def _release(self, reservation: float) -> None:
        if self.ledger:
            self.ledger.release(reservation)

    async def finish(self) -> None:
        """Nothing to do: an endpoint serves each process on its own."""

    async def generate(self, conversations: Sequence[Conversation], *, n: int = 1, temperature: float,
                       max_new_tokens: int, seed: int | Sequence[int]) -> list[list[str]]:
        seeds = per_conversation_seeds(len(conversations), seed)
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            return list(await asyncio.gather(*[
                self._one(session, conversation, n, temperature, max_new_tokens, one_seed)
                for conversation, one_seed in zip(conversations, seeds)
            ]))


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
