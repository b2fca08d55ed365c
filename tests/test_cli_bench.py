"""`w4s-jax bench`: every benchmark module runs in its own process; failures become rows, not crashes."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from w4s_jax.cli import bench_report

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

MODULES = {
    "bench_rows.py": """
        def run(quick: bool = False) -> dict:
            return {"quick": quick, "rows": [{"shape": "2x8", "tokens/s": 123.5}, {"shape": "4x8", "tokens/s": 99}]}
    """,
    "aot_table.py": """
        def run(quick: bool = False) -> dict:
            return {"markdown": "| preset | GiB/chip |\\n|---|---|\\n| 7b | 12.5 |"}
    """,
    "bench_lines.py": """
        def run(quick: bool = False) -> dict:
            return {"header": "| client | calls/s |\\n|---|---|", "rows": ["| async | 812 |", "| threads | 300 |"]}
    """,
    "bench_raises.py": """
        def run(quick: bool = False) -> dict:
            raise RuntimeError("device out of memory")
    """,
    "bench_hard_crash.py": """
        import os

        def run(quick: bool = False) -> dict:
            os._exit(3)
    """,
    "bench_not_json.py": """
        def run(quick: bool = False) -> dict:
            return {"value": object()}
    """,
    "bench_hangs.py": """
        import time

        def run(quick: bool = False) -> dict:
            time.sleep(60)
            return {}
    """,
    "_shared_helpers.py": """
        VALUE = 1
    """,
}


@pytest.fixture
def benchmarks_dir(tmp_path: pathlib.Path) -> pathlib.Path:
    directory = tmp_path / "benchmarks"
    directory.mkdir()
    for name, source in MODULES.items():
        (directory / name).write_text(textwrap.dedent(source))
    return directory


def run_bench(*flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "w4s_jax.cli.main", "bench", *flags]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=REPO_ROOT)


def test_discover_names_modules_and_skips_private_ones(benchmarks_dir: pathlib.Path) -> None:
    found = bench_report.discover(benchmarks_dir)
    assert sorted(found) == ["aot_table", "hangs", "hard_crash", "lines", "not_json", "raises", "rows"]
    assert bench_report.select(found, "bench_rows, aot_table") == {
        "rows": found["rows"], "aot_table": found["aot_table"]}
    with pytest.raises(KeyError, match="nope"):
        bench_report.select(found, "rows,nope")


def test_bench_reports_every_benchmark_and_records_failures(benchmarks_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    output_dir = tmp_path / "out"
    completed = run_bench(f"--config.benchmarks_dir={benchmarks_dir}", f"--config.output_dir={output_dir}",
                          "--config.quick=True", "--config.timeout_s=8")
    assert completed.returncode == 1, completed.stderr
    assert "4 of 7 benchmarks failed" in completed.stderr

    report = json.loads((output_dir / "bench.json").read_text())
    assert report["schema"] == "w4s-bench/1"
    rows = {row["name"]: row for row in report["benchmarks"]}
    assert rows["rows"]["status"] == "ok"
    assert rows["rows"]["result"]["quick"] is True
    assert rows["aot_table"]["status"] == "ok"
    assert "device out of memory" in rows["raises"]["error"]
    assert rows["hard_crash"]["status"] == "failed"
    assert "exit status 3" in rows["hard_crash"]["error"]
    assert "not JSON serializable" in rows["not_json"]["error"]
    assert rows["hangs"]["error"] == "timed out after 8 s"

    assert report["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert report["versions"]["jax"]
    assert report["machine"]["cpu_cores_logical"] >= 1
    assert report["machine"]["memory_gib"] > 0
    assert report["machine"]["accelerator"]["backend"] == "cpu"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT).stdout.strip()
    assert report["git"]["commit"] == commit
    assert report["config"]["quick"] is True

    markdown = (output_dir / "bench.md").read_text()
    assert commit in markdown
    assert "| 2x8 | 123.5 |" in markdown
    assert "| 7b | 12.5 |" in markdown
    assert "| client | calls/s |\n|---|---|\n| async | 812 |\n| threads | 300 |" in markdown
    assert "FAILED: timed out after 8 s" in markdown
    assert "| raises | failed |" in markdown


def test_bench_runs_only_the_selected_benchmarks(benchmarks_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    output_dir = tmp_path / "out"
    completed = run_bench(f"--config.benchmarks_dir={benchmarks_dir}", f"--config.output_dir={output_dir}",
                          "--config.benchmarks=rows")
    assert completed.returncode == 0, completed.stderr
    report = json.loads((output_dir / "bench.json").read_text())
    assert [row["name"] for row in report["benchmarks"]] == ["rows"]
    assert report["benchmarks"][0]["result"]["quick"] is False
    assert "bench: rows: ok" in completed.stdout


def test_unknown_benchmark_is_a_config_error_naming_the_field(benchmarks_dir: pathlib.Path, tmp_path: pathlib.Path) -> None:
    completed = run_bench(f"--config.benchmarks_dir={benchmarks_dir}", f"--config.output_dir={tmp_path}",
                          "--config.benchmarks=rows,warp_drive")
    assert completed.returncode == 2
    assert "benchmarks:" in completed.stderr and "warp_drive" in completed.stderr
    assert not (tmp_path / "bench.json").exists()
