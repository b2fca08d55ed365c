"""The W4S loop's parts on their own: reply parsing, reward rules, feedback wording, the journal,
the generation batcher and config checks."""

from __future__ import annotations

import asyncio
import json
import re

import ml_collections
import pytest

from w4s_jax.cli.w4s_run import checked_run_settings
from w4s_jax.config.fields import FIELD_DOCS, iter_leaves
from w4s_jax.config.loading import CONFIGS_DIR, load_config_file
from w4s_jax.config.typed import run_settings
from w4s_jax.config_errors import ConfigError
from w4s_jax.w4s import prompts
from w4s_jax.w4s.actions import parse_action
from w4s_jax.w4s.feedback import describe_change, feedback_text
from w4s_jax.w4s.generation_batcher import GenerationBatcher
from w4s_jax.w4s.hosts import host_share
from w4s_jax.w4s.journal import Journal
from w4s_jax.w4s.outcomes import CaseResult, EvalOutcome
from w4s_jax.w4s.rewards import RewardRule

SOLVER = 'def solver(agent, task):\n    return {"answer": 1}\n'


def test_last_python_block_defining_solver_is_the_workflow():
    reply = ("Analysis: try a constant.\n```python\ndef helper():\n    pass\n```\nThen:\n"
             f"```python\n{SOLVER}```\nand a note\n```python\nprint('not a workflow')\n```")
    action = parse_action(reply)
    assert action.valid and action.workflow == SOLVER
    assert action.analysis.startswith("Analysis: try a constant.") and action.analysis.endswith("Then:")


def test_invalid_actions_say_why():
    assert parse_action("no code at all").invalid_reason == "no fenced python block in the reply"
    assert parse_action("```python\nx = 1\n```").invalid_reason == (
        "no python block defines a top-level function solver(agent, task)")
    broken = parse_action("```python\ndef solver(agent, task)\n    return 1\n```")
    assert not broken.valid and broken.invalid_reason.startswith("the python block defining solver does not parse")
    assert "(line 1)" in broken.invalid_reason


def test_discrete_reward_rule():
    rule = RewardRule("discrete", invalid_reward=-0.2, low_score_threshold=0.3, low_score_penalty=0.1)
    assert rule.reward(None, 0.5, 0.4) == -0.2
    assert rule.reward(0.6, 0.5, 0.4) == 1.0
    assert rule.reward(0.45, 0.5, 0.4) == 0.5
    assert rule.reward(0.4, 0.5, 0.4) == 0.0  # ties do not count as beating
    assert rule.reward(0.5, 0.5, 0.4) == 0.5
    assert rule.reward(0.2, 0.1, 0.0) == pytest.approx(0.9)  # beats the best but below 0.3
    assert rule.reward(0.0, 0.5, 0.5) == pytest.approx(-0.1)


def test_continuous_reward_rule():
    rule = RewardRule("continuous")
    assert rule.reward(0.6, 0.5, 0.0) == pytest.approx(0.2)
    assert rule.reward(0.25, 0.5, 0.0) == pytest.approx(-0.5 - 0.1)
    assert rule.reward(0.9, 0.0, 0.0) == 1.0  # clipped: no blow-up when the best is 0
    with pytest.raises(ValueError, match="reward rule must be one of"):
        RewardRule("sigmoid")


def test_feedback_wording_and_case_order():
    cases = (CaseResult("a", "Q1?", "1", "1", True),
             CaseResult("b", "Q2?", "2", "", False, "ZeroDivisionError: division by zero", "line 3: x = 1 / 0"),
             CaseResult("c", "Q3?", "3", "4", False))
    outcome = EvalOutcome(1 / 3, cases)
    assert describe_change(0.5, 0.5) == "unchanged at 0.500"
    text = feedback_text(outcome, previous=0.5, best=0.25, cases=2, seed=0)
    head, shown = text.split("\n\n2 sampled validation cases:\n\n")
    assert head == ("Validation score: 0.333 over 3 validation questions.\n"
                    "Against the previous workflow the score decreased from 0.500 to 0.333.\n"
                    "Against the best workflow so far the score increased from 0.250 to 0.333.")
    blocks = shown.split("\n\n")
    assert len(blocks) == 2 and all("Result: wrong" in block for block in blocks)  # failures first
    error_block = next(block for block in blocks if "Q2?" in block)
    assert error_block.split("\n", 1)[1] == ("Question: Q2?\nWorkflow error: ZeroDivisionError: division by zero\n"
                                             "Failing line: line 3: x = 1 / 0\nGold answer: 2\nResult: wrong")


def test_design_principles_can_be_left_out_of_the_first_message():
    archive = [prompts.ArchiveView("cot", SOLVER, 0.5)]
    full = prompts.first_user_message("Add numbers.", "Task: 1+1\nAnswer: 2", archive, "Validation score: 0.500.")
    short = prompts.first_user_message("Add numbers.", "Task: 1+1\nAnswer: 2", archive, "Validation score: 0.500.",
                                       principles=False)
    assert prompts.PRINCIPLES in full and "## How to design" not in short
    assert short == full.replace(prompts.PRINCIPLES + "\n\n", "")
    config = optimize_config()
    assert run_settings(config).w4s.design_principles is True
    config.w4s.design_principles = False
    assert run_settings(config).w4s.design_principles is False


def test_journal_is_keyed_durable_and_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.put("evaluation", "k1", score=0.5)
    journal.put("evaluation", "k1", score=0.9)  # a replayed key is not written again
    journal.put("generations", "b1", replies={"x": "y"})
    journal.close()
    with open(path, "a") as handle:
        handle.write('{"kind": "evaluation", "key": "k2", "sco')  # a crash mid-write
    reopened = Journal(path)
    assert reopened.get("evaluation", "k1")["score"] == 0.5
    assert not reopened.has("evaluation", "k2")
    assert [r["kind"] for r in reopened.records("generations")] == ["generations"]
    reopened.put("evaluation", "k3", score=1.0)
    reopened.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["key"] for line in lines] == ["k1", "b1", "k3"]


class RecordingPolicy:
    """TEST DOUBLE for a Policy: echoes the seed, records the batches it was given."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def generate(self, conversations, *, n=1, temperature, max_new_tokens, seed):
        self.batches.append(list(seed))
        return [[f"reply {s}"] for s in seed]


def test_lockstep_batches_wait_for_every_participant_and_replay_from_the_journal(tmp_path):
    async def scenario(journal: Journal, policy: RecordingPolicy) -> list[str]:
        batcher = GenerationBatcher(policy, journal, temperature=0.5, max_new_tokens=8, lockstep=True)

        async def participant(index: int, delay: float) -> str:
            await asyncio.sleep(delay)  # e.g. an evaluation still running
            return await batcher.generate(f"k{index}", [{"role": "user", "content": "hi"}], seed=index)

        return await batcher.gather([participant(1, 0.0), participant(2, 0.05), participant(3, 0.1)])

    policy = RecordingPolicy()
    journal = Journal(tmp_path / "journal.jsonl")
    assert asyncio.run(scenario(journal, policy)) == ["reply 1", "reply 2", "reply 3"]
    assert policy.batches == [[1, 2, 3]]  # one batch, sent only when all three waited
    journal.close()
    replay_policy = RecordingPolicy()
    assert asyncio.run(scenario(Journal(tmp_path / "journal.jsonl"), replay_policy)) == ["reply 1", "reply 2", "reply 3"]
    assert replay_policy.batches == []


def test_window_batching_does_not_wait_for_slow_participants(tmp_path):
    async def scenario(policy: RecordingPolicy) -> None:
        batcher = GenerationBatcher(policy, Journal(tmp_path / "j.jsonl"), temperature=0.5, max_new_tokens=8,
                                    lockstep=False, window_s=0.01)

        async def participant(index: int, delay: float) -> str:
            await asyncio.sleep(delay)
            return await batcher.generate(f"k{index}", [{"role": "user", "content": "hi"}], seed=index)

        await batcher.gather([participant(1, 0.0), participant(2, 0.3)])

    policy = RecordingPolicy()
    asyncio.run(scenario(policy))
    assert policy.batches == [[1], [2]]


def test_a_rollout_hands_its_place_to_its_candidates(tmp_path):
    """Lockstep with a rollout that fans out to candidates: the batch waits for every candidate and
    for the other rollout, never for the waiting rollout itself; a failed candidate cancels its
    sibling (whose request is never sent), and the count is whole again afterwards."""
    hi = [{"role": "user", "content": "hi"}]

    async def scenario(policy: RecordingPolicy) -> list:
        batcher = GenerationBatcher(policy, Journal(tmp_path / "j.jsonl"), temperature=0.5, max_new_tokens=8)

        async def candidate(seed: int, delay: float) -> str:
            await asyncio.sleep(delay)
            return await batcher.generate(f"c{seed}", hi, seed=seed)

        async def failing() -> str:
            raise RuntimeError("candidate failed")

        async def fanning_rollout() -> object:
            replies = await batcher.gather([candidate(1, 0.0), candidate(2, 0.05)], handing_over=True)
            try:
                await batcher.gather([failing(), candidate(5, 0.05)], handing_over=True)
            except RuntimeError as error:
                replies.append(str(error))
            replies.append(await batcher.generate("r6", hi, seed=6))
            return replies

        async def plain_rollout() -> str:
            await asyncio.sleep(0.1)
            return await batcher.generate("r3", hi, seed=3)

        return await batcher.gather([fanning_rollout(), plain_rollout()])

    policy = RecordingPolicy()
    fanned, plain = asyncio.run(scenario(policy))
    assert fanned == ["reply 1", "reply 2", "candidate failed", "reply 6"] and plain == "reply 3"
    assert policy.batches == [[1, 2, 3], [6]]


def test_host_share_splits_rollouts_round_robin():
    rollouts = [f"r{i}" for i in range(5)]
    assert host_share(rollouts, 0, 2) == ["r0", "r2", "r4"]
    assert host_share(rollouts, 1, 2) == ["r1", "r3"]
    with pytest.raises(ValueError, match="process_index 2"):
        host_share(rollouts, 2, 2)


def optimize_config() -> ml_collections.ConfigDict:
    return load_config_file(CONFIGS_DIR / "optimize.py")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("w4s.candidates_per_turn", 0, "w4s.candidates_per_turn: must be an integer >= 1"),
    ("w4s.reward", "sigmoid", "w4s.reward: must be one of"),
    ("w4s.low_score_threshold", 1.5, "w4s.low_score_threshold: must be in [0, 1]"),
    ("w4s.seeds", "0,x", "w4s.seeds: expected comma-separated integers"),
    ("w4s.seeds", "1,1", "w4s.seeds: expected distinct"),
    ("w4s.tasks", "gsm8k,gsm8k", "w4s.tasks: a task is listed twice"),
    ("meta_agent.kind", "vllm", "meta_agent.kind: must be one of"),
    ("meta_agent.base_url", "localhost:8000", "meta_agent.base_url: expected an http(s) URL"),
])
def test_bad_w4s_config_names_the_field(field, value, message):
    config = optimize_config()
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_settings(config)


def test_jax_meta_agent_needs_weights():
    config = optimize_config()
    config.meta_agent.kind = "jax"
    with pytest.raises(ConfigError, match=re.escape("model.path: meta_agent.kind='jax' needs weights")):
        checked_run_settings(config)


def test_rollout_plan_is_tasks_times_seeds():
    config = optimize_config()
    config.w4s.tasks = "gsm8k,math"
    config.w4s.seeds = "0,1"
    assert run_settings(config).rollout_plan() == [("gsm8k", 0), ("gsm8k", 1), ("math", 0), ("math", 1)]
    config.w4s.tasks = ""
    config.task.name = "svamp"
    assert run_settings(config).rollout_plan() == [("svamp", 0), ("svamp", 1)]


def test_every_field_of_the_w4s_configs_is_documented():
    for name in ("optimize.py", "collect.py"):
        config = load_config_file(CONFIGS_DIR / name)
        undocumented = [path for path, _ in iter_leaves(config) if path not in FIELD_DOCS]
        assert undocumented == [], name


def test_a_resumed_run_must_keep_the_deciding_fields(tmp_path):
    from w4s_jax.w4s.settings import check_resume_fingerprint

    config = optimize_config()
    check_resume_fingerprint(Journal(tmp_path / "journal.jsonl"), run_settings(config))
    config.w4s.max_iterations = 12  # extending a run is fine
    check_resume_fingerprint(Journal(tmp_path / "journal.jsonl"), run_settings(config))
    config.w4s.candidates_per_turn = 7
    with pytest.raises(ConfigError, match=re.escape("w4s.candidates_per_turn: 7 differs from 5 in the journal")):
        check_resume_fingerprint(Journal(tmp_path / "journal.jsonl"), run_settings(config))


def test_optimize_refuses_several_tasks_before_doing_anything(tmp_path):
    from w4s_jax.cli import optimize

    config = optimize_config()
    config.w4s.tasks = "gsm8k,math"
    config.output_dir = str(tmp_path / "never")
    with pytest.raises(ConfigError, match=re.escape("w4s.tasks: optimize works on one task")):
        optimize.main(config)
    config.w4s.tasks = ""
    config.w4s.seed_workflows = "cot,tree_of_thought"
    config.executor.base_url = "http://127.0.0.1:9/v1"
    with pytest.raises(ConfigError, match=re.escape("w4s.seed_workflows: unknown built-in workflow(s) ['tree_of_thought']")):
        optimize.main(config)
    assert not (tmp_path / "never").exists()
