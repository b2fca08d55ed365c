"""Trajectories -> tokenized, weighted training examples (RLAO, DESIGN section 1).

As in the paper, only candidates with a valid workflow that passed its check become examples (the
others stay in the trajectories and the journal; `rlao.keep_invalid` trains on them too). Each
becomes one example: prompt = the context that produced its reply (the turn's state, then for a
repaired reply the repair branch), target = its `reply`, tokenized through the meta-agent's chat
template, loss on the reply's tokens only, weight w = exp(reward / tau). Prompts too long for the
sequence are cut from the left of the history (earliest action/feedback pairs first; system and
first user message always stay), then the reply's end. Every record left out and every cut is
counted in a `DataReport`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from w4s_jax.config_errors import ConfigError
from w4s_jax.rlao.settings import WeightConfig
from w4s_jax.trajectory import Trajectory


class NothingToTrain(ConfigError):
    """No record may become an example (rlao.keep_invalid False and none valid and checked): callers
    that train round after round stop or skip on it instead of reading the data a second time."""


class TrainingTokenizer(Protocol):
    """The part of `ChatTokenizer` (docs/interfaces.md) the trainer needs."""

    def encode_training_pair(self, prompt_messages: Sequence[dict[str, str]], reply: str) -> tuple[list[int], list[int]]: ...


def example_weights(rewards: Sequence[float], config: WeightConfig) -> np.ndarray:
    """Per-example weights (float64) over the whole dataset, the same on every host."""
    if config.mode == "uniform":
        return np.ones(len(rewards), np.float64)
    weights = np.exp(np.asarray(rewards, np.float64) / config.tau)
    if config.mode == "clip":
        weights = np.minimum(weights, config.max_weight)
    elif config.mode == "normalize" and weights.size:
        weights = weights / weights.mean()
    return weights


@dataclasses.dataclass(frozen=True)
class Example:
    """One tokenized conversation; `loss_mask` is 1 on the target (reply) tokens."""

    ids: np.ndarray  # int32 [n]
    loss_mask: np.ndarray  # int32 [n]
    weight: float
    source: str
    group: str  # the turn it was sampled at: shared-prefix packing looks for common prompts within a group


@dataclasses.dataclass
class DataReport:
    """What was left out or cut on the way from records to examples; printed and logged, so nothing
    is lost silently."""

    max_len: int
    keep_invalid: bool = False  # True: the two kinds below were trained on; False: left out
    records: int = 0
    invalid_actions: int = 0  # records with no python block defining solver
    check_failures: int = 0  # records whose workflow failed its check after the last repair
    examples: int = 0
    history_truncated: int = 0
    pairs_dropped: int = 0
    target_truncated: int = 0
    dropped_no_room: int = 0
    dropped_sources: list[str] = dataclasses.field(default_factory=list)

    @property
    def left_out(self) -> int:
        """Records that did not become examples because of what they are (not their length)."""
        return 0 if self.keep_invalid else self.invalid_actions + self.check_failures

    def summary(self) -> str:
        fate = "kept: rlao.keep_invalid" if self.keep_invalid else "left out"
        return (
            f"{self.examples} examples from {self.records} records ({self.invalid_actions} invalid actions and "
            f"{self.check_failures} check failures {fate}; max_len {self.max_len}): {self.history_truncated} "
            f"with history cut ({self.pairs_dropped} message pairs dropped), {self.target_truncated} with the "
            f"reply's end cut, {self.dropped_no_room} dropped because system + first user message leave no room "
            "for the reply"
        )

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "dropped_sources"} | {
            "left_out": self.left_out, "dropped_sources": self.dropped_sources[:20]
        }


def select_records(records: Sequence[Trajectory], keep_invalid: bool, report: DataReport) -> list[Trajectory]:
    """The records that become examples (all with keep_invalid); counts the others in `report` by reason."""
    report.records = len(records)
    report.keep_invalid = keep_invalid
    report.invalid_actions = sum(not r.valid_action for r in records)
    report.check_failures = sum(r.valid_action and r.check_failed for r in records)
    kept = list(records) if keep_invalid else [r for r in records if r.trainable]
    if not kept:
        raise NothingToTrain(
            f"rlao.keep_invalid: none of the {len(records)} records is a valid workflow that passed its check "
            f"({report.invalid_actions} invalid actions, {report.check_failures} check failures), so there is "
            "nothing to train on; collect more, or set rlao.keep_invalid=True to train on them anyway"
        )
    return kept


def _head_length(messages: Sequence[dict[str, str]]) -> int:
    """Messages kept whatever the length: up to and including the first user message."""
    first_user = next(i for i, m in enumerate(messages) if m["role"] == "user")
    return first_user + 1


def _fit(
    record: Trajectory, tokenizer: TrainingTokenizer, max_len: int, report: DataReport
) -> tuple[list[int], list[int]] | None:
    """Encodes one record into at most `max_len` tokens, cutting history, then the reply's end."""
    messages = list(record.prompt_messages)
    head = _head_length(messages)
    ids, mask = tokenizer.encode_training_pair(messages, record.reply)
    dropped_pairs = 0
    while len(ids) > max_len and len(messages) > head:
        # History after the head alternates (action, feedback), then (failed reply, repair request):
        # drop the earliest pair so the structure stays intact; at worst only system + first user remain.
        del messages[head : head + 2]
        dropped_pairs += 1
        ids, mask = tokenizer.encode_training_pair(messages, record.reply)
    if dropped_pairs:
        report.history_truncated += 1
        report.pairs_dropped += dropped_pairs
    if len(ids) > max_len:
        ids, mask = ids[:max_len], mask[:max_len]
        if not any(mask):
            report.dropped_no_room += 1
            report.dropped_sources.append(record.source)
            return None
        report.target_truncated += 1
    return ids, mask


def turn_group(record: Trajectory) -> str:
    """File, run, task, episode and turn: the candidates sampled from one state."""
    file = record.source.rsplit(":", 1)[0]
    return f"{file}|{record.run}|{record.task}|{record.episode}|{record.turn}"


def build_examples(
    records: Sequence[Trajectory], tokenizer: TrainingTokenizer, max_len: int, weights: WeightConfig,
    keep_invalid: bool = False,
) -> tuple[list[Example], DataReport]:
    """Tokenized, length-fitted, weighted examples and the report of what was left out or cut."""
    report = DataReport(max_len=max_len)
    fitted: list[tuple[list[int], list[int], Trajectory]] = []
    for record in select_records(records, keep_invalid, report):
        encoded = _fit(record, tokenizer, max_len, report)
        if encoded is not None:
            fitted.append((*encoded, record))
    if not fitted:
        raise ConfigError(
            f"train.seq_len: no trajectory fits in {max_len} tokens (system + first user message too long "
            f"in all {report.records - report.left_out} records kept); raise train.seq_len"
        )
    example_w = example_weights([r.reward for _, _, r in fitted], weights)
    examples = [
        Example(np.asarray(ids, np.int32), np.asarray(mask, np.int32), float(w), record.source, turn_group(record))
        for (ids, mask, record), w in zip(fitted, example_w)
    ]
    report.examples = len(examples)
    return examples, report
