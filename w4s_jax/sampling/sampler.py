"""`Sampler`: batched generation with a KV cache, as a few compiled programs over a typed decode state.

Prompts are left-padded to a bucketed length: padding slots carry segment id 0 (never attended)
and each prompt's positions count from 0 at its first real token, so every row's last prompt token
sits in the same slot and a decode step writes one cache slot shared by all rows. Every sampling
knob (temperature, top-p, top-k, seed, max_new_tokens, stop token ids) is a per-row runtime array
(`RowKnobs`), so requests with different parameters share one compiled program; only shape buckets
and the sampling mode (greedy / sample / filtered) select a program. Per-row random keys are derived
from (seed, prompt index, sample index, tokens chosen so far), so a request's samples do not depend
on what else is in the batch, nor on when the row joined it.

The programs (each compiled once per shape key, counted in `compile_count`):
- prefill: prompts -> `DecodeState` with the first token chosen, in a cache with `room` free slots;
  when rows share a prompt (a W4S turn's m candidates, a request with n > 1) and `share_prefill` is
  on, each distinct prompt is prefilled once and its cache copied into its rows (`shared_prefill`);
- decode: up to `steps` tokens per row in one call (a while loop on device, ending early once every
  row is done);
- insert: prefilled rows into free rows of a running state (their prompt ends at its shared slot);
- relayout: a running state gathered to other rows and shifted to another window of cache slots.

`generate_requests` uses prefill + one decode call per batch (W4S rollouts, RLAO);
`sampling.continuous.ContinuousBatcher` drives all four a few steps at a time (`w4s-jax serve`).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from w4s_jax.cpu_backend import decode_compiler_options
from w4s_jax.models.kv_cache import KV_AXES, SEGMENT_AXES, KVCache, kv_cache_shardings
from w4s_jax.parallel.sharding import logical_to_spec
from w4s_jax.sampling.bucketing import batch_bucket, bucket, chunks, next_power_of_two
from w4s_jax.sampling.chat import ChatTokenizer
from w4s_jax.sampling.decode_state import (
    EMPTY_KNOBS,
    EMPTY_ROW,
    DecodeCarry,
    DecodeState,
    RowKnobs,
    SampleRow,
)
from w4s_jax.sampling.layout import unrolled_layout
from w4s_jax.sampling.params import Completion, SamplingParams
from w4s_jax.sampling.settings import SamplingSettings
from w4s_jax.sampling.shared_prefill import distinct_prompts, fan_out, row_sources
from w4s_jax.sampling.stopping import cut_at_stop_string, trim_stop_token

MODES = ("greedy", "sample", "filtered")  # ordered: a program of a later mode serves rows of an earlier one


def sampling_mode(params: Iterable[SamplingParams]) -> str:
    """The cheapest mode that serves every row: greedy < sample < filtered (see `choose_tokens`)."""
    rank = max((2 if p.needs_filtering else 0 if p.is_greedy else 1) for p in params)
    return MODES[rank]


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


def _step_keys(knobs: RowKnobs, steps: jax.Array) -> jax.Array:
    """Each row's key for choosing its token number `steps[row]`: (seed, prompt, sample, step)."""

    def one(seed, prompt, sample, step):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), prompt), sample)
        return jax.random.fold_in(key, step)

    return jax.vmap(one)(knobs.seeds, knobs.prompt_index, knobs.sample_index, steps)


def _is_stop(tokens: jax.Array, stop_ids: jax.Array) -> jax.Array:
    return jnp.any(tokens[:, None] == stop_ids, axis=-1)


def _model_step(model: nnx.Module, tokens: jax.Array, positions: jax.Array, segments: jax.Array,
                cache: KVCache) -> tuple[jax.Array, KVCache]:
    """The one call into the model: float32 logits [B, V] at each row's last slot, and the new cache."""
    hidden, cache = model.hidden_states(tokens, positions, segments, cache)
    return model.logits(hidden[:, -1:])[:, 0], cache


def _first_tokens(cache: KVCache, logits: jax.Array, positions: jax.Array, knobs: RowKnobs,
                  mode: str) -> tuple[DecodeState, jax.Array]:
    """Prefill's end: each row's first token from its prompt's logits [B, V] with the row's own key
    (token index 0 of its stream), as a `DecodeState` whose next input sits at `positions` [B]."""
    batch = logits.shape[0]
    keys = _step_keys(knobs, jnp.zeros(batch, jnp.int32))
    token, logprob = choose_tokens(logits, knobs.temperature, knobs.top_p, knobs.top_k, keys, mode)
    stopped = _is_stop(token, knobs.stop_ids)
    state = DecodeState(cache=cache, tokens=token, positions=positions, generated=jnp.ones(batch, jnp.int32),
                        done=stopped | (knobs.max_new <= 1), stopped=stopped)
    return state, logprob


@dataclasses.dataclass(frozen=True)
class Prefilled:
    """What prefill hands back: the device state and knobs, and the first tokens on the host."""

    state: DecodeState
    knobs: RowKnobs
    first_tokens: np.ndarray  # int32 [batch]
    first_logprobs: np.ndarray  # float32 [batch]
    prompt_len: int  # the prompt bucket: the rows' prompts end at slot prompt_len - 1


@dataclasses.dataclass(frozen=True)
class Decoded:
    """One decode call's results on the host; row r chose out_tokens[r, :count] in this call."""

    out_tokens: np.ndarray  # int32 [B, steps]
    out_logprobs: np.ndarray  # float32 [B, steps]
    generated: np.ndarray  # int32 [B]: tokens chosen so far in all (prefill's first included)
    done: np.ndarray  # bool [B]
    stopped: np.ndarray  # bool [B]


class Sampler:
    """Generates completions for token prompts or chat conversations; see the module doc.

    `model` is a `Decoder` or a `(graphdef, state)` pair whose state is already placed on `mesh`.
    `share_prefill`: prefill each distinct prompt of a batch once (off: once per row, as a baseline
    for benchmarks and tests; replies are the same either way).
    """

    def __init__(
        self,
        model: nnx.Module | tuple[nnx.GraphDef, nnx.State],
        tokenizer: ChatTokenizer | None,
        mesh: Mesh,
        *,
        max_prompt_len: int = SamplingSettings.max_prompt_len,
        max_batch: int = 64,
        min_prompt_bucket: int = 16,
        min_new_bucket: int = 16,
        max_stop_ids: int = 8,
        cache_dtype: str | None = None,
        share_prefill: bool = True,
    ) -> None:
        graphdef, state = model if isinstance(model, tuple) else nnx.split(model)
        self.source_state_shapes = _shapes(state)
        self._layout = unrolled_layout(graphdef, state, mesh)
        self.graphdef, self._state_shardings = self._layout.graphdef, self._layout.shardings
        self.config = nnx.merge(graphdef, state).config
        self.tokenizer = tokenizer
        self.mesh = mesh
        self.max_prompt_len = int(max_prompt_len)
        self.min_prompt_bucket = min(int(min_prompt_bucket), self.max_prompt_len)
        self.min_new_bucket = int(min_new_bucket)
        self.max_stop_ids = int(max_stop_ids)
        self.cache_dtype = jnp.dtype(cache_dtype or self.config.dtype)
        self.share_prefill = bool(share_prefill)
        self.batch_multiple = int(mesh.shape.get("data", 1) * mesh.shape.get("fsdp", 1))
        self.max_batch = batch_bucket(max(int(max_batch), self.batch_multiple), self.batch_multiple, 1 << 30)
        self.state: nnx.State | None = self._layout.to_decode(state)
        self._programs: dict[tuple, Callable] = {}
        self.compile_count = 0  # XLA compiles, counted by the program cache (one per shape key)
        self.compile_seconds = 0.0  # their time (tracing, lowering, compiling): benchmarks subtract it
        # Held for each compiled call and for a whole generate_requests: set_state never lands mid-call.
        self.lock = threading.RLock()

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
        converted = self._layout.to_decode(state)
        with self.lock:
            self.state = converted

    def source_params(self, *, release: bool = False) -> dict:
        """The parameters in the model's own layout (layer-stacked when scanned), as a pure dict placed
        like the model's: what training and export take. `release` drops the sampler's copy until the
        next `set_state`, so a trainer in the same process runs without it resident (`rlao/rounds.py`)."""
        with self.lock:
            if self.state is None:
                raise RuntimeError("Sampler.source_params: the parameters were released; set_state gives it new ones")
            params = nnx.to_pure_dict(self._layout.to_source(self.state))
            if release:
                self.state = None
        return params

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
        rows: list[tuple[int, SampleRow]] = []
        for r, (prompts, params) in enumerate(requests):
            rows += [(r, row) for row in self.rows_of(prompts, params)]
        results: list[list[list[Completion | None]]] = [
            [[None] * params.n for _ in prompts] for prompts, params in requests
        ]
        # Rows with similar new-token budgets and prompt lengths share a chunk (less padding), and
        # rows of one prompt sit together (one prefill for them, see `prefill`).
        _, prompt_ids = distinct_prompts([row for _, row in rows])
        order = sorted(range(len(rows)),
                       key=lambda i: (self.new_bucket(rows[i][1]), len(rows[i][1].prompt), prompt_ids[i]))
        with self.lock:
            for chunk in chunks(len(order), self.max_batch):
                chunk_rows = [rows[order[i]] for i in chunk]
                for (r, row), completion in zip(chunk_rows, self._run([row for _, row in chunk_rows])):
                    results[r][row.prompt_index][row.sample_index] = completion
        return results

    def rows_of(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> list[SampleRow]:
        """A validated request as its rows: `params.n` per prompt (raises ValueError, see check_request)."""
        self.check_request(prompts, params)
        return [SampleRow([int(t) for t in prompt], params, p, s)
                for p, prompt in enumerate(prompts) for s in range(params.n)]

    def check_request(self, prompts: Sequence[Sequence[int]], params: SamplingParams) -> None:
        """Raises ValueError for a request this sampler cannot serve (the server answers 400)."""
        if not isinstance(params, SamplingParams):
            raise TypeError(f"params must be SamplingParams, got {type(params).__name__}")
        if isinstance(prompts, (str, bytes)) or not prompts:
            raise ValueError("prompts must be a non-empty list of token-id lists")
        stops = self.stop_ids(params)
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

    def stop_ids(self, params: SamplingParams) -> tuple[int, ...]:
        if params.stop_token_ids is not None:
            return params.stop_token_ids
        return self.tokenizer.eos_token_ids if self.tokenizer is not None else ()

    def new_bucket(self, row: SampleRow) -> int:
        return max(next_power_of_two(row.params.max_new_tokens), self.min_new_bucket)

    def prompt_bucket(self, rows: Sequence[SampleRow]) -> int:
        return bucket(max(len(r.prompt) for r in rows), self.min_prompt_bucket, self.max_prompt_len)

    def completion(self, row: SampleRow, tokens: Sequence[int], logprobs: Sequence[float], stopped: bool) -> Completion:
        """A row's reply from its chosen tokens: the stop token dropped, the text cut at a stop string."""
        ids, lps = [int(t) for t in tokens], [float(x) for x in logprobs]
        if stopped:
            ids, lps, _ = trim_stop_token(ids, lps, set(self.stop_ids(row.params)))
        text = self.tokenizer.decode(ids) if self.tokenizer is not None else ""
        if row.params.stop_strings and self.tokenizer is not None:
            ids, lps, text, matched = cut_at_stop_string(ids, lps, text, row.params.stop_strings, self.tokenizer.decode)
            stopped = stopped or matched
        return Completion(ids, lps, text, "stop" if stopped else "length", len(row.prompt))

    # ---------------------------------------------------------------- the programs, called from the host

    def prefill(self, rows: Sequence[SampleRow], room: int) -> Prefilled:
        """Prefills `rows` (padded to a batch bucket) into a cache of prompt bucket + `room` slots; rows
        that share a prompt share its prefill when `share_prefill` is on (see `shared_prefill`)."""
        batch = batch_bucket(len(rows), self.batch_multiple, self.max_batch)
        prompt_len = self.prompt_bucket(rows)
        mode = sampling_mode(r.params for r in rows)
        knobs = jax.tree.map(self._put_rows, RowKnobs.from_rows(rows, batch, self.max_stop_ids, self.stop_ids))
        # On several hosts every host passes the same global batch (see w4s.policy.SamplerPolicy).
        firsts, sources = distinct_prompts(rows)
        distinct = batch_bucket(len(firsts), self.batch_multiple, self.max_batch)
        if self.share_prefill and distinct < batch:  # else the per-row program does the same work, no copy
            prompts = self._prompt_arrays([rows[i].prompt for i in firsts], distinct, prompt_len)
            inputs = (*prompts, self._put_rows(row_sources(sources, batch, distinct)), knobs)
            shape = (batch, distinct, prompt_len, prompt_len + room, mode)
            state, first_logprobs = self._call("prefill_shared", shape, inputs, with_params=True)
        else:
            inputs = (*self._prompt_arrays([row.prompt for row in rows], batch, prompt_len), knobs)
            shape = (batch, prompt_len, prompt_len + room, mode)
            state, first_logprobs = self._call("prefill", shape, inputs, with_params=True)
        return Prefilled(state, knobs, _to_host(state.tokens), _to_host(first_logprobs), prompt_len)

    def _prompt_arrays(self, prompts: Sequence[list[int]], batch: int, prompt_len: int) -> tuple[jax.Array, ...]:
        """(tokens, segments, positions) [batch, prompt_len] on the mesh: prompts left-padded, then
        padding rows of one real token (so no attention row is empty)."""
        pad_id = self.tokenizer.pad_id if self.tokenizer is not None else 0
        tokens = np.full((batch, prompt_len), pad_id, np.int32)
        segments = np.zeros((batch, prompt_len), np.int32)
        for i, prompt in enumerate(prompts):
            tokens[i, prompt_len - len(prompt):] = prompt
            segments[i, prompt_len - len(prompt):] = 1
        segments[len(prompts):, -1] = 1
        positions = np.maximum(np.cumsum(segments, axis=1) - 1, 0).astype(np.int32)
        return tuple(self._put_rows(x) for x in (tokens, segments, positions))

    def decode(self, state: DecodeState, knobs: RowKnobs, *, steps: int, mode: str,
               ended: np.ndarray | None = None) -> tuple[DecodeState, Decoded]:
        """Up to `steps` tokens for every row not done (`ended` rows are marked done first); donates `state`."""
        batch, cache_len = state.tokens.shape[0], cache_slots(state.cache)
        ended = self._put_rows(np.zeros(batch, bool) if ended is None else ended)
        state, out_tokens, out_logprobs = self._call("decode", (batch, cache_len, steps, mode), (state, knobs, ended),
                                                     with_params=True)
        host = (out_tokens, out_logprobs, state.generated, state.done, state.stopped)
        return state, Decoded(*(_to_host(x) for x in host))

    def insert(self, state: DecodeState, knobs: RowKnobs, block: Prefilled,
               rows: Sequence[int]) -> tuple[DecodeState, RowKnobs]:
        """Writes `block`'s rows into rows `rows` of `state` (donated), its prompts ending at the shared
        slot `state.cache.end - 1`; needs `cache.end >= block.prompt_len`. Extra block rows are dropped."""
        batch, cache_len = state.tokens.shape[0], cache_slots(state.cache)
        block_batch = block.state.tokens.shape[0]
        targets = np.full(block_batch, batch, np.int32)  # out of range: dropped
        targets[: len(rows)] = rows
        args = (state, knobs, block.state, block.knobs, self._put_replicated(targets))
        return self._call("insert", (batch, cache_len, block_batch, block.prompt_len), args, with_params=False)

    def relayout(self, state: DecodeState, knobs: RowKnobs, row_map: Sequence[int], start: int,
                 cache_len: int) -> tuple[DecodeState, RowKnobs]:
        """A state of len(row_map) rows (new row i = old row row_map[i]; -1 = empty) and `cache_len`
        slots (new slot s = old slot start + s; outside the old window = empty); donates `state`."""
        batch, old_len = state.tokens.shape[0], cache_slots(state.cache)
        args = (state, knobs, *(self._put_replicated(np.asarray(x, np.int32)) for x in (row_map, start)))
        return self._call("relayout", (batch, old_len, len(row_map), cache_len), args, with_params=False)

    # ---------------------------------------------------------------- the batch driver

    def _require_tokenizer(self) -> ChatTokenizer:
        if self.tokenizer is None:
            raise ValueError("this sampler has no tokenizer; pass one to Sampler(...) for chat generation")
        return self.tokenizer

    def _run(self, rows: list[SampleRow]) -> list[Completion]:
        """One chunk of rows: prefill with room for the longest reply, then one decode call to the end."""
        new_len = max(self.new_bucket(r) for r in rows)
        prefilled = self.prefill(rows, room=new_len)
        mode = sampling_mode(r.params for r in rows)
        _, decoded = self.decode(prefilled.state, prefilled.knobs, steps=new_len, mode=mode)
        completions = []
        for i, row in enumerate(rows):
            more = decoded.generated[i] - 1  # tokens chosen by the decode call
            tokens = [prefilled.first_tokens[i], *decoded.out_tokens[i, :more]]
            logprobs = [prefilled.first_logprobs[i], *decoded.out_logprobs[i, :more]]
            completions.append(self.completion(row, tokens, logprobs, bool(decoded.stopped[i])))
        return completions

    # ---------------------------------------------------------------- compiled programs

    def _call(self, kind: str, shape: tuple, args: tuple, *, with_params: bool):
        """Runs program `kind` for `shape` (the `_build_<kind>` arguments), compiling it ahead of time on
        first use; `with_params` passes the model's parameters first."""
        key = (kind, *shape)
        with self.lock:
            if with_params and self.state is None:
                raise RuntimeError("Sampler: its parameters were released (source_params(release=True)); "
                                   "set_state gives it new ones before it generates")
            args = (self.state, *args) if with_params else args
            if key not in self._programs:
                start = time.perf_counter()
                # Decode steps have few rows: on CPU they compile with YNNPACK's individual dots (cpu_backend).
                options = decode_compiler_options(self.mesh.devices.flat[0].platform) if kind == "decode" else {}
                with jax.set_mesh(self.mesh):  # the model's logical sharding constraints resolve to this mesh
                    self._programs[key] = getattr(self, f"_build_{kind}")(*shape).lower(*args).compile(options or None)
                self.compile_count += 1
                self.compile_seconds += time.perf_counter() - start
            return self._programs[key](*args)

    def _rows_spec(self, shape: tuple[int, ...]) -> NamedSharding:
        axes = ("act_batch",) + (None,) * (len(shape) - 1)
        return NamedSharding(self.mesh, logical_to_spec(axes, shape, self.mesh))

    def _put_rows(self, x: np.ndarray) -> jax.Array:
        return jax.device_put(x, self._rows_spec(np.shape(x)))

    def _put_replicated(self, x: np.ndarray) -> jax.Array:
        return jax.device_put(x, NamedSharding(self.mesh, PartitionSpec()))

    def _state_spec(self, batch: int, cache_len: int) -> tuple[DecodeState, RowKnobs]:
        """Shardings of a DecodeState and its RowKnobs: rows over the data axes, kv heads over tensor."""
        abstract = jax.eval_shape(lambda: KVCache.init(self.config, batch, cache_len, self.cache_dtype))
        vec = self._rows_spec((batch,))
        state = DecodeState(kv_cache_shardings(abstract, self.mesh), vec, vec, vec, vec, vec)
        knobs = RowKnobs(**{name: vec for name in EMPTY_KNOBS if name != "stop_ids"},
                         stop_ids=self._rows_spec((batch, self.max_stop_ids)))
        return state, knobs

    def _build_prefill(self, batch: int, prompt_len: int, cache_len: int, mode: str):
        config, graphdef, dtype = self.config, self.graphdef, self.cache_dtype
        state_spec, knob_spec = self._state_spec(batch, cache_len)
        mat = self._rows_spec((batch, prompt_len))

        def prefill(params, tokens, segments, positions, knobs: RowKnobs) -> tuple[DecodeState, jax.Array]:
            model = nnx.merge(graphdef, params)
            cache = jax.lax.with_sharding_constraint(KVCache.init(config, batch, cache_len, dtype), state_spec.cache)
            logits, cache = _model_step(model, tokens, positions, segments, cache)
            return _first_tokens(cache, logits, positions[:, -1] + 1, knobs, mode)

        return jax.jit(prefill, in_shardings=(self._state_shardings, mat, mat, mat, knob_spec),
                       out_shardings=(state_spec, state_spec.tokens))

    def _build_prefill_shared(self, batch: int, distinct: int, prompt_len: int, cache_len: int, mode: str):
        """Prefill of `distinct` prompt rows, each row of the batch a copy of one (`sources`); the same
        cache length as `_build_prefill`, so a row's keys, values and logits are the ones it gives."""
        config, graphdef, dtype = self.config, self.graphdef, self.cache_dtype
        state_spec, knob_spec = self._state_spec(batch, cache_len)
        distinct_spec, _ = self._state_spec(distinct, cache_len)
        mat = self._rows_spec((distinct, prompt_len))

        def prefill_shared(params, tokens, segments, positions, sources, knobs: RowKnobs):
            model = nnx.merge(graphdef, params)
            cache = jax.lax.with_sharding_constraint(KVCache.init(config, distinct, cache_len, dtype),
                                                     distinct_spec.cache)
            logits, cache = _model_step(model, tokens, positions, segments, cache)
            cache = jax.lax.with_sharding_constraint(fan_out(cache, sources), state_spec.cache)
            return _first_tokens(cache, jnp.take(logits, sources, axis=0), jnp.take(positions[:, -1] + 1, sources),
                                 knobs, mode)

        return jax.jit(prefill_shared, in_shardings=(self._state_shardings, mat, mat, mat, state_spec.tokens, knob_spec),
                       out_shardings=(state_spec, state_spec.tokens))

    def _build_decode(self, batch: int, cache_len: int, steps: int, mode: str):
        graphdef = self.graphdef
        state_spec, knob_spec = self._state_spec(batch, cache_len)
        out_spec = self._rows_spec((batch, steps))

        def decode(params, state: DecodeState, knobs: RowKnobs, ended: jax.Array):
            model = nnx.merge(graphdef, params)

            def cond(carry: DecodeCarry) -> jax.Array:
                return (carry.step < steps) & ~jnp.all(carry.state.done)

            def body(carry: DecodeCarry) -> DecodeCarry:
                s = carry.state
                logits, cache = _model_step(model, s.tokens[:, None], s.positions[:, None],
                                            jnp.ones((batch, 1), jnp.int32), s.cache)
                keys = _step_keys(knobs, s.generated)
                token, logprob = choose_tokens(logits, knobs.temperature, knobs.top_p, knobs.top_k, keys, mode)
                live = ~s.done
                token, logprob = jnp.where(live, token, 0), jnp.where(live, logprob, 0.0)
                hit = live & _is_stop(token, knobs.stop_ids)
                generated = s.generated + live.astype(jnp.int32)
                state = DecodeState(cache=cache, tokens=token, positions=s.positions + 1, generated=generated,
                                    done=s.done | hit | (generated >= knobs.max_new), stopped=s.stopped | hit)
                at = (0, carry.step)
                return DecodeCarry(state, carry.step + 1,
                                   jax.lax.dynamic_update_slice(carry.out_tokens, token[:, None], at),
                                   jax.lax.dynamic_update_slice(carry.out_logprobs, logprob[:, None], at))

            start = DecodeCarry(dataclasses.replace(state, done=state.done | ended), jnp.int32(0),
                                jnp.zeros((batch, steps), jnp.int32), jnp.zeros((batch, steps), jnp.float32))
            end = jax.lax.while_loop(cond, body, start)
            return end.state, end.out_tokens, end.out_logprobs

        return jax.jit(decode, in_shardings=(self._state_shardings, state_spec, knob_spec, state_spec.done),
                       out_shardings=(state_spec, out_spec, out_spec), donate_argnums=(1,))

    def _build_insert(self, batch: int, cache_len: int, block_batch: int, prompt_len: int):
        state_spec, knob_spec = self._state_spec(batch, cache_len)
        block_state_spec, block_knob_spec = self._state_spec(block_batch, prompt_len)
        replicated = NamedSharding(self.mesh, PartitionSpec())

        def insert(state: DecodeState, knobs: RowKnobs, block: DecodeState, block_knobs: RowKnobs, targets):
            offset = state.cache.end - prompt_len  # the block's prompts end where the running rows' do

            def place(big: jax.Array, small: jax.Array, axes: tuple[str, ...]) -> jax.Array:
                rows_axis, slots_axis = axes.index("act_batch"), axes.index("cache_length")
                shape = list(small.shape)
                shape[slots_axis] = big.shape[slots_axis]
                at = [0] * small.ndim
                at[slots_axis] = offset
                placed = jax.lax.dynamic_update_slice(jnp.zeros(shape, big.dtype), small.astype(big.dtype), at)
                return _scatter_rows(big, placed, targets, rows_axis)

            layers = jax.tree.map(lambda big, small: place(big, small, KV_AXES), state.cache.layers, block.cache.layers)
            cache = KVCache(layers=layers, segment_ids=place(state.cache.segment_ids, block.cache.segment_ids, SEGMENT_AXES),
                            end=state.cache.end)
            rows = functools.partial(jax.tree.map, lambda big, small: _scatter_rows(big, small, targets, 0))
            fields = {name: getattr(state, name) for name in EMPTY_ROW}
            new_fields = rows(fields, {name: getattr(block, name) for name in EMPTY_ROW})
            return DecodeState(cache=cache, **new_fields), rows(knobs, block_knobs)

        return jax.jit(insert, in_shardings=(state_spec, knob_spec, block_state_spec, block_knob_spec, replicated),
                       out_shardings=(state_spec, knob_spec), donate_argnums=(0, 1))

    def _build_relayout(self, batch: int, old_len: int, new_batch: int, cache_len: int):
        state_spec, knob_spec = self._state_spec(batch, old_len)
        new_state_spec, new_knob_spec = self._state_spec(new_batch, cache_len)
        replicated = NamedSharding(self.mesh, PartitionSpec())

        def relayout(state: DecodeState, knobs: RowKnobs, row_map: jax.Array, start: jax.Array):
            kept = row_map >= 0
            sources = jnp.maximum(row_map, 0)
            slots = start + jnp.arange(cache_len)
            in_window = (slots >= 0) & (slots < old_len)
            slots = jnp.clip(slots, 0, old_len - 1)

            def move(x: jax.Array, axes: tuple[str, ...]) -> jax.Array:
                rows_axis, slots_axis = axes.index("act_batch"), axes.index("cache_length")
                x = jnp.take(jnp.take(x, sources, axis=rows_axis), slots, axis=slots_axis)
                mask = _along(kept, rows_axis, x.ndim) & _along(in_window, slots_axis, x.ndim)
                return jnp.where(mask, x, jnp.zeros((), x.dtype))

            def rows(x: jax.Array, empty) -> jax.Array:
                return jnp.where(_along(kept, 0, x.ndim), jnp.take(x, sources, axis=0), jnp.asarray(empty, x.dtype))

            cache = KVCache(layers=jax.tree.map(lambda x: move(x, KV_AXES), state.cache.layers),
                            segment_ids=move(state.cache.segment_ids, SEGMENT_AXES), end=state.cache.end - start)
            new_state = DecodeState(cache=cache, **{name: rows(getattr(state, name), empty) for name, empty in EMPTY_ROW.items()})
            new_knobs = RowKnobs(**{name: rows(getattr(knobs, name), empty) for name, empty in EMPTY_KNOBS.items()})
            return new_state, new_knobs

        same_shapes = (new_batch, cache_len) == (batch, old_len)  # else the old buffers cannot be reused
        return jax.jit(relayout, in_shardings=(state_spec, knob_spec, replicated, replicated),
                       out_shardings=(new_state_spec, new_knob_spec), donate_argnums=(0, 1) if same_shapes else ())


def _scatter_rows(big: jax.Array, rows: jax.Array, targets: jax.Array, axis: int) -> jax.Array:
    """`big` with its rows `targets` (along `axis`) replaced by `rows`; out-of-range targets are dropped."""
    index = (slice(None),) * axis + (targets,)
    return big.at[index].set(rows.astype(big.dtype), mode="drop")


def _along(mask: jax.Array, axis: int, ndim: int) -> jax.Array:
    """A 1-D mask shaped to broadcast along `axis` of an ndim array."""
    return mask.reshape((1,) * axis + (-1,) + (1,) * (ndim - axis - 1))


def cache_slots(cache: KVCache) -> int:
    """The number of slots of a cache (its length axis)."""
    return cache.segment_ids.shape[SEGMENT_AXES.index("cache_length")]


def _to_host(x: jax.Array) -> np.ndarray:
    """The whole array on this host; on several hosts (each holding only its shards) a gather."""
    if x.is_fully_addressable:
        return np.asarray(x)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _shapes(state: nnx.State):
    return jax.tree.map(lambda x: (tuple(np.shape(x)), jnp.result_type(x)), state)


__all__ = ["MODES", "Completion", "Decoded", "Prefilled", "Sampler", "SamplingParams", "cache_slots", "choose_tokens",
           "sampling_mode"]
