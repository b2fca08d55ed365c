"""`w4s-jax bench`: run the benchmark modules, write bench.json and bench.md under output_dir."""

from __future__ import annotations

import pathlib
import sys

import ml_collections

from w4s_jax.cli import bench_report
from w4s_jax.config.config_checks import validate
from w4s_jax.config_errors import ConfigError

DOC = (
    "Run the project's benchmarks (benchmarks/*.py: forward, sampler, train step, sandbox, executor, "
    "AOT memory table, ...) each in its own process, and write bench.json plus a markdown table "
    "(bench.md) with the machine, library versions and git commit under output_dir. A failing "
    "benchmark becomes a failure row; the others still run."
)
DEFAULT_CONFIG = "bench.py"
REPO_DIR = pathlib.Path(__file__).resolve().parents[2]


def main(config: ml_collections.ConfigDict) -> None:
    validate(config, sections=("output_dir",))
    benchmarks_dir = pathlib.Path(config.benchmarks_dir or REPO_DIR / "benchmarks")
    if not benchmarks_dir.is_dir():
        raise ConfigError(f"benchmarks_dir: {benchmarks_dir} is not a directory; fix: point it at the checkout's benchmarks/")
    try:
        chosen = bench_report.select(bench_report.discover(benchmarks_dir), config.benchmarks)
    except KeyError as error:
        raise ConfigError(f"benchmarks: {error.args[0]}; fix: pass --config.benchmarks=all or names from that list") from error
    if not chosen:
        raise ConfigError(f"benchmarks_dir: no benchmark modules in {benchmarks_dir}; fix: add benchmarks/bench_<name>.py")
    if config.timeout_s <= 0:
        raise ConfigError(f"timeout_s: must be > 0, got {config.timeout_s}; fix: pass --config.timeout_s=<seconds>")
    report = bench_report.build_report(
        chosen, quick=config.quick, timeout_s=config.timeout_s, repo_dir=REPO_DIR, config=config.to_dict(),
        progress=lambda message: print(f"bench: {message}", flush=True),
    )
    json_path, md_path = bench_report.write_report(report, pathlib.Path(config.output_dir))
    print(bench_report.render_markdown(report))
    print(f"bench: wrote {json_path} and {md_path}")
    failed = [row["name"] for row in report["benchmarks"] if row["status"] != "ok"]
    if failed:
        sys.exit(f"bench: {len(failed)} of {len(report['benchmarks'])} benchmarks failed: {', '.join(failed)}")
