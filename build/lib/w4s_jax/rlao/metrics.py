"""Training metrics: one JSONL line per step, TensorBoard event files, a tqdm bar on the console.

After a resume the JSONL keeps only the steps up to the restored one, so the file always holds one
uninterrupted curve (the steps a killed run did past its last checkpoint are recomputed).
"""

from __future__ import annotations

import json
import math
import os
import pathlib

import jax
from tensorboardX import SummaryWriter
from tqdm import tqdm

BAR_FIELDS = ("loss", "nll", "grad_norm", "tokens_per_s", "mfu")


def _truncate_after(path: pathlib.Path, step: int) -> None:
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]  # a line cut short by a crash is dropped
    kept = [line for line in complete.splitlines() if line.strip() and json.loads(line)["step"] <= step]
    partial = path.with_name(path.name + ".partial")  # replaced in one step: a crash here loses nothing
    partial.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(partial, path)


class MetricsLogger:
    """Writes metrics on process 0 only (every process sees the same global values)."""

    def __init__(self, output_dir: str | pathlib.Path, total_steps: int, start_step: int = 0, progress: bool = True):
        self.active = jax.process_index() == 0
        self.path = pathlib.Path(output_dir) / "metrics.jsonl"
        self._bar = None
        if not self.active:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_after(self.path, start_step)
        self._jsonl = self.path.open("a", encoding="utf-8")
        self._tb = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=start_step + 1)
        if progress:
            self._bar = tqdm(total=total_steps, initial=start_step, desc="rlao train", dynamic_ncols=True)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.active:
            return
        record = {"step": step, **{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for key, value in metrics.items():
            if isinstance(value, int | float) and math.isfinite(value):
                self._tb.add_scalar(f"train/{key}", value, step)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix({k: f"{metrics[k]:.4g}" for k in BAR_FIELDS if k in metrics}, refresh=False)

    def note(self, text: str) -> None:
        """A line on the console that does not break the progress bar."""
        if self.active:
            (self._bar.write if self._bar is not None else print)(text)

    def close(self) -> None:
        if not self.active:
            return
        if self._bar is not None:
            self._bar.close()
        self._tb.close()
        self._jsonl.close()


def read_metrics(path: str | pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in pathlib.Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
