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

from w4s_jax.config.errors import ConfigError
from w4s_jax.config.loading import load_config_file
from w4s_jax.executor import ExecutorClient
from w4s_jax.executor.repliers import OracleStandIn, TableReplier
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint
from w4s_jax.learning.experiment import ARMS, STARTS, check_learning_config
from w4s_jax.learning.measures import collection_metrics, samples_at_temperature
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


def test_the_stand_in_rewards_several_answers_at_a_temperature_above_zero(shipped_gsm8k, tmp_path):
    """The experiment's premise, with its stand-in accuracy: one call is beaten by a vote over samples
    at T > 0, while a vote at T = 0 only repeats one answer."""
    examples = shipped_gsm8k
    table = {e.question: e.answer for e in examples}
    vote = draw_variant(next(s for s in range(200) if draw_variant(s).family == "vote"))
    hot = vote.source().replace(f"temperature={vote.temperature}", "temperature=0.8")
    cold = vote.source().replace(f"temperature={vote.temperature}", "temperature=0.0")
    scores = {name: asyncio.run(evaluate(source, examples, OracleStandIn(table, accuracy=0.45), tmp_path / name)).score
              for name, source in (("cot", builtin_source("cot")), ("hot", hot), ("cold", cold))}
    assert scores["hot"] >= scores["cot"] + 0.2, scores
    assert scores["cold"] == scores["cot"], scores


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


@pytest.mark.parametrize(("field", "value", "message"), [
    ("w4s.test_eval", True, "w4s.test_eval: the learning experiment uses validation data only"),
    ("lora.enabled", False, "lora.enabled:"),
    ("train.steps", 0, "train.steps: every training round runs a fixed number of steps"),
    ("learning.rounds", 0, "learning.rounds: must be >= 1"),
    ("rlao.weight_mode", "uniform", "rlao.weight_mode: the rlao arm weights by reward"),
])
def test_the_experiment_refuses_settings_its_design_excludes(field, value, message):
    config = load_config_file(LEARNING_CONFIG)
    check_learning_config(config)
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ConfigError, match=message):
        check_learning_config(config)


SMOKE = [
    "--config.w4s.seeds=0,1",
    "--config.w4s.candidates_per_turn=2",
    "--config.task.val_limit=3",
    "--config.learning.rounds=2",
    "--config.learning.warm_start_rollouts=1",
    "--config.learning.warm_start_steps=1",
    "--config.train.steps=1",
    "--config.train.micro_batch=1",
]


def test_learn_smoke_run_writes_every_start_arm_and_round(tmp_path):
    out = tmp_path / "learning"
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device, as a user's machine
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, "-m", "w4s_jax.cli.main", "learn", f"--config={LEARNING_CONFIG}",
               f"--config.output_dir={out}", *SMOKE]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]

    payload = json.loads((out / "learning.json").read_text())
    assert (out / "learning.png").stat().st_size > 10_000
    table = (out / "learning.md").read_text()
    assert (out / "samples.md").read_text().startswith("# What the meta-agent wrote")
    results = payload["results"]
    assert set(results) == set(STARTS) and all(set(results[start]) == set(ARMS) for start in STARTS)
    for start in STARTS:
        round_0 = results[start]["rlao"][0]["collection"]
        for arm in ARMS:
            rounds = results[start][arm]
            assert [entry["round"] for entry in rounds] == [0, 1, 2]
            assert all(entry["candidates"] == 4 and entry["rollouts"] == 2 for entry in rounds)
            assert all(entry["valid_rate"] is not None and entry["mean_reward"] is not None for entry in rounds)
            assert rounds[0]["collection"] == round_0  # the start's round 0 is shared by its arms
            for entry in rounds[1:]:
                trained = entry["trained"]
                assert (trained is None) == (arm == "none")
                if trained is None or "skipped" in trained:
                    # unchanged parameters and seeds: the earlier collection, not a new one
                    assert entry["reused_from"] is not None
                else:
                    assert trained["steps"] == 1 and trained["weight_mode"] == ("uniform" if arm == "sft" else "raw")
                    assert entry["reused_from"] is None
            assert f"| {start} | {arm} | 2 |" in table
    warm = payload["warm_start"]
    assert warm["steps"] == 1 and warm["weight_mode"] == "uniform"
    assert warm["teacher"]["valid_rate"] == 1.0 and warm["teacher"]["check_pass_rate"] == 1.0
    # only validation questions reach the stand-in executor: no test split is ever loaded
    answers = json.loads((out / "stand_in_answers.json").read_text())
    shipped = get_task("gsm8k").load("validate", "package:w4s-jax", limit=3)
    assert set(answers) == {example.question for example in shipped}
    assert payload["config"]["w4s"]["test_eval"] is False
