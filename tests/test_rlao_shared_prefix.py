"""Shared-prefix packing: units rebuild every example, save the shared prompt's tokens, and give the
train step the same loss and update as one example per segment (full fine-tuning and LoRA, meshes)."""

import json

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from w4s_jax.models import get_preset, load_model
from w4s_jax.parallel.mesh import make_mesh
from w4s_jax.rlao.examples import WeightConfig, build_examples
from w4s_jax.rlao.pipeline import (
    BATCH_AXES,
    BATCH_KEYS,
    PipelineConfig,
    attention_pairs,
    build_dataset,
    place_batch,
)
from w4s_jax.rlao.settings import LoraConfig, OptimizerConfig, StepConfig
from w4s_jax.rlao.shared_prefix import build_units, example_features
from w4s_jax.rlao.train_step import TrainProgram
from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer
from w4s_jax.trajectory import read_trajectories

SEQ, ROWS, LR = 1024, 8, 1e-3
CANDIDATES = (("vote over three calls", 1.0), ("guess", 0.0), ("ask twice and compare", 0.5))


def write_turns(path, turns=2):
    """Per turn: three candidates from one state, and a repaired one whose prompt also holds its
    failed first attempt and the error feedback (the repair branch)."""
    lines = []
    for turn in range(turns):
        messages = [
            {"role": "system", "content": "You write workflows for a strong executor. " * 2},
            {"role": "user", "content": f"Turn {turn}: improve the solver for grade-school maths. " * 3},
        ]
        replies = [(f"Plan: {a}.\n```python\ndef solver(agent, task):\n    return {{'answer': '{a}'}}\n```", r)
                   for a, r in CANDIDATES]  # fmt: skip
        records = [(messages, reply, reward) for reply, reward in replies]
        repair = [*messages, {"role": "assistant", "content": "def solver(agent, task): retur"},
                  {"role": "user", "content": "SyntaxError at line 1; fix it."}]  # fmt: skip
        records.append((repair, "def solver(agent, task):\n    return {'answer': '1'}", -0.1))
        for candidate, (state, reply, reward) in enumerate(records):
            lines.append({
                "schema": "w4s-trajectory/1", "run": "shared", "task": "gsm8k", "episode": 0, "turn": turn,
                "candidate": candidate, "messages": state, "reply": reply, "reward": reward, "val_score": 0.5,
                "valid_action": True, "selected": candidate == 0,
            })  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    path = write_turns(tmp_path_factory.mktemp("shared_prefix") / "trajectories.jsonl")
    return build_examples(read_trajectories(str(path)), ByteChatTokenizer(), SEQ, WeightConfig())[0]


def test_units_rebuild_every_example_and_share_the_prompt(examples):
    units, report = build_units(examples, SEQ, shared_prefix=True)
    assert report.units == len(units) == 2 and report.examples == len(examples) == 8
    assert report.unit_tokens == sum(len(u["inputs"]) for u in units) < report.example_tokens
    rebuilt = []
    for unit in units:
        trunk = unit["branch_ids"] == 0
        assert not unit["target_scale"][trunk].any()  # no example scores a trunk position
        for branch in range(1, unit["branch_ids"].max() + 1):
            own = unit["branch_ids"] == branch
            rebuilt.append({k: np.concatenate([unit[k][trunk], unit[k][own]]) for k in unit})
    assert len(rebuilt) == len(examples)
    for example, got in zip(examples, rebuilt):
        expected = example_features(example)
        np.testing.assert_array_equal(got["inputs"], expected["inputs"])
        np.testing.assert_array_equal(got["positions"], np.arange(len(expected["inputs"])))
        own = got["branch_ids"] > 0
        for key in ("targets", "target_scale", "example_weight"):
            np.testing.assert_array_equal(got[key][own], expected[key][own])
        np.testing.assert_array_equal(got["target_scale"][~own], expected["target_scale"][~own])  # zeros
    # The repaired candidate's branch starts with prompt tokens (its failed attempt and the feedback).
    repaired = units[0]["branch_ids"] == 4
    assert not units[0]["target_scale"][repaired][:20].any() and units[0]["target_scale"][repaired].any()
    assert "SyntaxError" in ByteChatTokenizer().decode(units[0]["inputs"][repaired])
    # The trunk holds the shared prompt: the prompt of a plain candidate ends in its branch's first token.
    trunk_length = int((units[0]["branch_ids"] == 0).sum())
    first_target = int(np.argmax(example_features(examples[0])["target_scale"] > 0))
    assert 0 < trunk_length <= first_target

    plain, plain_report = build_units(examples, SEQ, shared_prefix=False)
    assert len(plain) == 8 and plain_report.unit_tokens == plain_report.example_tokens == report.example_tokens
    assert "fewer" in report.summary()


def test_groups_too_long_for_a_row_split_into_units_that_fit(examples):
    seq_len = max(len(e.ids) for e in examples) + 60  # a trunk + one branch fits, not all four
    units, report = build_units(examples, seq_len, shared_prefix=True)
    assert all(len(u["inputs"]) <= seq_len for u in units) and report.units > 2
    assert sum(int(u["branch_ids"].max()) or 1 for u in units) == len(examples)
    config = PipelineConfig(seq_len=seq_len, global_batch=2, seed=1)
    batch = next(iter(build_dataset(examples, config)))
    assert batch["branch_ids"].shape == batch["positions"].shape == (2, seq_len)


def test_attention_pairs_follow_the_branch_rule():
    segments = np.array([[1, 1, 1, 1, 1, 2, 2, 0]])
    branches = np.array([[0, 0, 1, 1, 2, 0, 0, 0]])
    # Segment 1: trunk 2 -> 3 pairs; branch 1 (2 tokens) -> 3 + 4; branch 2 (1 token) -> 1 + 2. Segment 2: 3.
    assert attention_pairs(segments, branches) == 3 + 7 + 3 + 3


def hand_packed(units):
    """Units placed one after another into ROWS rows of SEQ tokens (segment id per unit in its row)."""
    batch = {k: np.zeros((ROWS, SEQ), np.float32 if k in ("target_scale", "example_weight") else np.int32)
             for k in BATCH_KEYS}  # fmt: skip
    row, start, segment = 0, 0, 0
    for unit in units:
        n = len(unit["inputs"])
        if start + n > SEQ:
            row, start, segment = row + 1, 0, 0
        segment += 1
        for key, value in unit.items():
            batch[key][row, start : start + n] = value
        batch["segment_ids"][row, start : start + n] = segment
        start += n
    assert row < ROWS
    return {k: v[None] for k, v in batch.items()}


@pytest.mark.parametrize(
    ("mesh_shape", "lora"),
    [((1, 1, 1), None), ((8, 1, 1), None), ((2, 2, 2), None), ((2, 2, 2), LoraConfig(rank=4, alpha=8.0))],
)  # fmt: skip
def test_shared_prefix_step_equals_one_example_per_segment(examples, mesh_shape, lora):
    mesh = make_mesh(*mesh_shape, devices=jax.devices()[: int(np.prod(mesh_shape))])
    optimizer = OptimizerConfig(learning_rate=LR, warmup_steps=0, total_steps=1000, clip_norm=1.0, eps=1e-3)
    program = TrainProgram(get_preset("tiny"), mesh, optimizer, StepConfig(logits_chunk=256, lora=lora))
    _, model = load_model("tiny", "", mesh=mesh, seed=0)
    from flax import nnx

    params = nnx.to_pure_dict(nnx.state(model))
    sharding = NamedSharding(mesh, PartitionSpec(None, BATCH_AXES, None))
    results = {}
    for shared in (False, True):
        units, _ = build_units(examples, SEQ, shared_prefix=shared)
        state, frozen = program.init_state(jax.tree.map(lambda x: x.copy(), params), seed=0)
        with jax.set_mesh(mesh):
            state, metrics = program.step(state, frozen, place_batch(hand_packed(units), sharding))
        results[shared] = (jax.device_get(metrics), jax.device_get(program.merged_params(state, frozen)))
    (alone, alone_params), (packed, packed_params) = results[False], results[True]
    assert float(packed["tokens"]) < float(alone["tokens"])
    for key in ("examples", "target_tokens"):
        assert float(packed[key]) == float(alone[key])
    for key in ("loss", "nll", "mean_weight", "grad_norm"):
        np.testing.assert_allclose(float(packed[key]), float(alone[key]), rtol=1e-5, err_msg=key)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), packed_params, alone_params)
