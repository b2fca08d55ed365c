"""The grain input pipeline: examples -> units -> shuffled, packed, per-host batches -> global jax.Arrays.

Examples are shifted once on the host (inputs = ids[:-1], targets = ids[1:]) and carry two per-token
features that make the RLAO loss a plain sum over tokens, so packing and gradient accumulation need no
bookkeeping of example boundaries inside the step:
  target_scale   = loss_mask / (target tokens of the example)  -> sums to 1 over each example
  example_weight = w_e on every token of the example
so  sum(example_weight * target_scale * nll) = sum_e w_e * mean_token_nll_e,  and
    sum(target_scale) = the number of examples.
With `shared_prefix`, the examples of one turn become one unit that holds their common prompt once
(`w4s_jax.rlao.shared_prefix`: positions and branch ids per token); otherwise each example is a unit.
Units are first-fit packed into rows (segment ids per unit). Batches have shape
[micro_batches, rows, seq_len]; rows are sharded over (data, fsdp).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import grain
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from w4s_jax.config_errors import ConfigError
from w4s_jax.rlao.examples import Example
from w4s_jax.rlao.shared_prefix import UNIT_FEATURES, build_units

BATCH_KEYS = ("inputs", "targets", "positions", "segment_ids", "branch_ids", "target_scale", "example_weight")
BATCH_AXES = ("data", "fsdp")


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    seq_len: int
    global_batch: int  # packed rows per optimizer step, all hosts together
    micro_batches: int = 1
    seed: int = 0
    packing_bins: int = 0  # 0 = rows per host per step
    shared_prefix: bool = True  # one unit per turn with its common prompt once (module doc)

    def local_rows(self, process_count: int) -> int:
        rows, rest = divmod(self.global_batch, process_count)
        if rest or rows % self.micro_batches:
            raise ConfigError(
                f"train.global_batch: {self.global_batch} must divide into {process_count} hosts x "
                f"train.micro_batches={self.micro_batches} equal parts"
            )
        return rows


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """[micro_batches, rows, seq_len]: rows over data and fsdp, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec(None, BATCH_AXES, None))


def build_dataset(examples: Sequence[Example], config: PipelineConfig) -> grain.IterDataset:
    """Units -> per-host shard -> seeded shuffle (new order each epoch) -> repeat -> first-fit packing -> batch."""
    too_long = [e.source for e in examples if len(e.ids) - 1 > config.seq_len]
    if too_long:
        raise ValueError(f"{len(too_long)} examples exceed seq_len {config.seq_len} (first: {too_long[0]})")
    units, _ = build_units(examples, config.seq_len, config.shared_prefix)
    shard = grain.sharding.ShardByJaxProcess(drop_remainder=True)
    if len(units) < shard.shard_count:
        raise ConfigError(f"train.data: {len(units)} packing units ({len(examples)} examples) cannot feed {shard.shard_count} hosts")
    rows = config.local_rows(shard.shard_count)
    dataset = grain.MapDataset.source(units)
    dataset = dataset[shard.shard_index :: shard.shard_count]
    dataset = dataset.shuffle(seed=config.seed).repeat(None).to_iter_dataset()
    dataset = grain.experimental.FirstFitPackIterDataset(
        dataset,
        length_struct={name: config.seq_len for name in UNIT_FEATURES},
        num_packing_bins=config.packing_bins or rows,
        seed=config.seed,
        shuffle_bins=True,
    )
    return dataset.map(_rename).batch(rows, drop_remainder=True)


def _rename(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The units' own features plus one copy of the packer's segment ids (one per unit in a row)."""
    out = {name: packed[name] for name in UNIT_FEATURES}
    out["segment_ids"] = packed["inputs_segment_ids"].astype(np.int32)
    return out


def attention_pairs(segment_ids: np.ndarray, branch_ids: np.ndarray) -> int:
    """(query, key) pairs the batch attends over under the attention rule (for MFU): per segment,
    n0(n0+1)/2 on its trunk and, per branch of nb tokens, nb(nb+1)/2 + nb * n0."""
    total = 0
    rows = zip(segment_ids.reshape(-1, segment_ids.shape[-1]), branch_ids.reshape(-1, branch_ids.shape[-1]))
    for segments, branches in rows:
        for segment in np.unique(segments[segments > 0]):
            counts = np.bincount(branches[segments == segment])
            trunk, own = int(counts[0]), counts[1:].astype(np.int64)
            total += trunk * (trunk + 1) // 2 + int((own * (own + 1) // 2 + own * trunk).sum())
    return total


class GlobalBatches:
    """Iterates global batches; its grain iterator state goes into every checkpoint."""

    def __init__(self, dataset: grain.IterDataset, config: PipelineConfig, mesh: Mesh):
        self._iterator = iter(dataset)
        self._config = config
        self._sharding = batch_sharding(mesh)

    @property
    def iterator(self) -> grain.DatasetIterator:
        """The grain iterator (what the checkpoint saves and restores)."""
        return self._iterator

    def next_local(self) -> dict[str, np.ndarray]:
        """This host's rows, shaped [micro_batches, rows / micro_batches, seq_len]."""
        batch = next(self._iterator)
        m = self._config.micro_batches
        return {k: v.reshape(m, v.shape[0] // m, *v.shape[1:]) for k, v in batch.items()}

    def to_global(self, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        return place_batch(local, self._sharding)


def place_batch(local: dict[str, np.ndarray], sharding: NamedSharding) -> dict[str, jax.Array]:
    """Places host-local rows as one global array per feature (rows concatenated over hosts)."""
    processes = jax.process_count()
    out = {}
    for key in BATCH_KEYS:
        value = local[key]
        global_shape = (value.shape[0], value.shape[1] * processes, *value.shape[2:])
        out[key] = jax.make_array_from_process_local_data(sharding, value, global_shape)
    return out
