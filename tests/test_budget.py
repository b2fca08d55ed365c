"""One budget per command, kept across resume: `executor.budget_usd` caps a whole `w4s-jax rlao` (every
round's collection and the final one), and a killed command rerun with the same output_dir continues
from what it spent (output_dir/spent.jsonl) instead of from zero.

The CLI runs use the tiny meta-agent and a priced stand-in executor subprocess (rlao_run_helpers). The
real spending is read back from what the executor answered (each collection's response cache holds
every answered call's tokens), so the checks do not trust the ledger they test."""

from __future__ import annotations

import json
import math
import signal
import sqlite3

import pytest
from rlao_run_helpers import StandIn, answers_table, export_tiny_meta_agent, jsonl, rlao_command, run, run_env

from w4s_jax.data_errors import DataError
from w4s_jax.executor.errors import BudgetExceeded
from w4s_jax.executor.spend_journal import JournaledLedger
from w4s_jax.w4s.budget import command_ledger

PRICES = {"m": {"input": 1000.0, "output": 1000.0}}  # $0.001 a token


def test_a_ledger_resumes_from_spent_and_from_reservations_left_in_flight(tmp_path):
    path = tmp_path / "spent.jsonl"
    first = JournaledLedger(PRICES, 1.0, path)
    settled = first.reserve("m", "executor", 100, 100)  # $0.2 reserved
    first.settle("m", "executor", settled, 100, 50, 1)  # $0.15 spent
    first.reserve("m", "executor", 100, 100)  # in flight when the process dies: maybe billed
    free = JournaledLedger({}, 1.0, tmp_path / "free.jsonl").reserve("local", "executor", 10, 10)
    assert free == 0.0 and (tmp_path / "free.jsonl").read_text() == ""  # unpriced calls write nothing

    second = JournaledLedger(PRICES, 1.0, path)
    assert math.isclose(second.spent_before_usd, 0.35) and math.isclose(second.spent_usd, 0.35)
    assert second.report()["spent_before_usd"] == second.spent_before_usd
    second.reserve("m", "executor", 300, 300)  # $0.6: 0.95 of 1.0
    with pytest.raises(BudgetExceeded):
        second.reserve("m", "executor", 50, 50)  # $0.1 more would pass the budget
    assert JournaledLedger(PRICES, 1.0, path).spent_usd == pytest.approx(0.95)


def test_a_line_cut_short_is_dropped_and_a_corrupt_one_names_file_and_line(tmp_path):
    path = tmp_path / "spent.jsonl"
    ledger = JournaledLedger(PRICES, 1.0, path)
    ledger.settle("m", "executor", ledger.reserve("m", "executor", 100, 100), 100, 100, 1)
    ledger.close()
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"spent": 0.9, "res')  # a crash mid-write: that change never reached a request
    assert JournaledLedger(PRICES, 1.0, path).spent_usd == pytest.approx(0.2)
    assert path.read_bytes() == whole

    for bad in (b'{"spent": "lots", "reserved": 0}\n', b'{"spent": NaN, "reserved": 0}\n', b"[1]\n"):
        path.write_bytes(whole + bad)
        with pytest.raises(DataError, match=rf"^{path}:3: "):
            JournaledLedger(PRICES, 1.0, path)
        assert path.read_bytes() == whole + bad  # nothing rewritten


def test_the_command_ledger_reads_the_executor_section_and_keeps_hosts_apart(tmp_path):
    from w4s_jax.executor.settings import ExecutorSettings

    executor = ExecutorSettings(budget_usd=2.5, prices=PRICES)
    ledger = command_ledger(executor, tmp_path)
    assert ledger.path == tmp_path / "spent.jsonl" and ledger.budget_usd == 2.5
    assert ledger.price("m").input == 1000.0
    assert command_ledger(executor, tmp_path, 1, 2).path == tmp_path / "host1" / "spent.jsonl"


# ----- the rlao command, end to end -----

PRICE = {"input": 0.15, "output": 0.60}  # gpt-4o-mini's default price, which the stand-in serves under
MAX_TOKENS = ["--config.executor.max_tokens=16"]  # the worst case a call reserves: its prompt's bytes + 16
# A stand-in call (~100 prompt, 12 completion tokens) costs ~$2.2e-5 and reserves ~$7.5e-5: the first
# collection fits, a later one does not; unbounded, 3 rounds and the final collection would spend ~$1.8e-4.
BUDGET = 1.3e-4


def _answered_usd(run_dir) -> float:
    """Dollars of every call the executor answered, from the collections' response caches (one row per
    answered call: the seed workflow asks for one response a call)."""
    total = 0.0
    for cache in run_dir.glob("*/collect/executor_cache.sqlite"):
        with sqlite3.connect(cache) as db:
            rows = db.execute("SELECT prompt_tokens, completion_tokens FROM responses").fetchall()
        total += sum(prompt * PRICE["input"] + completion * PRICE["output"] for prompt, completion in rows) / 1e6
    return total


@pytest.fixture(scope="module")
def rlao_setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("budget")
    weights = export_tiny_meta_agent(base / "tiny")
    stand_in = StandIn(answers_table(base / "answers.json"))
    try:
        yield base, weights, stand_in, run_env()
    finally:
        stand_in.close()


def _rlao(setup, output_dir, *extra, crash_at=""):
    _, weights, stand_in, env = setup
    command = rlao_command(weights, stand_in.url, output_dir, "--config.rounds.count=3",
                           f"--config.executor.budget_usd={BUDGET}", *MAX_TOKENS, *extra)
    log = output_dir.parent / f"{output_dir.name}.{crash_at or 'run'}.log"
    return run(command, log, {**env, "W4S_JAX_CRASH_AT": crash_at} if crash_at else env), log.read_text()


@pytest.mark.slow
def test_three_rounds_of_rlao_spend_at_most_the_budget_in_total(rlao_setup, tmp_path):
    run_dir = tmp_path / "run"
    done, output = _rlao(rlao_setup, run_dir)
    assert done.returncode == 0, output[-3000:]
    spent = JournaledLedger({}, 0.0, run_dir / "spent.jsonl").spent_before_usd
    answered = _answered_usd(run_dir)
    assert 0 < answered <= spent * (1 + 1e-9) and spent <= BUDGET, (answered, spent)  # sums in another order
    # One budget: a collection is cut short, and no round or collection follows it.
    assert "budget covers no further collection" in output and not (run_dir / "final").exists()
    results = [json.loads(path.read_text()) for path in sorted(run_dir.glob("round_*/collect/result.json"))]
    assert results[0]["stopped_reason"] == "" and "budget" in results[-1]["stopped_reason"]
    assert results[-1]["command_spent_usd"] == pytest.approx(spent)


@pytest.mark.slow
def test_a_killed_and_resumed_rlao_spends_at_most_the_budget_in_total(rlao_setup, tmp_path):
    run_dir = tmp_path / "run"
    # Killed just after a reservation was journaled, its request not yet sent: the rerun counts it as spent.
    killed, output = _rlao(rlao_setup, run_dir, crash_at="budget-reserved:3")
    assert killed.returncode == -signal.SIGKILL, output[-3000:]
    journaled = jsonl(run_dir / "spent.jsonl")
    assert journaled[-1]["reserved"] > 0
    in_flight_at_kill = journaled[-1]["spent"] + journaled[-1]["reserved"]
    done, output = _rlao(rlao_setup, run_dir)
    assert done.returncode == 0, output[-3000:]
    resumed = JournaledLedger({}, 0.0, run_dir / "spent.jsonl")
    assert resumed.spent_before_usd >= in_flight_at_kill
    assert 0 < _answered_usd(run_dir) <= resumed.spent_before_usd * (1 + 1e-9)
    assert resumed.spent_before_usd <= BUDGET
    assert "budget covers no further collection" in output
