"""Orbax checkpoints of a training run: train state, grain iterator state and run metadata.

One `CheckpointManager` per run directory: async saves (the step loop goes on while arrays are
written), keep-N, and atomic step directories, so a crash mid-save leaves the previous checkpoint
intact. The grain iterator's position is saved beside the state (one file per host), so a resumed
run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import pathlib
import signal
import sys
import threading
from typing import Any

import grain
import orbax.checkpoint as ocp

from w4s_jax import crash_points
from w4s_jax.data_errors import DataError
from w4s_jax.rlao.settings import CheckpointConfig


class RunCheckpoints:
    """Save/restore of {state, data iterator, metadata} under one directory."""

    def __init__(self, config: CheckpointConfig):
        self.config = config
        directory = pathlib.Path(config.directory).absolute()
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=config.every_steps,
            max_to_keep=config.keep,
            enable_async_checkpointing=config.async_save,
            create=True,
            cleanup_tmp_directories=True,  # a save a crash cut short: removed, the step is saved again
        )
        self.manager = ocp.CheckpointManager(
            directory,
            options=options,
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "data": grain.checkpoint.CheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler(),
            },
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def due(self, step: int) -> bool:
        """Whether `save(step, ...)` without `force` will save (the manager's own policy)."""
        return self.manager.should_save(step)

    def save(self, step: int, state: Any, data_iterator: Any, meta: dict, force: bool = False) -> bool:
        """Starts a save (async) when `step` is due or `force`; returns whether it started."""
        crash_points.reached("checkpoint-save")
        started = self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=grain.checkpoint.CheckpointSave(data_iterator),
                meta=ocp.args.JsonSave(meta),
            ),
            force=force,
        )
        if started:
            crash_points.reached("checkpoint-writing")  # killed while the async save writes
        return started

    def restore(self, step: int, abstract_state: Any, data_iterator: Any) -> tuple[Any, dict]:
        """(state, a pytree like `abstract_state` placed with its shardings; metadata); moves the iterator.

        A checkpoint that cannot be read into `abstract_state` (files cut short or missing, arrays of
        another model size) is a `DataError` naming its directory: the run stops before it writes
        anything, instead of a traceback from deep inside orbax or, worse, training from scratch."""
        try:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    data=grain.checkpoint.CheckpointRestore(data_iterator),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        except Exception as error:  # orbax, tensorstore and grain raise many types for a bad checkpoint
            failure = f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"
        else:
            return restored["state"], restored["meta"]
        _silence_orphaned_reads()
        raise DataError(f"{self.manager.directory / str(step)}: checkpoint cannot be restored into this run "
                        f"({failure}); move that step directory away to resume from an older checkpoint (or this "
                        "round's start), or resume with the model it was saved from")

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _silence_orphaned_reads() -> None:
    """A failed orbax restore leaves its other array reads as coroutines whose errors nobody retrieves;
    whenever the interpreter collects them (often at exit), each prints a traceback ("Exception ignored
    in ...") after the run's one-line error. From here on those are dropped: the DataError raised next
    is the run's error. Anything else unraisable still reaches the previous hook."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if "_read_array_index_and_device_put" not in repr(unraisable.object):
            previous(unraisable)

    sys.unraisablehook = hook


class PreemptionFlag:
    """SIGTERM (preemption) sets a flag; the step loop checks it between steps, saves and exits."""

    def __init__(self):
        self._event = threading.Event()
        self._previous = None

    def __enter__(self) -> PreemptionFlag:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self._event.set()

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)

    @property
    def requested(self) -> bool:
        return self._event.is_set()
