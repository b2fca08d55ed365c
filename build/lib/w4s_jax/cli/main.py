"""`w4s-jax SUBCOMMAND [--config=FILE] [--config.x=y ...]`: dispatch to one subcommand module.

Each subcommand lives in `w4s_jax/cli/<name>.py` and exposes `main(config)`, `DOC` (one paragraph
for --help) and `DEFAULT_CONFIG` (a file in configs/). Modules are imported lazily so that
`w4s-jax eval` never pays for importing JAX models it does not use.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS: dict[str, str] = {
    "optimize": "W4S at inference time: a given meta-agent improves a workflow for one task.",
    "collect": "Run W4S episodes with the current meta-agent and write RLAO trajectories.",
    "train": "RLAO: reward-weighted regression of the meta-agent on trajectories.",
    "rlao": "Rounds of collect + train with the sampler sharing the trainer's parameters.",
    "eval": "Evaluate one workflow file (or a built-in baseline) on a task split; JSON report.",
    "compare": "Baselines and given workflows on one task split: accuracy beside executor cost (md, csv, png).",
    "serve": "OpenAI-compatible HTTP server over the JAX sampler.",
    "aot": "Compile the train step ahead of time for a TPU topology; per-chip memory and FLOPs.",
    "bench": "Run the project's benchmarks; JSON + markdown table.",
    "demo": "The offline end-to-end demo on CPU (no network, no API key).",
    "learn": "The learning experiment: RLAO vs SFT vs no training, with and without a warm start.",
}


def _usage() -> str:
    lines = ["usage: w4s-jax SUBCOMMAND [--config=FILE] [--config.FIELD=VALUE ...]", "", "subcommands:"]
    lines += [f"  {name:<9} {doc}" for name, doc in SUBCOMMANDS.items()]
    lines += ["", "`w4s-jax SUBCOMMAND --help` explains one subcommand and its config file."]
    return "\n".join(lines)


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
        print(_usage())
        sys.exit(0 if len(argv) >= 2 else 2)
    name = argv[1]
    if name not in SUBCOMMANDS:
        print(f"w4s-jax: unknown subcommand '{name}'\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    from w4s_jax.parallel.distributed import init_distributed

    try:
        init_distributed()  # several hosts: join jax.distributed before any JAX call; else nothing
    except ValueError as error:
        print(f"w4s-jax {name}: distributed setup error: {error}", file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(f"w4s_jax.cli.{name}")
    from w4s_jax.cli.app import run_subcommand

    run_subcommand(name, module, [f"w4s-jax {name}", *argv[2:]])


if __name__ == "__main__":
    run()
