"""RLAO data: trajectory validation, example building (weights, truncation) and the packing pipeline."""

import json

import numpy as np
import pytest

from w4s_jax.config_errors import ConfigError
from w4s_jax.rlao.examples import Example, WeightConfig, build_examples, example_weights
from w4s_jax.rlao.pipeline import PipelineConfig, build_dataset
from w4s_jax.rlao.shared_prefix import example_features
from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer
from w4s_jax.trajectory import TrajectoryFormatError, read_trajectories, read_trajectory_file


def _record(**changes):
    record = {
        "schema": "w4s-trajectory/1", "run": "r", "task": "gsm8k", "episode": 0, "turn": 1, "candidate": 0,
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "task"}],
        "reply": "def solver(agent, task): ...", "reward": 0.5, "val_score": 0.4, "valid_action": True,
        "selected": False,
    }  # fmt: skip
    record.update(changes)
    return record


def _write(path, lines):
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_reads_fixture(rlao_trajectories):
    records = read_trajectories(str(rlao_trajectories))
    assert len(records) == 16 and {r.reward for r in records} == {0.0, 1.0}
    assert records[0].source == f"{rlao_trajectories}:1"
    assert read_trajectories([str(rlao_trajectories.parent)])[3].reply == records[3].reply  # a directory


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("{not json", "<json>"),
        ('["a list"]', "<record>"),
        (_record(schema="w4s-trajectory/0"), "schema"),
        (_record(reward="high"), "reward"),
        (_record(reward=float("nan")), "reward"),
        (_record(episode=1.5), "episode"),
        (_record(valid_action=1), "valid_action"),
        ({k: v for k, v in _record().items() if k != "reply"}, "reply"),
        (_record(messages=[]), "messages"),
        (_record(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
        (_record(messages=[{"role": "user", "content": 3}]), "messages[0].content"),
        (_record(messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]), "messages"),
        (_record(repair_branch={"role": "user"}), "repair_branch"),
        (_record(repair_branch=[{"role": "user", "content": "fix it"}]), "repair_branch"),
        (_record(repair_branch=[{"role": "assistant", "content": "a"}]), "repair_branch"),
        (_record(repair_branch=[{"role": "assistant", "content": 5}, {"role": "user", "content": "x"}]),
         "repair_branch[0].content"),
        (_record(check_failed="yes"), "check_failed"),
    ],
)
def test_malformed_record_names_file_line_and_field(tmp_path, line, field):
    path = _write(tmp_path / "bad.jsonl", [_record(), "", line])
    with pytest.raises(TrajectoryFormatError) as error:
        read_trajectory_file(path)
    assert f"{path}:3: field '{field}'" in str(error.value)


def test_empty_and_missing_files_are_errors(tmp_path):
    empty = _write(tmp_path / "empty.jsonl", ["", "  "])
    with pytest.raises(TrajectoryFormatError, match=r"empty\.jsonl:1: .*no trajectories"):
        read_trajectory_file(empty)
    with pytest.raises(TrajectoryFormatError, match="not found"):
        read_trajectory_file(tmp_path / "missing.jsonl")


def test_weight_modes():
    rewards = [1.0, 0.5, 0.0, -0.1]
    raw = example_weights(rewards, WeightConfig(tau=0.4))
    np.testing.assert_allclose(raw, np.exp(np.asarray(rewards) / 0.4))
    np.testing.assert_allclose(example_weights(rewards, WeightConfig(mode="clip", max_weight=2.0)), np.minimum(raw, 2.0))
    np.testing.assert_allclose(example_weights(rewards, WeightConfig(mode="normalize")), raw / raw.mean())
    np.testing.assert_array_equal(example_weights(rewards, WeightConfig(mode="uniform")), np.ones(4))  # plain SFT
    with pytest.raises(ConfigError, match=r"rlao\.weight_mode"):
        WeightConfig(mode="equal")
    with pytest.raises(ConfigError, match=r"rlao\.tau"):
        WeightConfig(tau=0.0)
    with pytest.raises(ConfigError, match=r"rlao\.max_weight"):
        WeightConfig(mode="clip")


def test_examples_mask_only_the_reply(rlao_trajectories):
    tokenizer = ByteChatTokenizer()
    records = read_trajectories(str(rlao_trajectories))
    examples, report = build_examples(records, tokenizer, 4096, WeightConfig())
    assert report.examples == 16 and report.history_truncated == report.dropped_no_room == 0
    ex = examples[0]
    assert tokenizer.decode(ex.ids[ex.loss_mask == 1]) == records[0].reply
    assert ex.ids[-1] == tokenizer.eos_token_ids[0] and ex.loss_mask[-1] == 1
    assert ex.weight == pytest.approx(np.exp(1.0 / 0.4))


def test_long_prompts_lose_early_history_first_then_the_reply_end(tmp_path):
    tokenizer = ByteChatTokenizer()
    head = [{"role": "system", "content": "S" * 20}, {"role": "user", "content": "U" * 20}]
    pairs = [m for i in range(3) for m in ({"role": "assistant", "content": f"A{i}" * 30}, {"role": "user", "content": f"F{i}" * 30})]
    path = _write(tmp_path / "long.jsonl", [
        _record(messages=head + pairs, reply="R" * 40),  # fits after dropping 2 of its 3 pairs
        _record(messages=head + pairs, reply="R" * 400),  # needs all pairs dropped and the reply cut
        _record(messages=[head[0], {"role": "user", "content": "U" * 400}], reply="R"),  # no room at all
    ])  # fmt: skip
    records = read_trajectories(str(path))
    budget = len(tokenizer.encode_training_pair(head + pairs[4:], "R" * 40)[0])
    examples, report = build_examples(records, tokenizer, budget, WeightConfig())
    assert [len(e.ids) for e in examples] == [budget, budget]
    kept = tokenizer.decode(examples[0].ids)
    assert "A2" in kept and "F2" in kept and "A1" not in kept and "A0" not in kept and "S" * 20 in kept and "U" * 20 in kept
    assert tokenizer.decode(examples[0].ids[examples[0].loss_mask == 1]) == "R" * 40
    assert "A2" not in tokenizer.decode(examples[1].ids) and examples[1].loss_mask.sum() > 0
    assert report.history_truncated == 2 and report.pairs_dropped == 2 + 3
    assert report.target_truncated == 1 and report.dropped_no_room == 1
    assert report.dropped_sources == [f"{path}:3"]
    assert "1 dropped" in report.summary()


def test_packing_keeps_every_example_intact():
    rng = np.random.default_rng(0)
    examples = []
    for i in range(10):
        n = int(rng.integers(4, 20))
        ids = rng.integers(3, 250, size=n).astype(np.int32)
        mask = np.zeros(n, np.int32)
        mask[n // 2 :] = 1
        examples.append(Example(ids, mask, float(i + 1), f"ex{i}", group=f"ex{i}"))
    config = PipelineConfig(seq_len=32, global_batch=4, micro_batches=2, seed=3)
    iterator = iter(build_dataset(examples, config))
    expected = {tuple(example_features(e)["inputs"]): example_features(e) for e in examples}
    seen = []
    while len(seen) < len(examples):
        batch = next(iterator)
        assert batch["inputs"].shape == (4, 32)
        for row in range(4):
            segments = batch["segment_ids"][row]
            for seg in np.unique(segments[segments > 0]):
                where = segments == seg
                key = tuple(batch["inputs"][row][where])
                features = expected[key]
                np.testing.assert_array_equal(batch["positions"][row][where], np.arange(where.sum()))
                for name in ("targets", "target_scale", "example_weight"):
                    np.testing.assert_array_equal(batch[name][row][where], features[name])
                seen.append(key)
            assert not batch["target_scale"][row][segments == 0].any()
    assert set(seen[: len(examples)]) <= set(expected)
    assert len(set(seen)) == len(examples)  # the first epoch's elements all come out


STATE = [{"role": "system", "content": "sys"}, {"role": "user", "content": "task"}]
BRANCH = [{"role": "assistant", "content": "broken workflow"}, {"role": "user", "content": "it failed: fix it"}]


def _candidates(tmp_path):
    """One turn's candidates as the loop writes them: fine, repaired, invalid, check failed."""
    return read_trajectories(str(_write(tmp_path / "turn.jsonl", [
        _record(candidate=0, reply="fine", reward=0.5, check_failed=False, repair_branch=[]),
        _record(candidate=1, reply="repaired", reward=1.0, check_failed=False, repair_branch=BRANCH, repairs=1),
        _record(candidate=2, reply="no code", reward=-0.2, valid_action=False, val_score=None,
                note="invalid action: no fenced python block in the reply"),
        _record(candidate=3, reply="still broken", reward=-0.1, val_score=0.0, check_failed=True,
                repair_branch=[], repairs=1, note="check failed after 1 repairs: NameError: x"),
    ])))


def test_invalid_and_check_failed_candidates_are_left_out_by_default(tmp_path):
    tokenizer = ByteChatTokenizer()
    records = _candidates(tmp_path)
    assert [(r.valid_action, r.check_failed, r.trainable) for r in records] == [
        (True, False, True), (True, False, True), (False, False, False), (True, True, False)]
    examples, report = build_examples(records, tokenizer, 4096, WeightConfig())
    targets = [tokenizer.decode(e.ids[e.loss_mask == 1]) for e in examples]
    assert targets == ["fine", "repaired"]
    assert (report.records, report.invalid_actions, report.check_failures, report.left_out, report.examples) == (
        4, 1, 1, 2, 2)
    assert "1 invalid actions and 1 check failures left out" in report.summary()
    assert report.to_dict()["left_out"] == 2 and not report.to_dict()["keep_invalid"]

    kept, report = build_examples(records, tokenizer, 4096, WeightConfig(), keep_invalid=True)
    assert [tokenizer.decode(e.ids[e.loss_mask == 1]) for e in kept] == ["fine", "repaired", "no code", "still broken"]
    assert (report.invalid_actions, report.check_failures, report.left_out, report.examples) == (1, 1, 0, 4)
    assert "kept: rlao.keep_invalid" in report.summary()


def test_a_repaired_reply_is_trained_in_the_repair_branch_that_produced_it(tmp_path):
    tokenizer = ByteChatTokenizer()
    records = _candidates(tmp_path)
    assert records[1].prompt_messages == tuple(STATE + BRANCH) and records[0].prompt_messages == tuple(STATE)
    examples, _ = build_examples(records, tokenizer, 4096, WeightConfig())
    for example, messages, reply in ((examples[0], STATE, "fine"), (examples[1], STATE + BRANCH, "repaired")):
        ids, mask = tokenizer.encode_training_pair(messages, reply)
        np.testing.assert_array_equal(example.ids, ids)
        np.testing.assert_array_equal(example.loss_mask, mask)


def test_a_long_repair_branch_loses_history_pairs_first(tmp_path):
    tokenizer = ByteChatTokenizer()
    history = [{"role": "assistant", "content": "H" * 50}, {"role": "user", "content": "feedback " * 5}]
    path = _write(tmp_path / "long.jsonl", [_record(messages=STATE + history, repair_branch=BRANCH, reply="R")])
    budget = len(tokenizer.encode_training_pair(STATE + BRANCH, "R")[0])
    (example,), report = build_examples(read_trajectories(str(path)), tokenizer, budget, WeightConfig())
    assert report.pairs_dropped == 1
    assert example.ids.tolist() == tokenizer.encode_training_pair(STATE + BRANCH, "R")[0]


def test_records_without_the_newer_fields_read_as_before(tmp_path):
    """Files written before `repair_branch` and `check_failed` existed: no branch, check failure from the note."""
    path = _write(tmp_path / "old.jsonl", [
        _record(note=""),
        _record(note="check failed after 3 repairs: TypeError: x", val_score=0.0),
    ])
    fine, failed = read_trajectories(str(path))
    assert fine.repair_branch == () and not fine.check_failed and fine.trainable
    assert failed.check_failed and not failed.trainable


def test_nothing_left_to_train_on_names_the_switch(tmp_path):
    path = _write(tmp_path / "bad.jsonl", [_record(valid_action=False), _record(check_failed=True)])
    with pytest.raises(ConfigError, match=r"rlao\.keep_invalid: none of the 2 records .*\(1 invalid actions, 1 check"):
        build_examples(read_trajectories(str(path)), ByteChatTokenizer(), 4096, WeightConfig())
