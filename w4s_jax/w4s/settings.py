"""Reads and checks the `w4s` and `meta_agent` config sections; bad values name the field and the fix."""

from __future__ import annotations

from typing import Any

from w4s_jax.config_errors import ConfigError
from w4s_jax.w4s.episode import LoopSettings
from w4s_jax.w4s.rewards import REWARD_RULES, RewardRule

META_AGENT_KINDS = ("jax", "openai")


def _at_least(config: Any, field: str, minimum: int) -> int:
    value = config.w4s[field]
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"w4s.{field}: must be an integer >= {minimum}, got {value!r}")
    return value


def _flag(config: Any, field: str) -> bool:
    value = config.w4s[field]
    if not isinstance(value, bool):
        raise ConfigError(f"w4s.{field}: must be True or False, got {value!r}")
    return value


def loop_settings(config: Any) -> LoopSettings:
    """The typed `w4s` settings one rollout needs (raises ConfigError on a bad field)."""
    if config.w4s.reward not in REWARD_RULES:
        raise ConfigError(f"w4s.reward: must be one of {REWARD_RULES}, got {config.w4s.reward!r}")
    if not 0.0 <= config.w4s.low_score_threshold <= 1.0:
        raise ConfigError(f"w4s.low_score_threshold: must be in [0, 1], got {config.w4s.low_score_threshold!r}")
    return LoopSettings(
        candidates_per_turn=_at_least(config, "candidates_per_turn", 1),
        turns_per_episode=_at_least(config, "turns_per_episode", 1),
        max_iterations=_at_least(config, "max_iterations", 1),
        max_repairs=_at_least(config, "max_repairs", 0),
        check_samples=_at_least(config, "check_samples", 1),
        feedback_cases=_at_least(config, "feedback_cases", 0),
        archive_in_prompt=_at_least(config, "archive_in_prompt", 1),
        reward=RewardRule(config.w4s.reward, float(config.w4s.invalid_reward),
                          float(config.w4s.low_score_threshold), float(config.w4s.low_score_penalty)),
        design_principles=_flag(config, "design_principles"),
    )


def rollout_plan(config: Any) -> list[tuple[str, int]]:
    """(task, seed) pairs, one rollout each, from `w4s.tasks` ('' = task.name) and `w4s.seeds`."""
    tasks = [name.strip() for name in (config.w4s.tasks or config.task.name).split(",") if name.strip()]
    if not tasks:
        raise ConfigError("w4s.tasks: no task named; set w4s.tasks or task.name")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"w4s.tasks: a task is listed twice in {config.w4s.tasks!r}")
    try:
        seeds = [int(seed) for seed in str(config.w4s.seeds).split(",") if seed.strip()]
    except ValueError:
        raise ConfigError(f"w4s.seeds: expected comma-separated integers, got {config.w4s.seeds!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"w4s.seeds: expected distinct comma-separated integers, got {config.w4s.seeds!r}")
    return [(task, seed) for task in tasks for seed in seeds]


def check_meta_agent(config: Any) -> None:
    kind = config.meta_agent.kind
    if kind not in META_AGENT_KINDS:
        raise ConfigError(f"meta_agent.kind: must be one of {META_AGENT_KINDS}, got {kind!r}")
    if kind == "openai" and not str(config.meta_agent.base_url).startswith(("http://", "https://")):
        raise ConfigError(f"meta_agent.base_url: expected an http(s) URL for kind='openai', "
                          f"got {config.meta_agent.base_url!r}")
    if kind == "jax" and not config.model.path:
        raise ConfigError("model.path: meta_agent.kind='jax' needs weights (a safetensors directory or a "
                          ".gguf file); a randomly initialised meta-agent writes no workflows")
    if config.sampling.max_new_tokens < 1:
        raise ConfigError(f"sampling.max_new_tokens: must be >= 1, got {config.sampling.max_new_tokens!r}")


# Fields that decide what a run does; a resumed run must agree on them with the journal it replays.
# Left out on purpose: endpoints and ports, concurrency, limits, progress, max_iterations (a finished
# run may be extended) and test_eval.
RESUME_FIELDS = (
    "task.name", "task.data_dir", "task.val_split", "task.val_limit", "task.seed", "model.preset", "model.path",
    "meta_agent.kind", "meta_agent.model", "executor.model", "sampling.temperature", "sampling.top_p",
    "sampling.top_k", "sampling.max_new_tokens", "w4s.tasks", "w4s.seeds", "w4s.candidates_per_turn",
    "w4s.turns_per_episode", "w4s.max_repairs", "w4s.check_samples", "w4s.reward", "w4s.invalid_reward",
    "w4s.low_score_threshold", "w4s.low_score_penalty", "w4s.feedback_cases", "w4s.archive_in_prompt",
    "w4s.design_principles", "w4s.seed_workflows",
)


def resume_fingerprint(config: Any) -> dict[str, Any]:
    values = {}
    for path in RESUME_FIELDS:
        section, name = path.split(".")
        values[path] = config[section][name]
    return values


def check_resume_fingerprint(journal: Any, config: Any) -> None:
    """Records the run's deciding fields, or checks them against the journal being resumed."""
    fingerprint = resume_fingerprint(config)
    recorded = journal.get("run", "fingerprint")
    if recorded is None:
        journal.put("run", "fingerprint", fields=fingerprint)
        return
    for path, value in fingerprint.items():
        if recorded["fields"].get(path) != value:
            raise ConfigError(f"{path}: {value!r} differs from {recorded['fields'].get(path)!r} in the journal of "
                              f"the run being resumed ({journal.path}); use the same value or a new output_dir")
