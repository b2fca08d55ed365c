"""The typed settings of a W4S run: the `w4s` and `meta_agent` sections and `RunSettings`, every
section a run reads, built once from the checked config at a command's entry.

Standard library only at import (loading a config file reads these defaults). Bad values raise a
ConfigError naming the field and the fix when the settings are built.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from w4s_jax.config_errors import ConfigError
from w4s_jax.executor.settings import ExecutorSettings
from w4s_jax.models.settings import ModelSettings
from w4s_jax.parallel.settings import MeshSettings
from w4s_jax.sampling.settings import SamplingSettings
from w4s_jax.sandbox.settings import SandboxSettings
from w4s_jax.settings_fields import above, at_least, between, check_fields, one_of, setting
from w4s_jax.tasks.settings import TaskSettings
from w4s_jax.w4s.rewards import REWARD_RULES, RewardRule

META_AGENT_KINDS = ("jax", "openai")


def _flag(value: object) -> str:
    return "" if isinstance(value, bool) else "must be True or False"


@dataclasses.dataclass(frozen=True)
class W4SSettings:
    """The `w4s` section: the loop's shape, its reward rule and how rollouts share the machine."""

    tasks: str = setting("", "comma-separated benchmarks to optimize ('' = task.name)")
    seeds: str = setting("0", "comma-separated rollout seeds; one rollout per task x seed")
    candidates_per_turn: int = setting(5, "m: candidate workflows sampled per turn (the best stays in the "
                                          "conversation)", at_least(1, integer=True))
    turns_per_episode: int = setting(3, "turns in one episode's growing conversation before it restarts from the "
                                        "archive", at_least(1, integer=True))
    max_iterations: int = setting(6, "turns per rollout over all its episodes (the paper: 30)", at_least(1, integer=True))
    max_repairs: int = setting(3, "meta-agent repairs of a workflow that fails on the check sample",
                               at_least(0, integer=True))
    check_samples: int = setting(1, "validation samples a new workflow is checked on before the full validation run",
                                 at_least(1, integer=True))
    reward: str = setting(RewardRule.kind, "reward rule: 'discrete' (1 / 0.5 / 0, low-score penalty) or 'continuous' "
                                           "(relative gain over the best)", one_of(REWARD_RULES))
    invalid_reward: float = setting(RewardRule.invalid_reward, "reward of a reply without a python block defining solver")
    low_score_threshold: float = setting(RewardRule.low_score_threshold, "validation scores below this get the "
                                                                         "low-score penalty", between(0.0, 1.0))
    low_score_penalty: float = setting(RewardRule.low_score_penalty, "subtracted from the reward when the score is "
                                                                     "below low_score_threshold")
    feedback_cases: int = setting(10, "validation cases shown in the feedback on a workflow", at_least(0, integer=True))
    archive_in_prompt: int = setting(5, "best archive workflows shown when an episode starts", at_least(1, integer=True))
    design_principles: bool = setting(True, "show the 'How to design' section (strategies that often help) in the "
                                            "first user message; False = a prompt about 230 tokens shorter", _flag)
    seed_workflows: str = setting("", "comma-separated built-in workflows or sets ('official': the W4S release's "
                                      "trio) that seed the archive ('' = the task type's defaults)")
    max_concurrent_evaluations: int = setting(4, "workflow evaluations (sandbox + executor) running at once over all "
                                                 "rollouts", at_least(1, integer=True))
    lockstep_generation: bool = setting(True, "batch generation only when every live rollout waits for it "
                                              "(deterministic batches; needed on several hosts)", _flag)
    batch_window_s: float = setting(0.05, "when not in lockstep: how long to gather generation requests before a "
                                          "batch goes out", at_least(0))
    test_eval: bool = setting(True, "score the final workflow (chosen on validation) once on the test split, "
                                    "reported apart", _flag)
    progress: bool = setting(True, "live progress bars per rollout (turn, best validation score, cost, ETA)", _flag)

    def __post_init__(self) -> None:
        check_fields(self, "w4s")
        self.seed_list()

    @property
    def reward_rule(self) -> RewardRule:
        return RewardRule(self.reward, self.invalid_reward, self.low_score_threshold, self.low_score_penalty)

    def seed_list(self) -> list[int]:
        try:
            seeds = [int(seed) for seed in self.seeds.split(",") if seed.strip()]
        except ValueError:
            raise ConfigError(f"w4s.seeds: expected comma-separated integers, got {self.seeds!r}") from None
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"w4s.seeds: expected distinct comma-separated integers, got {self.seeds!r}")
        return seeds


@dataclasses.dataclass(frozen=True)
class MetaAgentSettings:
    """The `meta_agent` section: where the meta-agent runs. An endpoint's calls go through an
    `ExecutorClient` with role "meta-agent" (executor.max_retries and backoff, the command's ledger)."""

    kind: str = setting("openai", "where the meta-agent runs: 'jax' (in-process sampler over model.preset/path) or "
                                  "'openai' (an endpoint)", one_of(META_AGENT_KINDS))
    base_url: str = setting("http://127.0.0.1:8000/v1", "OpenAI-compatible endpoint of the meta-agent "
                                                        "(kind='openai'), e.g. `w4s-jax serve`")
    model: str = setting("meta-agent", "model name sent to the meta-agent endpoint (kind='openai')")
    api_key_env: str = setting("", "environment variable holding the meta-agent endpoint's API key; '' = none")
    timeout_s: float = setting(600.0, "per-request timeout for the meta-agent endpoint, seconds", above(0))
    max_concurrency: int = setting(16, "in-flight requests to the meta-agent endpoint", above(0))

    def __post_init__(self) -> None:
        check_fields(self, "meta_agent")
        if self.kind == "openai" and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"meta_agent.base_url: expected an http(s) URL for kind='openai', got {self.base_url!r}")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Every section a W4S run reads (`optimize`, `collect`, each collection of `rlao` and `learn`)."""

    model: ModelSettings
    mesh: MeshSettings
    sampling: SamplingSettings
    executor: ExecutorSettings
    sandbox: SandboxSettings
    task: TaskSettings
    meta_agent: MetaAgentSettings
    w4s: W4SSettings
    output_dir: str

    def __post_init__(self) -> None:
        if not self.output_dir.strip():
            raise ConfigError("output_dir: is empty; fix: pass --config.output_dir=<a directory>")
        self.rollout_plan()

    def task_names(self) -> list[str]:
        return list(dict.fromkeys(name for name, _ in self.rollout_plan()))

    def rollout_plan(self) -> list[tuple[str, int]]:
        """(task, seed) pairs, one rollout each, from `w4s.tasks` ('' = task.name) and `w4s.seeds`."""
        tasks = [name.strip() for name in (self.w4s.tasks or self.task.name).split(",") if name.strip()]
        if not tasks:
            raise ConfigError("w4s.tasks: no task named; set w4s.tasks or task.name")
        if len(set(tasks)) != len(tasks):
            raise ConfigError(f"w4s.tasks: a task is listed twice in {self.w4s.tasks!r}")
        return [(task, seed) for task in tasks for seed in self.w4s.seed_list()]

    def replace(self, **sections: Any) -> RunSettings:
        """A copy with some sections or fields changed: `section=settings` or `section__field=value`."""
        changes: dict[str, Any] = {}
        fields: dict[str, dict[str, Any]] = {}
        for name, value in sections.items():
            section, _, field = name.partition("__")
            if field:
                fields.setdefault(section, {})[field] = value
            else:
                changes[section] = value
        for section, values in fields.items():
            changes[section] = dataclasses.replace(changes.get(section, getattr(self, section)), **values)
        return dataclasses.replace(self, **changes)


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


def resume_fingerprint(settings: RunSettings) -> dict[str, Any]:
    values = {}
    for path in RESUME_FIELDS:
        section, name = path.split(".")
        values[path] = getattr(getattr(settings, section), name)
    return values


def check_resume_fingerprint(journal: Any, settings: RunSettings) -> None:
    """Records the run's deciding fields, or checks them against the journal being resumed."""
    fingerprint = resume_fingerprint(settings)
    recorded = journal.get("run", "fingerprint")
    if recorded is None:
        journal.put("run", "fingerprint", fields=fingerprint)
        return
    for path, value in fingerprint.items():
        if recorded["fields"].get(path) != value:
            raise ConfigError(f"{path}: {value!r} differs from {recorded['fields'].get(path)!r} in the journal of "
                              f"the run being resumed ({journal.path}); use the same value or a new output_dir")
