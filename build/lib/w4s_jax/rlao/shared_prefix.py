"""Shared-prefix packing: the examples of one W4S turn carry their common prompt once.

All m candidates of a turn are sampled from one state, so their examples share a long token prefix
(the prompt: about 1,600 tokens in the demo) and differ in the reply (about 250). A *unit* holds a
group's shared prefix once (the trunk, branch id 0), then each example's own rest (branch 1, 2, ...),
with each branch's positions continuing from the trunk's end. The decoder's branch rule lets a branch
see the trunk and itself only, so every position's hidden state, and so the loss, is that of its
example alone.

The trunk ends at the first position where the group's inputs differ or where any example scores a
target: a trunk position is then one shared input whose output no example scores, and every scored
position lies in exactly one branch, with its example's target, scale and weight. Anything after the
common prefix, scored or not (a repaired candidate's longer prompt: its failed attempt and the error
feedback), lands in that example's branch. A unit that would exceed `seq_len` is split into several,
each with its own trunk. Without sharing, every example is a unit of its own (one branch: the trunk).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from w4s_jax.rlao.examples import Example

# Per-token features of a unit; the packer adds the segment ids of the units it puts in a row.
UNIT_FEATURES = ("inputs", "targets", "positions", "branch_ids", "target_scale", "example_weight")


def example_features(example: Example) -> dict[str, np.ndarray]:
    """The shifted per-token features of one example (see `w4s_jax.rlao.pipeline`'s module doc)."""
    ids, mask = example.ids, example.loss_mask
    target_mask = mask[1:].astype(np.float32)
    n_targets = float(target_mask.sum())
    if n_targets == 0:
        raise ValueError(f"{example.source}: example has no target tokens after the shift")
    return {
        "inputs": ids[:-1].astype(np.int32),
        "targets": ids[1:].astype(np.int32),
        "target_scale": (target_mask / n_targets).astype(np.float32),
        "example_weight": np.full(len(ids) - 1, example.weight, np.float32),
    }


def trunk_length(group: Sequence[dict[str, np.ndarray]]) -> int:
    """Leading positions with the same input in every example and a scored target in none."""
    n = min(len(f["inputs"]) for f in group)
    inputs = np.stack([f["inputs"][:n] for f in group])
    scored = np.stack([f["target_scale"][:n] > 0 for f in group]).any(axis=0)
    shared = np.all(inputs == inputs[0], axis=0) & ~scored
    return n if shared.all() else int(np.argmin(shared))


def unit_length(group: Sequence[dict[str, np.ndarray]]) -> int:
    if len(group) == 1:
        return len(group[0]["inputs"])
    trunk = trunk_length(group)
    return trunk + sum(len(f["inputs"]) - trunk for f in group)


def pack_unit(group: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One example: itself on the trunk. Several: the trunk once, then each one's rest as a branch."""
    if len(group) == 1:
        n = len(group[0]["inputs"])
        return group[0] | {"positions": np.arange(n, dtype=np.int32), "branch_ids": np.zeros(n, np.int32)}
    trunk = trunk_length(group)
    parts = [{
        "inputs": group[0]["inputs"][:trunk],
        "targets": group[0]["targets"][:trunk],
        "positions": np.arange(trunk, dtype=np.int32),
        "branch_ids": np.zeros(trunk, np.int32),
        "target_scale": np.zeros(trunk, np.float32),
        "example_weight": np.zeros(trunk, np.float32),
    }]  # fmt: skip
    for branch, features in enumerate(group, start=1):
        n = len(features["inputs"])
        parts.append({
            "inputs": features["inputs"][trunk:],
            "targets": features["targets"][trunk:],
            "positions": np.arange(trunk, n, dtype=np.int32),
            "branch_ids": np.full(n - trunk, branch, np.int32),
            "target_scale": features["target_scale"][trunk:],
            "example_weight": features["example_weight"][trunk:],
        })  # fmt: skip
    return {name: np.concatenate([part[name] for part in parts]) for name in UNIT_FEATURES}


def _split_to_fit(group: list[dict[str, np.ndarray]], seq_len: int) -> list[list[dict[str, np.ndarray]]]:
    """Consecutive sub-groups whose units fit `seq_len` (every example alone fits)."""
    pieces: list[list[dict[str, np.ndarray]]] = [[]]
    for features in group:
        if pieces[-1] and unit_length([*pieces[-1], features]) > seq_len:
            pieces.append([])
        pieces[-1].append(features)
    return pieces


@dataclasses.dataclass(frozen=True)
class PackingReport:
    """Tokens one epoch feeds the model with and without shared prefixes."""

    examples: int
    units: int
    example_tokens: int  # sum over examples of their (shifted) length
    unit_tokens: int  # sum over units of their length: what an epoch costs

    def summary(self) -> str:
        return (
            f"shared-prefix packing: {self.examples} examples in {self.units} units, "
            f"{self.example_tokens} -> {self.unit_tokens} tokens per epoch "
            f"({self.example_tokens / max(self.unit_tokens, 1):.2f}x fewer)"
        )


def build_units(
    examples: Sequence[Example], seq_len: int, shared_prefix: bool
) -> tuple[list[dict[str, np.ndarray]], PackingReport]:
    """The units an epoch is made of (module doc) and the token counts with and without sharing."""
    features = [example_features(e) for e in examples]
    if shared_prefix:
        groups: dict[str, list[dict[str, np.ndarray]]] = {}
        for example, f in zip(examples, features):
            groups.setdefault(example.group, []).append(f)
        units = [pack_unit(piece) for group in groups.values() for piece in _split_to_fit(group, seq_len)]
    else:
        units = [pack_unit([f]) for f in features]
    report = PackingReport(
        examples=len(examples),
        units=len(units),
        example_tokens=sum(len(f["inputs"]) for f in features),
        unit_tokens=sum(len(u["inputs"]) for u in units),
    )
    return units, report
