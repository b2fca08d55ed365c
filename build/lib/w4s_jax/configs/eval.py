"""`w4s-jax eval`: one workflow file (or a built-in baseline) on one task split; a JSON report.

    w4s-jax eval --config=configs/eval.py --config.workflow=cot --config.task=gsm8k \
        --config.split=validate --config.limit=20 --config.executor.base_url=http://127.0.0.1:8000/v1
"""

import ml_collections

from w4s_jax.config import sections
from w4s_jax.config.fields import section


def get_config() -> ml_collections.ConfigDict:
    config = section(
        "",
        workflow=("cot", "a workflow .py file defining solver(agent, task), or a built-in name: "
                         "cot, cot_sc, self_refine, code_generation, code_writer"),
        task=("gsm8k", "benchmark name (w4s_jax.tasks registry)"),
        split=("validate", "split to evaluate: validate or test (gsm8k at package:w4s-jax also train)"),
        limit=(0, "evaluate only the first N examples of the split (0 = all)"),
        data_dir=("../shared/data", "directory laid out like shared/data (one folder per benchmark)"),
        seed=(0, "task seed (splits of single-file benchmarks, option shuffles)"),
        subset=("", "keep only these examples, comma-separated: mmlu_pro categories, gsm_plus perturbation types, "
                    "gaia levels ('' = all)"),
        search_url=("", "agent.web_search backend: GET <search_url>?q=<query> answered with text, queried by the parent "
                        "('' = none: web_search raises WebSearchUnavailable, which a workflow may catch)"),
        output=("", "path of the JSON report; '' = <output_dir>/eval_<workflow>_<task>_<split>.json"),
        hidden_test_timeout_s=(30.0, "wall-clock limit for running the hidden tests of one code-task answer, seconds"),
    )
    config.executor = sections.executor_section()
    config.sandbox = sections.sandbox_section()
    config.update(sections.output_fields("runs/eval"))
    return config
