"""The W4S loop end to end with a scripted meta-agent: rewards, best-of-m selection, repairs, feedback
text, archive, journal, trajectories, report, no test leakage, and SIGKILL resume.

Real parts: the sandbox runs every workflow in its workers, the executor client talks HTTP to the
project's StandInEndpoint (a TableReplier: answers looked up by question, so each scripted workflow has a
known score), the meta-agent is an OpenAI-compatible HTTP server on loopback. The meta-agent's
*replies* are scripted (ScriptedMetaAgent, a test double for an LLM): each (episode, turn, candidate,
repair) gets a fixed reply, recognised by the sampling seed the loop sends.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable

import ml_collections
import pytest
from aiohttp import web

from w4s_jax.config.fields import iter_leaves
from w4s_jax.config.loading import CONFIGS_DIR, load_config_file
from w4s_jax.config.typed import run_settings
from w4s_jax.executor.repliers import TableReplier
from w4s_jax.executor.stand_in_endpoint import StandInEndpoint, spawn
from w4s_jax.tasks import get_task
from w4s_jax.trajectory import read_trajectories
from w4s_jax.w4s import prompts
from w4s_jax.w4s.budget import command_ledger
from w4s_jax.w4s.episode import derive_seed
from w4s_jax.w4s.meta_agent import meta_agent_policy
from w4s_jax.w4s.runner import run_w4s

REPO = pathlib.Path(__file__).resolve().parents[1]
VAL, TEST = 6, 3
ROLLOUT = "gsm8k-s0"

CONST = 'def solver(agent, task):\n    return {"answer": "-12345"}\n'
BROKEN = 'def solver(agent, task):\n    value = undefined_helper(task)\n    return {"answer": value}\n'


def asking(prefix_expression: str) -> str:
    """A workflow asking the executor once with `prefix_expression + task` as the user message."""
    return (
        "def solver(agent, task):\n"
        f"    prompt = {prefix_expression} + task\n"
        "    reply = agent.call_json_format_llm(messages=[{'role': 'user', 'content': prompt}], temperature=0.0,\n"
        "                                       num_of_response=1, agent_role='solver', return_dict_keys=['answer'],\n"
        "                                       instructions='')\n"
        "    return {'answer': reply[0]['answer']}\n"
    )


CAREFUL = asking("'CAREFULLY: '")
MID = asking("'MID: '")
HALF = asking("('HALF CAREFULLY: ' if len(task) % 2 == 0 else 'HALF: ')")


def reply_with(analysis: str, source: str) -> str:
    return f"{analysis}\n\n```python\n{source}```\n"


# (episode, turn, candidate, repair) -> reply. Iterations: e0t0, e0t1, then e1t0 (a fresh episode).
SCRIPT = {
    (0, 0, 0, 0): reply_with("Return a constant.", CONST),
    (0, 0, 1, 0): "I think we should reason step by step, but I forgot the code.",
    (0, 1, 0, 0): reply_with("Use a helper.", BROKEN),
    (0, 1, 0, 1): reply_with("Fixed: no helper, ask half carefully.", HALF),
    (0, 1, 1, 0): reply_with("A middle prompt.", MID),
    (1, 0, 0, 0): reply_with("Ask carefully.", "import math\n" + CAREFUL),
    (1, 0, 1, 0): reply_with("Constant again.", CONST),
}
SEEDS = {derive_seed(ROLLOUT, *key): key for key in SCRIPT}


class ScriptedMetaAgent:
    """TEST DOUBLE for the meta-agent LLM: an OpenAI-compatible server that answers from SCRIPT.

    Runs in a thread (so a subprocess under test can reach it); logs every request it receives.
    """

    def __init__(self, reply_for: Callable[[dict], str | None] | None = None, slow_turn: tuple[int, int] | None = None,
                 ) -> None:
        self.reply_for = reply_for or (lambda body: SCRIPT[SEEDS[body["seed"]]] if body["seed"] in SEEDS else None)
        self.slow_turn = slow_turn  # (episode, turn) whose replies take 2 s: a window to kill a run in
        self.requests: list[dict] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if self.slow_turn is not None and SEEDS.get(body["seed"], ())[:2] == self.slow_turn:
            await asyncio.sleep(2.0)
        reply = self.reply_for(body)
        if reply is None:
            return web.json_response({"error": {"message": f"unscripted seed {body['seed']}"}}, status=400)
        return web.json_response({"choices": [{"index": 0, "finish_reason": "stop",
                                               "message": {"role": "assistant", "content": reply}}]})

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    def __enter__(self) -> ScriptedMetaAgent:
        self._thread.start()
        self._started.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def key_of(self, body: dict) -> tuple[int, int, int, int]:
        return SEEDS[body["seed"]]


@pytest.fixture(scope="module")
def data(shared_data_dir):
    task = get_task("gsm8k")
    return task.load("validate", shared_data_dir, VAL), task.load("test", shared_data_dir, TEST)


def answer_table(val, test) -> dict[str, str]:
    """Plain questions: right for val 0-2, wrong otherwise; 'CAREFULLY: ' questions: right for all
    val and for test 0 only (so the final test score, 1/3, differs from every validation score)."""
    table = {}
    for i, example in enumerate(val):
        table[example.question] = example.answer if i < 3 else "999999"
        table["CAREFULLY: " + example.question] = example.answer
    for i, example in enumerate(test):
        table[example.question] = "999999"
        table["CAREFULLY: " + example.question] = example.answer if i == 0 else "999999"
    return table


def run_config(shared_data_dir, meta_url: str, executor_url: str) -> ml_collections.ConfigDict:
    config = load_config_file(CONFIGS_DIR / "optimize.py")
    config.task.name = "gsm8k"
    config.task.data_dir = str(shared_data_dir)
    config.task.val_limit = VAL
    config.task.test_limit = TEST
    config.meta_agent.base_url = meta_url
    config.executor.base_url = executor_url
    config.executor.model = "test-executor"
    config.executor.api_key_env = ""
    config.sandbox.workers = 3
    config.w4s.candidates_per_turn = 2
    config.w4s.turns_per_episode = 2
    config.w4s.max_iterations = 3
    config.w4s.feedback_cases = 2
    config.w4s.seed_workflows = "cot"
    config.w4s.progress = False
    config.sampling.max_new_tokens = 256
    return config


def expected_half_score(val) -> float:
    return sum(1 for i, e in enumerate(val) if i < 3 or len(e.question) % 2 == 0) / len(val)


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory, shared_data_dir, data):
    val, test = data
    with ScriptedMetaAgent() as meta, StandInEndpoint(TableReplier(answer_table(val, test))).in_thread() as executor:
        config = run_config(shared_data_dir, meta.url, executor.url)
        output_dir = tmp_path_factory.mktemp("w4s") / "scripted"
        settings = run_settings(config)
        result = run_w4s(settings, meta_agent_policy(settings, output_dir), output_dir)
        yield result, meta.requests, executor.stats()


def load_jsonl(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_rewards_selection_and_archive(scripted_run, data):
    result, _, _ = scripted_run
    val, _ = data
    half = expected_half_score(val)
    assert 0.5 < half < 1.0  # the script needs a score strictly between the seed's and the best
    records = read_trajectories([result.trajectories_path])
    got = {(r.episode, r.turn, r.candidate): (r.val_score, round(r.reward, 6), r.valid_action, r.selected)
           for r in records}
    assert got == {
        (0, 0, 0): (0.0, -0.1, True, True),     # below best and previous (0.5), below 0.3: 0 - 0.1
        (0, 0, 1): (None, -0.2, False, False),  # no python block: the invalid-action reward
        (0, 1, 0): (half, 1.0, True, True),     # repaired, beats the best so far (0.5)
        (0, 1, 1): (0.5, 0.5, True, False),     # beats the previous turn (0.0) only
        (1, 0, 0): (1.0, 1.0, True, True),      # new episode from the archive; beats the best
        (1, 0, 1): (0.0, -0.1, True, False),
    }
    index = json.loads((result.output_dir / "archive" / ROLLOUT / "index.json").read_text())
    assert [(e["origin"], e["val_score"]) for e in index["entries"]] == [
        ("seed:cot", 0.5), ("e0t0c0", 0.0), ("e0t1c0", half), ("e0t1c1", 0.5), ("e1t0c0", 1.0)]
    for entry in index["entries"]:
        assert (result.output_dir / "archive" / ROLLOUT / entry["file"]).is_file()
    best = result.best_workflows["gsm8k"]
    assert (best.origin, best.val_score, best.test_score) == ("e1t0c0", 1.0, pytest.approx(1 / 3))
    assert best.source == "import math\n" + CAREFUL


def test_repair_and_feedback_text(scripted_run, data):
    _, requests, _ = scripted_run
    val, _ = data
    by_key = {}
    for body in requests:
        by_key.setdefault(SEEDS[body["seed"]], body["messages"])
    repair = by_key[(0, 1, 0, 1)]
    assert repair[-2] == {"role": "assistant", "content": SCRIPT[(0, 1, 0, 0)]}
    assert repair[-1]["content"] == prompts.repair_message(
        "NameError: name 'undefined_helper' is not defined", "line 2: value = undefined_helper(task)")
    assert repair[:-2] == by_key[(0, 1, 0, 0)]  # the repair branches off the turn's state
    records = {(r.episode, r.turn, r.candidate): r for r in read_trajectories([scripted_run[0].trajectories_path])}
    repaired = records[(0, 1, 0)]
    assert repaired.reply == SCRIPT[(0, 1, 0, 1)]
    assert list(repaired.prompt_messages) == repair  # trained in the context that produced the reply
    assert all(r.repair_branch == () for key, r in records.items() if key != (0, 1, 0))

    # Turn 1's state: the first messages, then turn 0's chosen reply and its feedback.
    state = by_key[(0, 1, 1, 0)]
    assert [m["role"] for m in state] == ["system", "user", "assistant", "user"]
    assert state[2]["content"] == SCRIPT[(0, 0, 0, 0)]
    feedback = state[3]["content"]
    header, cases_text = feedback.split("\n\n2 sampled validation cases:\n\n")
    assert header == ("Validation score: 0.000 over 6 validation questions.\n"
                      "Against the previous workflow the score decreased from 0.500 to 0.000.\n"
                      "Against the best workflow so far the score decreased from 0.500 to 0.000.")
    cases, instruction = cases_text.split("\n\nAnalyse this feedback")
    assert instruction == (", then write an improved workflow. Reply with your analysis and one python block "
                           "defining `solver`, as before.")
    expected = {e.id: f"Question: {e.question}\nWorkflow answer: -12345\nGold answer: {e.answer}\nResult: wrong"
                for e in val}
    blocks = cases.split("\n\n")
    assert [b.split("\n", 1)[0] for b in blocks] == ["Case 1:", "Case 2:"]
    shown = [b.split("\n", 1)[1] for b in blocks]
    assert len(set(shown)) == 2 and set(shown) <= set(expected.values())

    # The new episode restarts from the archive: two messages, archive with scores, latest feedback.
    fresh = by_key[(1, 0, 0, 0)]
    assert [m["role"] for m in fresh] == ["system", "user"]
    first = fresh[1]["content"]
    assert "### cot (validation score 0.500)" in first and "(validation score 0.667)" in first
    assert "## Feedback on the latest workflow\n\nValidation score: 0.667 over 6 validation questions.\n" \
           "Against the previous workflow the score increased from 0.000 to 0.667.\n" \
           "Against the best workflow so far the score increased from 0.500 to 0.667." in first


def test_journal_report_and_trajectory_file(scripted_run):
    result, requests, executor_stats = scripted_run
    journal = load_jsonl(result.journal_path)
    kinds = [r["kind"] for r in journal]
    assert kinds.count("candidate") == 6
    assert kinds.count("invalid_action") == 1
    assert kinds.count("test_evaluation") == 1
    invalid = next(r for r in journal if r["kind"] == "invalid_action")
    assert invalid["reason"] == "no fenced python block in the reply"
    assert len(requests) == len(SCRIPT)  # every generation asked for exactly once
    assert executor_stats["max_requests_per_hash"] == 1  # no executor call paid twice (cache + dedup)
    report = result.report_path.read_text()
    assert "invalid actions (no python block defining solver): 1" in report
    assert "repairs asked for: 1" in report
    assert "| gsm8k | gsm8k-s0 (e1t0c0) | 1.000 | 0.333 |" in report
    assert (result.output_dir / "validation_curve.png").stat().st_size > 1000
    lines = load_jsonl(result.trajectories_path)
    assert all(line["schema"] == "w4s-trajectory/1" and line["task"] == "gsm8k" for line in lines)
    assert lines[0]["messages"][0] == {"role": "system", "content": prompts.SYSTEM_PROMPT}


def test_training_data_leaves_out_invalid_and_check_failed_candidates(tmp_path, shared_data_dir, data):
    """One turn of three candidates: one stays broken after its repair, one is repaired, one has no code.
    All three are in the trajectories; only the repaired one becomes a training example, in its branch."""
    from w4s_jax.rlao.examples import WeightConfig, build_examples
    from w4s_jax.sampling.byte_tokenizer import ByteChatTokenizer

    val, test = data
    script = {
        (0, 0, 0, 0): reply_with("Use a helper.", BROKEN),
        (0, 0, 0, 1): reply_with("Still a helper.", BROKEN.replace("value", "result")),
        (0, 0, 1, 0): reply_with("Use a helper too.", BROKEN),
        (0, 0, 1, 1): reply_with("Fixed: a middle prompt.", MID),
        (0, 0, 2, 0): "No code this time.",
    }
    seeds = {derive_seed(ROLLOUT, *key): key for key in script}
    with (ScriptedMetaAgent(lambda body: script.get(seeds.get(body["seed"]))) as meta,
          StandInEndpoint(TableReplier(answer_table(val, test))).in_thread() as executor):
        config = run_config(shared_data_dir, meta.url, executor.url)
        config.w4s.candidates_per_turn = 3
        config.w4s.max_iterations = 1
        config.w4s.max_repairs = 1
        settings = run_settings(config)
        result = run_w4s(settings, meta_agent_policy(settings, tmp_path / "filter"), tmp_path / "filter")
        bodies = {seeds[body["seed"]]: body["messages"] for body in meta.requests}
    lines = load_jsonl(result.trajectories_path)
    assert [(line["valid_action"], line["check_failed"], line["repairs"]) for line in lines] == [
        (True, True, 1), (True, False, 1), (False, False, 0)]
    assert lines[0]["note"].startswith("check failed after 1 repairs: NameError")
    journal = [r for r in load_jsonl(result.journal_path) if r["kind"] == "candidate"]
    assert [r["check_failed"] for r in journal] == [True, False, False]

    tokenizer = ByteChatTokenizer()
    records = read_trajectories([result.trajectories_path])
    (example,), report = build_examples(records, tokenizer, 1 << 16, WeightConfig())
    assert (report.invalid_actions, report.check_failures, report.examples) == (1, 1, 1)
    ids, mask = tokenizer.encode_training_pair(bodies[(0, 0, 1, 1)], script[(0, 0, 1, 1)])
    assert example.ids.tolist() == ids and example.loss_mask.tolist() == mask
    everything, report = build_examples(records, tokenizer, 1 << 16, WeightConfig(), keep_invalid=True)
    assert len(everything) == 3 and report.left_out == 0


def test_no_test_data_reaches_the_meta_agent(scripted_run, data, shared_data_dir):
    _, requests, _ = scripted_run
    val, _ = data
    full_test = get_task("gsm8k").load("test", shared_data_dir)  # the whole split, not only the scored part
    prompts_text = [m["content"] for body in requests for m in body["messages"]]
    assert prompts_text
    val_questions = {e.question: e.answer for e in val}
    for text in prompts_text:
        for example in full_test:
            assert example.question not in text
        assert "0.333" not in text  # the test score
        assert "test score" not in text.lower()
        lines = text.splitlines()
        for number, line in enumerate(lines):
            if line.startswith("Question: "):
                question = line.removeprefix("Question: ")
                assert question in val_questions
                gold = next(x for x in lines[number:] if x.startswith("Gold answer: "))
                assert gold == f"Gold answer: {val_questions[question]}"


def test_sigkill_mid_turn_resumes_to_the_same_result(scripted_run, tmp_path, shared_data_dir, data):
    reference, _, _ = scripted_run
    val, test = data
    table_path = tmp_path / "answers.json"
    table_path.write_text(json.dumps(answer_table(val, test)))
    executor_process, executor_url = spawn(["--answers", str(table_path)])
    output_dir = tmp_path / "killed"
    try:
        with ScriptedMetaAgent(slow_turn=(0, 1)) as meta:
            config = run_config(shared_data_dir, meta.url, executor_url)
            flags = [f"--config.{path}={value}" for path, value in iter_leaves(config)
                     if not isinstance(value, ml_collections.ConfigDict)]
            command = [sys.executable, "-m", "w4s_jax.cli.main", "optimize",
                       f"--config={CONFIGS_DIR / 'optimize.py'}", *flags, f"--config.output_dir={output_dir}"]
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            journal = output_dir / "journal.jsonl"
            deadline = time.monotonic() + 120
            # Kill inside turn e0t1, while its replies are being generated: turn 0 is journaled, turn 1
            # is not, and (lockstep) no evaluation and so no executor call is in flight.
            while time.monotonic() < deadline and first.poll() is None:
                if any(SEEDS.get(body["seed"], ())[:2] == (0, 1) for body in list(meta.requests)):
                    break
                time.sleep(0.05)
            assert first.poll() is None, first.stderr.read().decode()[-3000:]
            os.kill(first.pid, signal.SIGKILL)
            first.wait(30)
            text = journal.read_text()
            assert '"key": "gsm8k-s0/e0/t0/c1"' in text and '"key": "gsm8k-s0/e0/t1/c0"' not in text  # mid-turn
            before = len(meta.requests)
            second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            assert second.returncode == 0, second.stderr[-3000:]
            replayed = [meta.key_of(body) for body in meta.requests[before:]]
        assert sorted(replayed) == [(0, 1, 0, 0), (0, 1, 0, 1), (0, 1, 1, 0), (1, 0, 0, 0), (1, 0, 1, 0)]
        with urllib.request.urlopen(executor_url.removesuffix("/v1") + "/stats", timeout=30) as response:
            stats = json.loads(response.read())
        assert stats["max_requests_per_hash"] == 1  # no executor call paid twice across the kill
    finally:
        executor_process.kill()
        executor_process.wait(10)
    index = json.loads((output_dir / "archive" / ROLLOUT / "index.json").read_text())
    expected = json.loads((reference.output_dir / "archive" / ROLLOUT / "index.json").read_text())
    assert index == expected
    result = json.loads((output_dir / "result.json").read_text())
    assert result["best"] == json.loads((reference.output_dir / "result.json").read_text())["best"]
    strip = ("run",)
    resumed = [{k: v for k, v in r.items() if k not in strip} for r in load_jsonl(output_dir / "trajectories.jsonl")]
    original = [{k: v for k, v in r.items() if k not in strip} for r in load_jsonl(reference.trajectories_path)]
    assert resumed == original


def test_collect_runs_tasks_times_seeds_with_batched_generation(tmp_path, shared_data_dir, capsys):
    from w4s_jax.cli import collect

    def alternate(body: dict) -> str:  # MID for even seeds, an invalid reply for odd ones
        return reply_with("A middle prompt.", MID) if body["seed"] % 2 == 0 else "No code today."

    with ScriptedMetaAgent(alternate) as meta, StandInEndpoint(TableReplier({})).in_thread() as executor:
        config = load_config_file(CONFIGS_DIR / "collect.py")
        config.task.data_dir = str(shared_data_dir)
        config.task.val_limit = 2
        config.meta_agent.base_url = meta.url
        config.executor.base_url = executor.url
        config.executor.model = "test-executor"
        config.executor.api_key_env = ""
        config.sandbox.workers = 2
        config.w4s.tasks = "gsm8k,svamp"
        config.w4s.seeds = "0,1"
        config.w4s.candidates_per_turn = 2
        config.w4s.max_iterations = 1
        config.output_dir = str(tmp_path / "collect")
        collect.main(config)
        first_batch = len(meta.requests)
    lines = load_jsonl(tmp_path / "collect" / "trajectories.jsonl")
    assert sorted({(line["task"], line["seed"]) for line in lines}) == [
        ("gsm8k", 0), ("gsm8k", 1), ("svamp", 0), ("svamp", 1)]
    assert len(lines) == 8
    for line in lines:
        assert line["valid_action"] == (line["reply"] != "No code today.")
        assert line["reward"] == pytest.approx(-0.2 if not line["valid_action"] else -0.1)  # nothing scores
    result = json.loads((tmp_path / "collect" / "result.json").read_text())
    assert result["meta_agent"]["batches"] == 1 and result["meta_agent"]["largest_batch"] == 8 == first_batch
    assert all(best["test_score"] is None for best in result["best"].values())  # collect never touches test
    progress = capsys.readouterr().err  # the live view: one bar per rollout with turn, best score, cost
    for rollout in ("gsm8k-s0", "gsm8k-s1", "svamp-s0", "svamp-s1"):
        assert f"{rollout}: 100%" in progress
    assert "ep 0 turn 0 best 0.000 $0.0000" in progress


def test_budget_exhaustion_stops_the_run_without_journaling_false_scores(tmp_path, shared_data_dir, data):
    val, test = data
    with ScriptedMetaAgent() as meta, StandInEndpoint(TableReplier(answer_table(val, test))).in_thread() as executor:
        config = run_config(shared_data_dir, meta.url, executor.url)
        config.executor.model = "gpt-4o-mini"  # priced, so the budget binds
        config.sandbox.workers = 1  # one call at a time: each reserves its worst case ($0.00258) first
        config.executor.max_tokens = 4096  # the cot seed's max_completion_tokens, uncapped: that worst case
        config.executor.budget_usd = 0.00258 + 0.0003  # the seed's 6 calls fit; turn 1's evaluations do not
        settings = run_settings(config)
        result = run_w4s(settings, meta_agent_policy(settings, tmp_path / "budget"), tmp_path / "budget")
    assert result.stopped_reason.startswith("executor budget exceeded for model 'gpt-4o-mini'")
    journal = load_jsonl(result.journal_path)
    evaluations = [r for r in journal if r["kind"] == "evaluation"]
    assert evaluations and all("Budget" not in case["error"] for r in evaluations for case in r["outcome"]["cases"])
    assert not any(r["kind"] == "test_evaluation" for r in journal)
    best = result.best_workflows["gsm8k"]
    assert (best.origin, best.val_score, best.test_score) == ("seed:cot", 0.5, None)
    assert "**Stopped early:** executor budget exceeded" in result.report_path.read_text()


def test_an_api_meta_agent_spends_from_the_run_budget(tmp_path, shared_data_dir, data):
    """Priced in executor.prices, the meta-agent's calls are reserved, settled and reported under
    role "meta-agent" in the run's one ledger; a call that would pass the budget is never sent."""
    val, test = data
    with ScriptedMetaAgent() as meta, StandInEndpoint(TableReplier(answer_table(val, test))).in_thread() as executor:
        config = run_config(shared_data_dir, meta.url, executor.url)
        config.meta_agent.model = "meta-priced"
        config.executor.prices = {"meta-priced": {"input": 1.0, "output": 2.0}}  # the executor stays unpriced
        config.w4s.max_iterations = 1
        config.executor.budget_usd = 1e-6  # far below one meta-agent call's worst case
        settings = run_settings(config)
        ledger = command_ledger(settings.executor, tmp_path / "refused")  # the command's budget, given at construction
        refused = run_w4s(settings, meta_agent_policy(settings, tmp_path / "refused", ledger), tmp_path / "refused",
                          ledger=ledger)
        assert refused.stopped_reason.startswith("executor budget exceeded for model 'meta-priced'")
        assert meta.requests == []  # refused before sending
        config.executor.budget_usd = 1.0
        settings = run_settings(config)
        ledger = command_ledger(settings.executor, tmp_path / "paid")
        paid = run_w4s(settings, meta_agent_policy(settings, tmp_path / "paid", ledger), tmp_path / "paid",
                       ledger=ledger)
    assert paid.stopped_reason == "" and len(meta.requests) == 2  # 1 turn x 2 candidates
    result = json.loads((paid.output_dir / "result.json").read_text())
    # The scripted endpoint reports no usage: prompt tokens are bounded by UTF-8 bytes (+ overhead),
    # completion tokens by the replies' bytes; dollars follow the price table exactly.
    replies = [SCRIPT[meta.key_of(body)] for body in meta.requests]
    completion = sum(len(reply.encode("utf-8")) for reply in replies)
    assert result["meta_agent"]["completion_tokens"] == completion and result["meta_agent"]["replies"] == 2
    prompt = result["meta_agent"]["prompt_tokens"]
    assert prompt >= sum(len(m["content"]) for body in meta.requests for m in body["messages"])
    assert result["meta_agent"]["dollars"] == pytest.approx((prompt * 1.0 + completion * 2.0) / 1e6)
    assert result["executor_spent_usd"] == pytest.approx(result["meta_agent"]["dollars"])
    report = paid.report_path.read_text()
    assert "| meta-priced | meta-agent | 2 |" in report and f"{completion} completion tokens" in report
