"""`w4s-jax train` on bad input: a clear error naming file, line and field, exit status 2."""

import json
import pathlib
import subprocess
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train(*flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "w4s_jax.cli.main", "train", "--config.model.preset=tiny",
               "--config.train.tokenizer=bytes", *flags]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
                          env={"JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"})


def test_malformed_and_empty_files_fail_fast_with_file_line_field(tmp_path, rlao_trajectories):
    lines = rlao_trajectories.read_text().splitlines()
    record = json.loads(lines[1])
    record["reward"] = "high"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[0], json.dumps(record)]) + "\n")
    done = _train(f"--config.train.data={rlao_trajectories},{bad}", f"--config.output_dir={tmp_path / 'out'}")
    assert done.returncode == 2
    assert f"{bad}:2: field 'reward': expected a finite number, got 'high'" in done.stderr
    assert not (tmp_path / "out").exists()  # nothing was started

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    done = _train(f"--config.train.data={empty}", f"--config.output_dir={tmp_path / 'out'}")
    assert done.returncode == 2 and "empty.jsonl:1: field '<record>': file holds no trajectories" in done.stderr

    done = _train(f"--config.output_dir={tmp_path / 'out'}")
    assert done.returncode == 2 and "train.data: no trajectory files given" in done.stderr
