"""Crash recovery proven by killing: a small `w4s-jax rlao` run (2 rounds and the final collection,
the tiny meta-agent, a stand-in executor subprocess) is SIGKILLed at named points spread over
generation, sandbox evaluation, journal and trajectory writes, training steps and checkpoint saves
(`W4S_JAX_CRASH_AT`, w4s_jax/crash_points.py), resumed after each kill, and must end exactly where an
uninterrupted run ends: same trajectories, archive, chosen workflow, scores and final parameters, no
executor request answered more often, every JSONL line whole, every latest checkpoint complete.

Then the files a resume reads, damaged: a corrupt journal or trajectory line and a truncated
checkpoint give one line naming the file and exit status 2, with nothing in the run overwritten.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest
from rlao_run_helpers import (
    StandIn,
    answers_table,
    export_tiny_meta_agent,
    jsonl,
    rlao_command,
    run,
    run_env,
)

# The points, in the order a run reaches them; K counts from the start of each resumed process, and
# what a resume replays from its journal or skips as finished does not pass the points again.
KILLS = [
    "executor-call:2",  # round 0: the seed workflow mid-evaluation, its first call answered and cached
    "journal-torn:evaluation:1",  # that evaluation done, its journal line half written
    "generation:1",  # round 0: candidates sampled, not yet journaled
    "journal-torn:generations:1",  # their journal line half written
    "journal:invalid_action:2",  # the second candidate's verdict not yet journaled
    "trajectories:1",  # round 0 collected, its trajectories not yet written
    "result:1",  # trajectories written, result.json (the mark of a finished collection) not yet
    "train-step:1",  # round 0: step 1 computed, not checkpointed
    "checkpoint-writing:1",  # round 0: step 1's checkpoint being written in the background
    "executor-call:1",  # round 1: the seed workflow's first call, with the trained meta-agent loaded
    "generation:1",  # round 1: candidates of the trained meta-agent sampled, not journaled
    "checkpoint-save:2",  # round 1: step 2 computed, its checkpoint not started
    "journal:generations:1",  # final collection: candidates sampled, not journaled
]
RUN_NAME = "run"  # the same directory name in both runs: trajectory records carry it


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(uninterrupted output dir, killed-and-resumed output dir, their stand-ins' stats, (weights, env))."""
    base = tmp_path_factory.mktemp("kill_resume")
    weights = export_tiny_meta_agent(base / "tiny")
    answers = answers_table(base / "answers.json")
    env = run_env()
    reference_stand_in, killed_stand_in = StandIn(answers), StandIn(answers)
    try:
        reference = base / "reference" / RUN_NAME
        export = ["--config.train.export_dir=" + str(reference.parent / "export")]
        done = run(rlao_command(weights, reference_stand_in.url, reference, *export), base / "reference.log", env)
        assert done.returncode == 0, (base / "reference.log").read_text()[-3000:]

        killed = base / "killed" / RUN_NAME
        export = ["--config.train.export_dir=" + str(killed.parent / "export")]
        command = rlao_command(weights, killed_stand_in.url, killed, *export)
        for number, point in enumerate(KILLS):
            log = base / f"killed_{number}.log"
            stopped = run(command, log, {**env, "W4S_JAX_CRASH_AT": point})
            assert stopped.returncode == -signal.SIGKILL, f"not killed at {point}: {log.read_text()[-3000:]}"
        done = run(command, base / "killed_final.log", env)
        assert done.returncode == 0, (base / "killed_final.log").read_text()[-3000:]
        yield reference, killed, reference_stand_in.stats(), killed_stand_in.stats(), (weights, env)
    finally:
        reference_stand_in.close()
        killed_stand_in.close()


def _files(root: pathlib.Path, pattern: str) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.glob(pattern)) if path.is_file()}


@pytest.mark.slow
def test_killed_thirteen_times_the_run_ends_exactly_like_an_uninterrupted_one(runs):
    reference, killed, reference_stats, killed_stats, _ = runs
    collections = ["round_0/collect", "round_1/collect", "final/collect"]
    for collection in collections:
        for pattern in ("trajectories.jsonl", "archive/**/*", "best_workflow_*.py"):
            expected = _files(reference / collection, pattern)
            assert expected, f"{collection}/{pattern}: the reference run wrote nothing"
            assert _files(killed / collection, pattern) == expected, f"{collection}/{pattern} differs"
        reported = [reported_result(reference / collection), reported_result(killed / collection)]
        assert reported[0] == reported[1], f"{collection}/result.json: chosen workflow or scores differ"
    for round_dir in ("round_0/train", "round_1/train"):
        losses = [[(r["step"], r["loss"]) for r in jsonl(run_dir / round_dir / "metrics.jsonl")]
                  for run_dir in (reference, killed)]
        assert losses[0] == losses[1] == [(1, losses[0][0][1]), (2, losses[0][1][1])]
    final = [(run_dir.parent / "export" / "model.safetensors").read_bytes() for run_dir in (reference, killed)]
    assert hashlib.sha256(final[0]).digest() == hashlib.sha256(final[1]).digest()  # the final parameters
    # Nothing the executor answered was asked again: the same requests, each answered as often.
    for name in ("answered", "distinct_requests", "max_answered_per_hash"):
        assert killed_stats[name] == reference_stats[name], (name, killed_stats, reference_stats)


def reported_result(collection: pathlib.Path) -> dict:
    """What result.json reports that must not depend on interruptions (not the replay counters)."""
    summary = json.loads((collection / "result.json").read_text())
    return {key: summary[key] for key in ("best", "stopped_reason", "trajectories")}


@pytest.mark.slow
def test_every_jsonl_line_parses_and_every_latest_checkpoint_is_complete(runs):
    _, killed, _, _, _ = runs
    files = sorted(killed.rglob("*.jsonl"))
    assert {path.name for path in files} >= {"journal.jsonl", "trajectories.jsonl", "metrics.jsonl"}
    for path in files:
        jsonl(path)
    for checkpoints in sorted(killed.glob("*/train/checkpoints")):
        steps = sorted(int(p.name) for p in checkpoints.iterdir() if p.name.isdigit())
        assert steps and steps[-1] == 2, checkpoints
        latest = checkpoints / str(steps[-1])
        for item in ("", "state", "data", "meta"):
            assert (latest / item / "commit_success.txt").exists(), f"{latest / item} is incomplete"
        assert not [p for p in checkpoints.iterdir() if not p.name.isdigit()], "a partial save was left behind"


def _snapshot(root: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _damage(kind: str, run_dir: pathlib.Path) -> pathlib.Path:
    """Damages one file a resume reads; returns the path the error must name."""
    if kind == "journal":
        (run_dir / "final" / "collect" / "result.json").unlink()  # unfinished: its journal is replayed
        path = run_dir / "final" / "collect" / "journal.jsonl"
        lines = path.read_text().splitlines(keepends=True)
        lines[1] = lines[1][: len(lines[1]) // 2] + "\n"
        path.write_text("".join(lines))
        return path
    if kind == "trajectories":
        path = run_dir / "round_0" / "collect" / "trajectories.jsonl"
        path.write_text(path.read_text().replace('"reward":', '"reward": "high", "x":', 1))
        return path
    latest = run_dir / "round_0" / "train" / "checkpoints" / "2"
    data = max((p for p in (latest / "state").rglob("*") if p.is_file() and "ocdbt" in str(p)), key=lambda p: p.stat().st_size)
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    return latest


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["journal", "trajectories", "checkpoint"])
def test_a_damaged_file_is_one_line_naming_it_exit_2_and_nothing_overwritten(kind, runs, tmp_path):
    reference, _, _, _, (weights, env) = runs
    run_dir = tmp_path / RUN_NAME
    shutil.copytree(reference, run_dir)
    named = _damage(kind, run_dir)
    before = _snapshot(run_dir)
    answers = answers_table(tmp_path / "answers.json")
    stand_in = StandIn(answers)
    try:
        done = run(rlao_command(weights, stand_in.url, run_dir), tmp_path / "log", env)
        assert stand_in.stats()["total_requests"] == 0
    finally:
        stand_in.close()
    output = (tmp_path / "log").read_text()
    assert done.returncode == 2, output[-3000:]
    errors = [line for line in output.splitlines() if line.startswith("w4s-jax rlao:")]
    assert len(errors) == 1 and str(named) in errors[0] and "Traceback" not in output, output[-3000:]
    assert _snapshot(run_dir) == before


def test_a_checkpoint_of_another_model_size_is_a_data_error_naming_it(tmp_path):
    import grain
    import jax
    import jax.numpy as jnp

    from w4s_jax.data_errors import DataError
    from w4s_jax.rlao.checkpointing import RunCheckpoints
    from w4s_jax.rlao.settings import CheckpointConfig

    def iterator():
        return iter(grain.MapDataset.range(8).to_iter_dataset())

    saved = RunCheckpoints(CheckpointConfig(str(tmp_path / "checkpoints"), 1, 2, False))
    saved.save(1, {"embedding": jnp.zeros((256, 64))}, iterator(), {"step": 1})
    saved.close()
    before = _snapshot(tmp_path)
    bigger = {"embedding": jax.ShapeDtypeStruct((256, 128), jnp.float32)}
    checkpoints = RunCheckpoints(CheckpointConfig(str(tmp_path / "checkpoints"), 1, 2, False))
    with pytest.raises(DataError, match=rf"^{tmp_path / 'checkpoints' / '1'}: checkpoint cannot be restored"):
        checkpoints.restore(1, bigger, iterator())
    checkpoints.close()
    assert _snapshot(tmp_path) == before


_RESTORE_A_DAMAGED_CHECKPOINT = """
import pathlib, sys
import grain, jax
from w4s_jax.data_errors import DataError
from w4s_jax.rlao.checkpointing import RunCheckpoints
from w4s_jax.rlao.settings import CheckpointConfig

directory = pathlib.Path(sys.argv[1])
def iterator():
    return iter(grain.MapDataset.range(8).to_iter_dataset())
state = {f"w{i}": jax.random.normal(jax.random.key(i), (128, 128)) for i in range(200)}
saved = RunCheckpoints(CheckpointConfig(str(directory), 1, 2, False))
saved.save(2, state, iterator(), {"step": 2})
saved.close()
files = [p for p in (directory / "2" / "state").rglob("*") if p.is_file() and "ocdbt" in str(p)]
damaged = min(files, key=lambda p: p.stat().st_size)  # an index node: every array read through it fails
damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
try:
    RunCheckpoints(CheckpointConfig(str(directory), 1, 2, False)).restore(2, abstract, iterator())
except DataError as error:
    print(f"data error: {str(error)[:60]}", file=sys.stderr)
"""


def test_a_failed_restore_prints_its_error_and_nothing_of_the_reads_it_orphaned(tmp_path):
    """orbax closes its event loop when one array read fails while the others are in flight; their
    late reports (tensorstore's callback into the closed loop, unretrieved task and future errors)
    would print tracebacks after the run's one-line error. Several tries, as the race decides."""
    for attempt in range(3):
        done = subprocess.run([sys.executable, "-c", _RESTORE_A_DAMAGED_CHECKPOINT, str(tmp_path / str(attempt))],
                              capture_output=True, text=True, timeout=300)
        lines = [line for line in done.stderr.splitlines() if "Warning" not in line and "warnings.warn" not in line]
        assert done.returncode == 0 and lines == [f"data error: {tmp_path / str(attempt) / '2'}: checkpoint cannot"[:72]], done.stderr[-3000:]


def test_a_corrupt_journal_line_is_a_data_error_and_a_torn_tail_is_not_cut_before_it(tmp_path):
    from w4s_jax.data_errors import DataError
    from w4s_jax.w4s.journal import Journal

    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.put("generations", "a", replies=["x"])
    journal.close()
    damaged = path.read_bytes() + b'{"kind": "evaluation"}\n{"kind": "evaluation", "ke'  # no key; a torn tail
    path.write_bytes(damaged)
    with pytest.raises(DataError, match=rf"^{path}:2: corrupt journal line"):
        Journal(path)
    assert path.read_bytes() == damaged  # nothing cut or rewritten
