"""The async executor client: the `agent.call_llm` / `agent.call_json_format_llm` calls of a workflow.

One client per run. Any OpenAI-compatible endpoint works (OpenAI, vLLM, SGLang, llama.cpp's server,
`w4s-jax serve`, the StandInEndpoint), over the official `openai` SDK or a lean aiohttp transport
(transport.py). Several base URLs for one model spread load by least-in-flight, under a cap per
endpoint and a global cap. Every request is cached (SQLite, per sample index), budgeted (reserve the
worst case, settle to the real cost), retried (backoff + jitter, Retry-After) and counted per model
and role, and per scope (one workflow sample); the time awaiting the endpoint goes on the run's
`PhaseClock` (executor wait). Models missing from the price table cost nothing (a local server); for
api.openai.com a price is required. An API meta-agent is one more such client (role "meta-agent", the
run's ledger) whose calls are seeded (`sample`: seed, top_p, top_k in the request and the cache key).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import pathlib
import random
from collections.abc import Mapping, Sequence

from w4s_jax import crash_points
from w4s_jax.config_errors import ConfigError
from w4s_jax.executor.accounting import Ledger, ModelUsage, estimate_prompt_tokens_upper_bound, reply_tokens
from w4s_jax.executor.cache import ResponseCache, request_key
from w4s_jax.executor.errors import ExecutorError
from w4s_jax.executor.prompts import json_messages, parse_json_reply, text_messages, validate_messages
from w4s_jax.executor.retry import BackoffPolicy
from w4s_jax.executor.settings import ExecutorSettings
from w4s_jax.executor.transport import (
    TRANSPORTS,
    AiohttpTransport,
    Failure,
    OpenAITransport,
    classify,
    make_transport,
    parse_completion,
)
from w4s_jax.phase_clock import EXECUTOR_WAIT, PhaseClock

MAX_RESPONSES = 128  # num_of_response of one call; the sandbox's own cap (sandbox.max_responses) is lower


class PromptTooLong(ExecutorError):
    """The endpoint refused the prompt as longer than the model's context (HTTP 400
    context_length_exceeded); not retried, its reservation released, counted as a failed call."""


class _FinalError(ExecutorError):
    """Internal: an ExecutorError whose reservation is already settled or released."""

    def __init__(self, message: str, *, too_long: bool, **details: object) -> None:
        super().__init__(message, **details)
        self.too_long = too_long


@dataclasses.dataclass(frozen=True)
class Sampling:
    """What a seeded call adds to a chat completion (`ExecutorClient.sample`). `seed` names the
    call's samples: sample i is sent with seed + i (one n-request: `seed`), and the same messages
    with the same seed get the same replies from the cache. top_p 1.0 and top_k 0 are off; top_k 0 is
    left out of the request (OpenAI's API refuses the field, older vLLM the value 0)."""

    seed: int
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {str(self.seed)[:40]!r}")
        if isinstance(self.top_p, bool) or not isinstance(self.top_p, int | float) or not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be a number in (0, 1], got {str(self.top_p)[:40]!r}")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an int >= 0 (0 = off), got {str(self.top_k)[:40]!r}")

    def key(self) -> dict[str, object]:
        """The cache key's share: every field, so two seeds never share a reply."""
        return {"seed": self.seed, "top_p": float(self.top_p), "top_k": self.top_k}

    def fields(self, first_index: int) -> dict[str, object]:
        """The request body's fields for the samples from `first_index` on."""
        body: dict[str, object] = {"seed": self.seed + first_index, "top_p": float(self.top_p)}
        if self.top_k:
            body["top_k"] = self.top_k
        return body


@dataclasses.dataclass(frozen=True)
class Completion:
    """A call's reply texts, and the endpoint's share of them: `answered` replies sent by the endpoint
    for this call (the rest came from the cache, at no cost) and their tokens (the endpoint's usage,
    else upper bounds)."""

    texts: list[str]
    answered: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


def endpoint_api_key(api_key_env: str, urls: list[str], model: str, prices: Mapping[str, object], *,
                     section: str, model_noun: str = "model") -> str:
    """The API key named by `<section>.api_key_env` ('EMPTY' for a local server without one). For
    api.openai.com the key must be set and `model` priced, so the budget bounds the spending."""
    api_key = os.environ.get(api_key_env, "") if api_key_env else ""
    if not any("api.openai.com" in url for url in urls):
        return api_key or "EMPTY"
    if not api_key:
        raise ConfigError(f"{section}.api_key_env: environment variable {api_key_env!r} is not set; export the "
                          f"API key or point {section}.base_url at a local server")
    if model not in prices:
        raise ConfigError(f"executor.prices: no price for {model_noun} {model!r}, so the budget could not bound its "
                          f"spending; add executor.prices.{model} = {{input, output}} (dollars per million tokens)")
    return api_key


@dataclasses.dataclass
class _Endpoint:
    """One base URL inside one event loop: its transport, its concurrency cap, its load."""

    url: str
    transport: OpenAITransport | AiohttpTransport
    semaphore: asyncio.Semaphore
    in_flight: int = 0


@dataclasses.dataclass
class _LoopState:
    """asyncio primitives and HTTP clients are bound to one event loop; keep one set per loop."""

    endpoints: list[_Endpoint]
    global_limit: asyncio.Semaphore | contextlib.nullcontext  # no semaphore where the endpoint caps bind first


def _response_format_name(response_format: object) -> str:
    if isinstance(response_format, Mapping):
        response_format = response_format.get("type", "text")
    if response_format not in ("text", "json_object"):
        raise ValueError(f"response_format must be 'text' or 'json_object', got {response_format!r}")
    return str(response_format)


class ExecutorClient:
    """Async, cached, budgeted, retried client for one executor model (see module doc)."""

    def __init__(
        self,
        *,
        base_urls: Sequence[str],
        model: str,
        api_key: str = "EMPTY",
        role: str = "executor",
        max_concurrency: int = ExecutorSettings.max_concurrency,
        global_max_concurrency: int = ExecutorSettings.global_max_concurrency,
        timeout_s: float = ExecutorSettings.timeout_s,
        max_retries: int = ExecutorSettings.max_retries,
        max_tokens: int = ExecutorSettings.max_tokens,
        cache_path: str | pathlib.Path | None = None,
        budget_usd: float = ExecutorSettings.budget_usd,
        prices: Mapping[str, Mapping[str, float]] | None = None,
        native_n: bool = ExecutorSettings.native_n,
        backoff: BackoffPolicy | None = None,
        transport: str = ExecutorSettings.transport,
        ledger: Ledger | None = None,
        seed: int = 0,
        clock: PhaseClock | None = None,
    ) -> None:
        urls = [url.strip().rstrip("/") for url in base_urls if url.strip()]
        if not urls:
            raise ConfigError("executor.base_url: no endpoint URL given; set at least one OpenAI-compatible URL")
        if transport not in TRANSPORTS:
            raise ConfigError(f"executor.transport: must be one of {TRANSPORTS}, got {transport!r}")
        if max_concurrency < 1:
            raise ConfigError(f"executor.max_concurrency: must be >= 1, got {max_concurrency}")
        if int(max_tokens) < 1:
            raise ConfigError(f"executor.max_tokens: must be >= 1, got {max_tokens}")
        self.base_urls = urls
        self.model = model
        self.role = role
        self.api_key = api_key
        self.max_concurrency = int(max_concurrency)
        self.global_max_concurrency = int(global_max_concurrency) or self.max_concurrency * len(urls)
        self.timeout_s = float(timeout_s)
        self.max_tokens = int(max_tokens)
        self.native_n = bool(native_n)
        self.transport = transport
        self.backoff = backoff or BackoffPolicy(max_retries=int(max_retries))
        # A shared ledger (e.g. an API meta-agent's client with role="meta-agent") puts both under one
        # budget and one usage report; its own prices and budget then apply.
        self.ledger = ledger if ledger is not None else Ledger(prices or {}, budget_usd)
        self.cache = ResponseCache(cache_path) if cache_path else None
        self._occurrences: dict[tuple[str, str], int] = {}
        self._scope_usage: dict[str, ModelUsage] = {}
        self._rng = random.Random(seed)
        self.clock = clock if clock is not None else PhaseClock()  # the run's: time awaiting the endpoint
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}  # dropped by aclose()

    @classmethod
    def from_settings(cls, settings: ExecutorSettings, output_dir: str | pathlib.Path, *, role: str = "executor",
                      ledger: Ledger | None = None, clock: PhaseClock | None = None) -> ExecutorClient:
        """Builds the client from the `executor` settings; the cache defaults into `output_dir`."""
        urls = settings.urls
        api_key = endpoint_api_key(settings.api_key_env, urls, settings.model, settings.prices, section="executor")
        return cls(
            base_urls=urls,
            model=settings.model,
            api_key=api_key,
            role=role,
            max_concurrency=settings.max_concurrency,
            global_max_concurrency=settings.global_max_concurrency,
            timeout_s=settings.timeout_s,
            max_tokens=settings.max_tokens,
            cache_path=settings.cache_path or pathlib.Path(output_dir) / "executor_cache.sqlite",
            budget_usd=settings.budget_usd,
            prices=settings.prices,
            native_n=settings.native_n,
            transport=settings.transport,
            ledger=ledger,
            clock=clock,
            backoff=BackoffPolicy(settings.max_retries, settings.backoff_base_s, settings.backoff_max_s),
        )

    # ----- the agent interface (paper semantics) -----

    async def call_llm(self, *, messages: list[dict[str, str]], temperature: float = 1.0,
                       num_of_response: int = 1, agent_role: str = "task solver", instructions: str = "",
                       max_completion_tokens: int | None = None, response_format: object = "text",
                       scope: str = "", **ignored: object) -> list[str]:
        """Plain-text replies, one per response. The workflow's `model` argument is ignored: the
        configured executor model is always used, so a workflow cannot switch to a pricier model."""
        full = text_messages(validate_messages(messages), agent_role, instructions)
        completion = await self._complete(full, n=num_of_response, temperature=temperature,
                                          max_tokens=max_completion_tokens, response_format=response_format,
                                          scope=scope)
        return completion.texts

    async def call_json_format_llm(self, *, messages: list[dict[str, str]], temperature: float = 1.0,
                                   num_of_response: int = 1, agent_role: str = "task solver",
                                   return_dict_keys: Sequence[str] = (), instructions: str = "",
                                   max_completion_tokens: int | None = None, scope: str = "",
                                   **ignored: object) -> list[dict]:
        """One dict per response with every key of `return_dict_keys` (missing ones filled with
        "NO {key} IN DICTIONARY"; invalid JSON -> {"JSONDecodeError": text}, counted as a format
        error). The workflow's `model` argument is ignored in favour of the configured model."""
        if isinstance(return_dict_keys, str) or not all(isinstance(k, str) for k in return_dict_keys):
            raise ValueError(f"return_dict_keys must be a list of str, got {return_dict_keys!r}")
        full = json_messages(validate_messages(messages), agent_role, return_dict_keys, instructions)
        completion = await self._complete(full, n=num_of_response, temperature=temperature,
                                          max_tokens=max_completion_tokens, response_format="json_object", scope=scope)
        replies = []
        for text in completion.texts:
            reply, format_error = parse_json_reply(text, return_dict_keys)
            if format_error:
                self.ledger.count(self.model, self.role, format_errors=1)
            replies.append(reply)
        return replies

    def usage(self) -> dict[str, object]:
        """JSON-safe report: per model and role calls, cache hits, tokens, dollars, format errors,
        retries, refused and failed calls; plus budget, spent and reserved dollars."""
        report = self.ledger.report()
        report["endpoints"] = list(self.base_urls)
        report["native_n"] = self.native_n
        return report

    def scope_usage(self, scope: str) -> dict[str, float | int]:
        """Counters of one scope (e.g. one workflow sample): calls sent, responses, cache hits,
        tokens and dollars; what a sample's result reports as its executor usage."""
        return self._scope_usage.get(scope, ModelUsage()).to_json()

    # ----- the core: cached, budgeted, retried completions -----

    async def complete(self, messages: list[dict[str, str]], *, n: int = 1, temperature: float = 1.0,
                       max_tokens: int | None = None, response_format: object = "text",
                       scope: str = "") -> list[str]:
        """`n` reply texts for fully formed `messages` (system prompt included).

        Sample indices are numbered per (scope, request): the k-th identical request within a scope
        gets indices after those of the earlier ones, so repeated calls give distinct samples and a
        rerun in a fresh client hits the cache for every one of them.
        """
        completion = await self._complete(validate_messages(messages), n=n, temperature=temperature,
                                          max_tokens=max_tokens, response_format=response_format, scope=scope)
        return completion.texts

    async def sample(self, messages: list[dict[str, str]], *, sampling: Sampling, n: int = 1,
                     temperature: float = 1.0, max_tokens: int | None = None) -> Completion:
        """`n` replies to fully formed `messages`, seeded and filtered by `sampling` (an API
        meta-agent's call), with the endpoint's share of them and its token usage.

        Sample indices are 0..n-1 on every call, without the per-scope numbering of `complete`: the
        seed, not the order of calls, names the samples, so a repeated call or a rerun with the same
        seed gets the cached replies. Raises BudgetExceeded before sending, PromptTooLong for a prompt
        over the model's context, ExecutorError once the retries are spent.
        """
        return await self._complete(validate_messages(messages), n=n, temperature=temperature,
                                    max_tokens=max_tokens, response_format="text", scope="", sampling=sampling)

    async def _complete(self, messages: list[dict[str, str]], *, n: int, temperature: float,
                        max_tokens: int | None, response_format: object, scope: str,
                        sampling: Sampling | None = None) -> Completion:
        """`complete` (or with `sampling`, `sample`) for messages already validated."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_RESPONSES:
            raise ValueError(f"num_of_response must be a positive int of at most {MAX_RESPONSES}, got {str(n)[:40]!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
            raise ValueError(f"temperature must be a number in [0, 2], got {str(temperature)[:40]!r}")
        fmt = _response_format_name(response_format)
        max_tokens = self._max_tokens(max_tokens)
        key = request_key(model=self.model, messages=messages, temperature=temperature, max_tokens=max_tokens,
                          response_format=fmt, sampling=None if sampling is None else sampling.key())
        if sampling is None:
            crash_points.reached("executor-call")  # a workflow mid-run: its earlier calls are cached
            first = self._occurrences.get((scope, key), 0)
            self._occurrences[(scope, key)] = first + n
        else:
            first = 0  # the seed names the samples (see `sample`)
        indices = list(range(first, first + n))
        found = self.cache.get(key, indices) if self.cache else {}
        scope_usage = self._scope_usage.setdefault(scope, ModelUsage())
        if found:
            self.ledger.count(self.model, self.role, cache_hits=len(found))
            scope_usage.cache_hits += len(found)
        missing = [index for index in indices if index not in found]
        answered = ModelUsage()  # this call's replies from the endpoint
        if missing:
            try:
                with self.clock.measure(EXECUTOR_WAIT):
                    fetched = await self._fetch(key, messages, missing, temperature, max_tokens, fmt, sampling,
                                                answered)
            finally:  # what was paid for counts, even if a later request of the call failed
                scope_usage.add(**answered.to_json())
            found.update(fetched)
        return Completion([found[index] for index in indices], answered.responses, answered.prompt_tokens,
                          answered.completion_tokens)

    def _max_tokens(self, requested: object) -> int:
        """The completion-token cap of one call: the request's, at most the configured max_tokens (None
        asks for the configured one). A cap below 1 or not an int is refused: the budget reserves
        max_tokens per response, so the cost of a call without a positive cap cannot be bounded."""
        if requested is None:
            return self.max_tokens
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"max_completion_tokens must be a positive int (at most executor.max_tokens="
                             f"{self.max_tokens} is used), got {str(requested)[:40]!r}")
        return min(requested, self.max_tokens)

    async def _fetch(self, key: str, messages: list[dict[str, str]], indices: list[int], temperature: float,
                     max_tokens: int, fmt: str, sampling: Sampling | None,
                     answered: ModelUsage) -> dict[int, str]:
        """Fetches the given sample indices: natively as one n-request if the endpoint allows,
        the remainder as single requests (an endpoint returning fewer choices marks n unsupported)."""
        results: dict[int, str] = {}
        remaining = list(indices)
        if self.native_n and len(remaining) > 1:
            texts = await self._request(key, messages, remaining, temperature, max_tokens, fmt, sampling, answered)
            if len(texts) < len(remaining):
                self.native_n = False
            results.update(zip(remaining, texts))
            remaining = remaining[len(texts):]
        if len(remaining) == 1:  # the common case, without a task per call
            batches = [await self._request(key, messages, remaining, temperature, max_tokens, fmt, sampling, answered)]
        else:
            batches = await asyncio.gather(
                *(self._request(key, messages, [index], temperature, max_tokens, fmt, sampling, answered)
                  for index in remaining)
            )
        for index, texts in zip(remaining, batches):  # a reply has at least one choice (parse_completion)
            results[index] = texts[0]
        return results

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            endpoints = [
                _Endpoint(url, make_transport(self.transport, url, self.api_key, self.timeout_s,
                                              self.max_concurrency + 8), asyncio.Semaphore(self.max_concurrency))
                for url in self.base_urls
            ]
            binds = self.global_max_concurrency < self.max_concurrency * len(endpoints)
            state = _LoopState(endpoints, asyncio.Semaphore(self.global_max_concurrency) if binds
                               else contextlib.nullcontext())
            self._states[loop] = state
        return state

    async def _request(self, key: str, messages: list[dict[str, str]], indices: list[int], temperature: float,
                       max_tokens: int, fmt: str, sampling: Sampling | None, answered: ModelUsage) -> list[str]:
        """One logical request for len(indices) choices, with retries; caches what it gets."""
        n = len(indices)
        prompt_bound = estimate_prompt_tokens_upper_bound(messages)
        reservation = self.ledger.reserve(self.model, self.role, prompt_bound, max_tokens * n)
        # `seed` = the first sample index: each (request, sample index) is one distinct sample, as in
        # the cache, and the endpoint's request log can tell a resend from a new sample. A seeded call
        # sends its own seed (plus the first index) and its top_p / top_k instead.
        kwargs: dict[str, object] = {"model": self.model, "messages": messages, "temperature": temperature,
                                     "max_tokens": max_tokens, "seed": indices[0]}
        if sampling is not None:
            kwargs.update(sampling.fields(indices[0]))
        if n > 1:
            kwargs["n"] = n
        if fmt == "json_object":
            kwargs["response_format"] = {"type": "json_object"}
        try:
            return await self._attempts(key, indices, kwargs, prompt_bound, reservation, answered)
        except _FinalError as error:
            kind = PromptTooLong if error.too_long else ExecutorError
            raise kind(str(error), endpoint=error.endpoint, model=error.model, attempts=error.attempts,
                       last_status=error.last_status) from None
        except BaseException:
            # Cancelled, or an error that is not the endpoint's: nothing known to be billed.
            self.ledger.release(reservation)
            raise

    async def _attempts(self, key: str, indices: list[int], kwargs: dict[str, object], prompt_bound: int,
                        reservation: float, answered: ModelUsage) -> list[str]:
        """The retry loop of `_request`. Settles or releases `reservation` before returning or raising
        an ExecutorError (the caller releases it for any other exception); counts a reply in `answered`."""
        n = len(indices)
        max_tokens = int(kwargs["max_tokens"])
        state = self._state()
        failure: Failure | None = Failure(status="not sent", retryable=False)
        endpoint_url = ""
        billed_unknown = False
        for attempt in range(self.backoff.max_retries + 1):
            if attempt:
                self.ledger.count(self.model, self.role, retries=1)
                await asyncio.sleep(self.backoff.delay(attempt - 1, failure.retry_after_s, self._rng))
            async with state.global_limit:
                endpoint = min(state.endpoints, key=lambda e: e.in_flight)
                endpoint_url = endpoint.url
                endpoint.in_flight += 1
                try:
                    async with endpoint.semaphore:  # the transport enforces timeout_s
                        body = await endpoint.transport.post_chat(kwargs)
                    texts, usage, failure = parse_completion(body, n)
                except Exception as error:  # an error that is not the endpoint's is re-raised
                    failure = classify(error)
                finally:
                    endpoint.in_flight -= 1
            if failure is None:
                prompt_tokens, completion_tokens = reply_tokens(usage, prompt_bound, texts)
                cost = self.ledger.settle(self.model, self.role, reservation, prompt_tokens, completion_tokens,
                                          len(texts))
                answered.calls += 1
                answered.responses += len(texts)
                answered.prompt_tokens += prompt_tokens
                answered.completion_tokens += completion_tokens
                answered.dollars += cost
                if self.cache:
                    await self.cache.store(key, list(zip(indices, texts)), prompt_tokens, completion_tokens)
                return texts
            billed_unknown = billed_unknown or failure.maybe_billed
            if not failure.retryable:
                break
        self.ledger.close_unanswered(self.model, self.role, reservation, prompt_bound, max_tokens * n, billed_unknown)
        self.ledger.count(self.model, self.role, failed=1)
        raise _FinalError(
            f"{self.role} call failed: endpoint {endpoint_url}, model {self.model!r}, {attempt + 1} attempt(s), "
            f"last status: {failure.status}",
            endpoint=endpoint_url, model=self.model, attempts=attempt + 1, last_status=failure.status,
            too_long=failure.too_long,
        )

    async def aclose(self) -> None:
        """Closes the HTTP clients of the current loop and the cache."""
        loop = asyncio.get_running_loop()
        state = self._states.pop(loop, None)
        if state:
            for endpoint in state.endpoints:
                await endpoint.transport.close()
        if self.cache:
            self.cache.close()

    async def __aenter__(self) -> ExecutorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
