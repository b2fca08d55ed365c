"""`w4s-jax compare`: the built-in baselines and given workflows on one task split, side by side with
their executor cost: compare.md, compare.csv and compare.png under output_dir.

    w4s-jax compare --config=configs/compare.py --config.task=gsm8k --config.data_dir=package:w4s-jax \
        --config.split=test --config.limit=50 --config.workflows=runs/optimize

Offline (the default) it runs against the simulated executor (executor/simulated.py), or the scripted
stand-in where that is missing (`demo.executor`: simulated, stand_in, or external for
executor.base_url as given). Executor calls are cached in output_dir, so a rerun sends no request.
"""

import importlib.util

import ml_collections

from w4s_jax.config import sections
from w4s_jax.config.fields import section


def get_config() -> ml_collections.ConfigDict:
    config = section(
        "",
        task=("gsm8k", "benchmark name (w4s_jax.tasks registry)"),
        split=("validate", "split to compare on: validate or test (gsm8k at package:w4s-jax also train)"),
        limit=(0, "compare on only the first N examples of the split (0 = all)"),
        data_dir=("../shared/data", "directory laid out like shared/data (one folder per benchmark), tfds:DIR or package:NAME"),
        seed=(0, "task seed (splits of single-file benchmarks, option shuffles)"),
        subset=("", "keep only these examples, comma-separated: mmlu_pro categories, gsm_plus perturbation types, "
                    "gaia levels ('' = all)"),
        search_url=("", "agent.web_search backend: GET <search_url>?q=<query> answered with text, queried by the parent "
                        "('' = none: web_search raises WebSearchUnavailable, which a workflow may catch)"),
        baselines=(True, "run the built-in baselines: cot, cot_sc (5 samples), self_refine, and code_generation "
                         "(numeric tasks) or code_writer (code tasks)"),
        workflows=("", "more rows, comma-separated: workflow .py files, built-in names, or W4S run directories "
                       "(their best_workflow_<task>.py)"),
        hidden_test_timeout_s=(30.0, "wall-clock limit for running the hidden tests of one code-task answer, seconds"),
    )
    config.executor = sections.executor_section()
    config.executor.api_key_env = ""  # the local executors need no key; set it for an external one
    config.executor.prices = ml_collections.ConfigDict(
        # Nominal GPT-4o-mini prices for the local executors, so the dollar column compares like for like.
        {"simulated-executor": {"input": 0.15, "output": 0.60}, "stand-in-executor": {"input": 0.15, "output": 0.60},
         "gpt-4o-mini": {"input": 0.15, "output": 0.60}, "gpt-4o": {"input": 2.50, "output": 10.00}},
        allow_dotted_keys=True,
    )
    config.sandbox = sections.sandbox_section()
    config.sandbox.workers = 4
    config.demo = sections.demo_section()
    has_simulated = importlib.util.find_spec("w4s_jax.executor.simulated") is not None
    config.demo.executor = "simulated" if has_simulated else "stand_in"
    config.update(sections.output_fields("runs/compare"))
    return config
