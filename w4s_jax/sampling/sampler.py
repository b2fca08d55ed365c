"""`Sampler`: batched generation with a KV cache, one jitted prefill and one jitted decode loop.

Prompts are left-padded to a bucketed length: padding slots carry segment id 0 (never attended)
and each prompt's positions count from 0 at its first real token, so every row's last prompt token
sits in the same slot and the decode loop writes one shared cache slot per step. Every sampling
knob (temperature, top-p, top-k, seed, max_new_tokens, stop token ids) is a per-row runtime array,
so requests with different parameters share one compiled program; only the shape buckets and the
sampling mode (greedy / sample / filtered) select a program. Per-row random keys are derived from
(seed, prompt index, sample index, step), so a request's samples do not depend on what else is in
the batch.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding

from w4s_jax.models.kv_cache import KVCache, kv_cache_shardings
from w4s_jax.parallel.sharding import logical_to_spec
from w4s_jax.sampling.bucketing import batch_bucket, bucket, chunks, next_power_of_two
from w4s_jax.sampling.chat import ChatTokenizer
from w4s_jax.sampling.layout import unrolled_layout
from w4s_jax.sampling.params import Completion, SamplingParams
from w4s_jax.sampling.stopping import cut_at_stop_string, trim_stop_token

MODES = ("greedy", "sample", "filtered")


@dataclasses.dataclass(frozen=True)
class _Row:
    """One sequence to generate: a prompt, its request's params, and its place in the request."""

    prompt: list[int]
    params: SamplingParams
    prompt_index: int
    sample_index: int


def choose_tokens(
    logits: jax.Array,
    temperature: jax.Array,
    top_p: jax.Array,
    top_k: jax.Array,
    keys: jax.Array,
    mode: str,
) -> tuple[jax.Array, jax.Array]:
    """(token [B], logprob [B]) from float32 logits [B, V] with per-row knobs; see module doc.

    The logprob is log_softmax of the raw logits (the policy's own probability), whatever the
    temperature or filter that chose the token.
    """
    logprobs = jax.nn.log_softmax(logits, axis=-1)
    greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    if mode == "greedy":
        tokens = greedy
    else:
        is_greedy = temperature <= 0
        scaled = logits / jnp.where(is_greedy, 1.0, temperature)[:, None]
        if mode == "filtered":
            scaled = jnp.where(scaled >= _filter_cutoff(scaled, top_p, top_k)[:, None], scaled, -jnp.inf)
        # Gumbel-max over the vocabulary in its own order: a row that filters nothing draws the same
        # token in "filtered" mode as in "sample" mode, so batch composition never changes a sample.
        sampled = jax.vmap(jax.random.categorical)(keys, scaled)
        tokens = jnp.where(is_greedy, greedy, sampled.astype(jnp.int32))
    return tokens, jnp.take_along_axis(logprobs, tokens[:, None], axis=-1)[:, 0]


def _filter_cutoff(scaled: jax.Array, top_p: jax.Array, top_k: jax.Array) -> jax.Array:
    """Per row, the smallest scaled logit that survives top-k then top-p (nucleus) filtering."""
    vocab = scaled.shape[-1]
    sorted_logits = jax.lax.top_k(scaled, vocab)[0]
    ranks = jnp.arange(vocab)[None, :]
    keep = ranks < jnp.where(top_k > 0, top_k, vocab)[:, None]
    probs = jax.nn.softmax(jnp.where(keep, sorted_logits, -jnp.inf), axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = keep & ((mass_before < top_p[:, None]) | (top_p[:, None] >= 1.0))
    kept = jnp.maximum(jnp.sum(keep, axis=-1), 1)
    return jnp.take_along_axis(sorted_logits, (kept - 1)[:, None], axis=-1)[:, 0]


def _row_keys(seeds: jax.Array, prompt_index: jax.Array, sample_index: jax.Array) -> jax.Array:
    def one(seed, p, s):
        return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), p), s)

    return jax.vmap(one)(seeds, prompt_index, sample_index)


def _step_keys(row_keys: jax.Array, step: jax.Array) -> jax.Array:
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(row_keys, step)


class Sampler:
    """Generates completions for token prompts or chat conversations; see the module doc.

    `model` is a `Decoder` or a `(graphdef, state)` pair whose state is already placed on `mesh`.
    """

    def __init__(
        self,
        model: nnx.Module | tuple[nnx.GraphDef, nnx.State],
        tokenizer: ChatTokenizer | None,
        mesh: Mesh,
        *,
        max_prompt_len: int = 4096,
        max_batch: int = 64,
        min_prompt_bucket: int = 16,
        min_new_bucket: int = 16,
        max_stop_ids: int = 8,
        cache_dtype: str | None = None,
    ) -> None:
        graphdef, state = model if isinstance(model, tuple) else nnx.split(model)
        self.source_state_shapes = _shapes(state)
        self.graphdef, _, self._state_shardings, self._to_decode_layout = unrolled_layout(graphdef, state, mesh)
        self.config = nnx.merge(graphdef, state).config
        self.tokenizer = tokenizer
        self.mesh = mesh
        self.max_prompt_len = int(max_prompt_len)
        self.min_prompt_bucket = min(int(min_prompt_bucket), self.max_prompt_len)
        self.min_new_bucket = int(min_new_bucket)
        self.max_stop_ids = int(max_stop_ids)
        self.cache_dtype = jnp.dtype(cache_dtype or self.config.dtype)
        self.batch_multiple = int(mesh.shape.get("data", 1) * mesh.shape.get("fsdp", 1))
        self.max_batch = batch_bucket(max(int(max_batch), self.batch_multiple), self.batch_multiple, 1 << 30)
        self.state = self._to_decode_layout(state)
        self._programs: dict[tuple[int, int, int, str], tuple] = {}
        self.compile_count = 0  # traces of prefill/decode; each trace is one XLA compile
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- public API

    def set_state(self, state: nnx.State | nnx.Module) -> None:
        """Swaps in new parameters of the same structure and shapes (no recompile)."""
        if isinstance(state, nnx.Module):
            state = nnx.state(state)
        new = _shapes(state)
        if jax.tree.structure(new) != jax.tree.structure(self.source_state_shapes) or jax.tree.leaves(
            new
        ) != jax.tree.leaves(self.source_state_shapes):
            raise ValueError("set_state: the new state's structure, shapes or dtypes differ from the sampler's model")
        converted = self._to_decode_layout(state)
        with self._lock:
            self.state = converted

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each token prompt."""
        return self.generate_requests([(prompts, params)])[0]

    def generate_chat(
        self, conversations: Sequence[Sequence[dict[str, str]]], params: SamplingParams
    ) -> list[list[Completion]]:
        """Applies the tokenizer's chat template (with the assistant header) and generates."""
        tokenizer = self._require_tokenizer()
        return self.generate([tokenizer.encode_chat(c) for c in conversations], params)

    def generate_requests(
        self, requests: Sequence[tuple[Sequence[Sequence[int]], SamplingParams]]
    ) -> list[list[list[Completion]]]:
        """Several requests (prompts, params) in shared compiled calls; results per request, prompt, sample."""
        rows: list[tuple[int, _Row]] = []
        for r, (prompts, params) in enumerate(requests):
            self.check_request(prompts, params)
            for p, prompt in enumerate(prompts):
                rows += [(r, _Row([int(t) for t in prompt], params, p, s)) for s in range(params.n)]
        results: list[list[list[Completion | None]]] = [
            [[None] * params.n for _ in prompts] for prompts, params in requests
        ]
        # Rows with similar new-token budgets and prompt lengths share a chunk: less padding.
        order = sorted(range(len(rows)), key=lambda i: (self._new_bucket(rows[i][1]), len(rows[i][1].prompt)))
        with self._lock:
            for chunk in chunks(len(order), self.max_batch):
                chunk_rows = [rows[order[i]] for i in chunk]
                for (r, row), completion in zip(chunk_rows, self._run([row for _, row in chunk_rows])):
                    results[r][row.prompt_index][row.sample_index] = completion
        return results

    def check_request(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> None:
        """Raises ValueError for a request this sampler cannot serve (the server answers 400)."""
        if not isinstance(params, SamplingParams):
            raise TypeError(f"params must be SamplingParams, got {type(params).__name__}")
        if isinstance(prompts, (str, bytes)) or not prompts:
            raise ValueError("prompts must be a non-empty list of token-id lists")
        stops = self._stop_ids(params)
        if len(stops) > self.max_stop_ids:
            raise ValueError(f"{len(stops)} stop token ids; at most {self.max_stop_ids} are supported")
        for i, prompt in enumerate(prompts):
            if isinstance(prompt, (str, bytes)) or len(prompt) == 0:
                raise ValueError(f"prompt {i} must be a non-empty list of token ids")
            if len(prompt) > self.max_prompt_len:
                raise ValueError(
                    f"prompt {i} has {len(prompt)} tokens; the maximum prompt length is {self.max_prompt_len}"
                )
            if len(prompt) + params.max_new_tokens > self.config.max_positions:
                raise ValueError(
                    f"prompt {i} ({len(prompt)} tokens) + max_new_tokens ({params.max_new_tokens}) exceeds the "
                    f"model's context of {self.config.max_positions} tokens"
                )
            low, high = min(prompt), max(prompt)
            if low < 0 or high >= self.config.vocab_size:
                raise ValueError(f"prompt {i} has token ids outside [0, {self.config.vocab_size})")

    # ---------------------------------------------------------------- one compiled chunk

    def _require_tokenizer(self) -> ChatTokenizer:
        if self.tokenizer is None:
            raise ValueError("this sampler has no tokenizer; pass one to Sampler(...) for chat generation")
        return self.tokenizer

    def _stop_ids(self, params: SamplingParams) -> tuple[int, ...]:
        if params.stop_token_ids is not None:
            return params.stop_token_ids
        return self.tokenizer.eos_token_ids if self.tokenizer is not None else ()

    def _new_bucket(self, row: _Row) -> int:
        return max(next_power_of_two(row.params.max_new_tokens), self.min_new_bucket)

    def _batch_spec(self, shape: tuple[int, ...]) -> NamedSharding:
        axes = ("act_batch",) + (None,) * (len(shape) - 1)
        return NamedSharding(self.mesh, logical_to_spec(axes, shape, self.mesh))

    def _run(self, rows: list[_Row]) -> list[Completion]:
        batch = batch_bucket(len(rows), self.batch_multiple, self.max_batch)
        prompt_len = bucket(max(len(r.prompt) for r in rows), self.min_prompt_bucket, self.max_prompt_len)
        new_len = max(self._new_bucket(r) for r in rows)
        params = [r.params for r in rows]
        if all(p.is_greedy for p in params):
            mode = "greedy"
        elif any(p.needs_filtering for p in params):
            mode = "filtered"
        else:
            mode = "sample"
        pad_id = self.tokenizer.pad_id if self.tokenizer is not None else 0

        tokens = np.full((batch, prompt_len), pad_id, np.int32)
        segments = np.zeros((batch, prompt_len), np.int32)
        lengths = np.ones(batch, np.int32)
        for i, row in enumerate(rows):
            tokens[i, prompt_len - len(row.prompt):] = row.prompt
            segments[i, prompt_len - len(row.prompt):] = 1
            lengths[i] = len(row.prompt)
        segments[len(rows):, -1] = 1  # padding rows: one real token so no attention row is empty
        positions = np.maximum(np.cumsum(segments, axis=1) - 1, 0).astype(np.int32)

        def per_row(values, dtype, fill):
            out = np.full(batch, fill, dtype)
            out[: len(rows)] = values
            return out

        knobs = dict(
            temperature=per_row([p.temperature for p in params], np.float32, 0.0),
            top_p=per_row([p.top_p for p in params], np.float32, 1.0),
            top_k=per_row([p.top_k for p in params], np.int32, 0),
            seeds=per_row([p.seed % 2**32 for p in params], np.uint32, 0),
            prompt_index=per_row([r.prompt_index for r in rows], np.int32, 0),
            sample_index=per_row([r.sample_index for r in rows], np.int32, 0),
        )
        max_new = per_row([p.max_new_tokens for p in params], np.int32, 0)
        stop_ids = np.full((batch, self.max_stop_ids), -1, np.int32)
        for i, p in enumerate(params):
            ids = self._stop_ids(p)
            stop_ids[i, : len(ids)] = ids

        prefill, decode = self._program(batch, prompt_len, new_len, mode)
        # On several hosts every host passes the same global batch (see w4s.policy.SamplerPolicy).
        put = lambda x: jax.device_put(x, self._batch_spec(x.shape))  # noqa: E731
        knobs = {k: put(v) for k, v in knobs.items()}
        cache, first, first_lp = prefill(self.state, put(tokens), put(segments), put(positions), knobs)
        out_tokens, out_lps, out_lengths, stopped, _ = decode(
            self.state, cache, first, first_lp, put(lengths), put(max_new), put(stop_ids), knobs
        )
        out_tokens, out_lps, out_lengths, stopped = (_to_host(x) for x in (out_tokens, out_lps, out_lengths, stopped))
        return [
            self._completion(row, out_tokens[i, : out_lengths[i]], out_lps[i, : out_lengths[i]], bool(stopped[i]))
            for i, row in enumerate(rows)
        ]

    def _completion(self, row: _Row, tokens: np.ndarray, logprobs: np.ndarray, stopped: bool) -> Completion:
        ids, lps = tokens.tolist(), logprobs.astype(float).tolist()
        if stopped:
            ids, lps, _ = trim_stop_token(ids, lps, set(self._stop_ids(row.params)))
        text = self.tokenizer.decode(ids) if self.tokenizer is not None else ""
        if row.params.stop_strings and self.tokenizer is not None:
            ids, lps, text, matched = cut_at_stop_string(ids, lps, text, row.params.stop_strings, self.tokenizer.decode)
            stopped = stopped or matched
        return Completion(ids, lps, text, "stop" if stopped else "length", len(row.prompt))

    # ---------------------------------------------------------------- compiled programs

    def _program(self, batch: int, prompt_len: int, new_len: int, mode: str) -> tuple:
        key = (batch, prompt_len, new_len, mode)
        if key not in self._programs:
            self._programs[key] = self._build(batch, prompt_len, new_len, mode)
        return self._programs[key]

    def _build(self, batch: int, prompt_len: int, new_len: int, mode: str) -> tuple:
        config, graphdef, mesh = self.config, self.graphdef, self.mesh
        cache_len = prompt_len + new_len
        abstract_cache = jax.eval_shape(lambda: KVCache.init(config, batch, cache_len, self.cache_dtype))
        cache_shardings = kv_cache_shardings(abstract_cache, mesh)
        vec = self._batch_spec((batch,))
        mat = self._batch_spec((batch, prompt_len))
        out_mat = self._batch_spec((batch, new_len))
        stops = self._batch_spec((batch, self.max_stop_ids))
        knob_shardings = {k: vec for k in ("temperature", "top_p", "top_k", "seeds", "prompt_index", "sample_index")}

        def prefill(state, tokens, segments, positions, knobs):
            self.compile_count += 1
            model = nnx.merge(graphdef, state)
            cache = KVCache.init(config, batch, cache_len, self.cache_dtype)
            cache = jax.lax.with_sharding_constraint(cache, cache_shardings)
            hidden, cache = model.hidden_states(tokens, positions, segments, cache)
            logits = model.logits(hidden[:, -1:])[:, 0]
            keys = _step_keys(_row_keys(knobs["seeds"], knobs["prompt_index"], knobs["sample_index"]), 0)
            token, logprob = choose_tokens(logits, knobs["temperature"], knobs["top_p"], knobs["top_k"], keys, mode)
            return cache, token, logprob

        def decode(state, cache, first, first_lp, prompt_lengths, max_new, stop_ids, knobs):
            self.compile_count += 1
            model = nnx.merge(graphdef, state)
            row_keys = _row_keys(knobs["seeds"], knobs["prompt_index"], knobs["sample_index"])

            def is_stop(token):
                return jnp.any(token[:, None] == stop_ids, axis=-1)

            out_tokens = jnp.zeros((batch, new_len), jnp.int32).at[:, 0].set(first)
            out_lps = jnp.zeros((batch, new_len), jnp.float32).at[:, 0].set(first_lp)
            stopped = is_stop(first) & (max_new >= 1)
            done = stopped | (max_new <= 1)
            lengths = jnp.where(max_new >= 1, 1, 0).astype(jnp.int32)

            def cond(carry):
                step, _, _, _, _, done, _, _ = carry
                return (step < new_len) & ~jnp.all(done)

            def body(carry):
                step, cache, token, out_tokens, out_lps, done, stopped, lengths = carry
                positions = (prompt_lengths + step - 1)[:, None]
                logits, cache = model(token[:, None], positions, jnp.ones_like(positions), cache)
                keys = _step_keys(row_keys, step)
                new, logprob = choose_tokens(
                    logits[:, 0], knobs["temperature"], knobs["top_p"], knobs["top_k"], keys, mode
                )
                new = jnp.where(done, 0, new)
                out_tokens = jax.lax.dynamic_update_slice(out_tokens, new[:, None], (0, step))
                out_lps = jax.lax.dynamic_update_slice(out_lps, jnp.where(done, 0.0, logprob)[:, None], (0, step))
                lengths = jnp.where(done, lengths, step + 1)
                hit = ~done & is_stop(new)
                stopped = stopped | hit
                done = done | hit | (step + 1 >= max_new)
                return step + 1, cache, new, out_tokens, out_lps, done, stopped, lengths

            carry = (jnp.int32(1), cache, first, out_tokens, out_lps, done, stopped, lengths)
            _, cache, _, out_tokens, out_lps, _, stopped, lengths = jax.lax.while_loop(cond, body, carry)
            return out_tokens, out_lps, lengths, stopped, cache

        prefill_jit = jax.jit(
            prefill,
            in_shardings=(self._state_shardings, mat, mat, mat, knob_shardings),
            out_shardings=(cache_shardings, vec, vec),
        )
        decode_jit = jax.jit(
            decode,
            in_shardings=(self._state_shardings, cache_shardings, vec, vec, vec, vec, stops, knob_shardings),
            out_shardings=(out_mat, out_mat, vec, vec, cache_shardings),
            donate_argnums=(1,),
        )
        return _with_mesh(prefill_jit, mesh), _with_mesh(decode_jit, mesh)


def _to_host(x: jax.Array) -> np.ndarray:
    """The whole array on this host; on several hosts (each holding only its shards) a gather."""
    if x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _shapes(state: nnx.State):
    return jax.tree.map(lambda x: (tuple(np.shape(x)), jnp.result_type(x)), state)


def _with_mesh(fn, mesh: Mesh):
    """Runs `fn` with `mesh` set, so the model's logical sharding constraints resolve to it."""

    @functools.wraps(fn)
    def wrapped(*args):
        with jax.set_mesh(mesh):
            return fn(*args)

    return wrapped


__all__ = ["MODES", "Completion", "Sampler", "SamplingParams", "choose_tokens"]
