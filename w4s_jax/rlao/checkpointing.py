"""Orbax checkpoints of a training run: train state, grain iterator state and run metadata.

One `CheckpointManager` per run directory: async saves (the step loop goes on while arrays are
written), keep-N, and atomic step directories, so a crash mid-save leaves the previous checkpoint
intact. The grain iterator's position is saved beside the state (one file per host), so a resumed
run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import functools
import logging
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
        _silence_orphaned_reads(str(self.manager.directory))
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
        raise DataError(f"{self.manager.directory / str(step)}: checkpoint cannot be restored into this run "
                        f"({failure}); move that step directory away to resume from an older checkpoint (or this "
                        "round's start), or resume with the model it was saved from")

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


@functools.cache
def _silence_orphaned_reads(directory: str) -> None:
    """A failed orbax restore closes its event loop while its other array reads are still in flight.
    Each of them later reports into the closed loop, in its own way and from its own thread, often
    before the restore's error has even reached us: tensorstore's completion callback raises "Event
    loop is closed" (an unraisable with no object), a read coroutine nobody awaited is collected
    ("Exception ignored in ..."), a read that failed too is logged by asyncio ("Task/Future exception
    was never retrieved", its error naming a file under `directory`). So before the first restore
    from `directory` exactly those are filtered out for the rest of the process: the DataError a
    failed restore raises is the run's error. Anything else still reaches the previous unraisable
    hook and asyncio's log."""
    _drop_orphaned_read_unraisables()
    logging.getLogger("asyncio").addFilter(lambda record: not _is_orphaned_read_log(record, directory))


@functools.cache
def _drop_orphaned_read_unraisables() -> None:
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not _is_orphaned_read(unraisable):
            previous(unraisable)

    sys.unraisablehook = hook


def _is_orphaned_read(unraisable: Any) -> bool:
    if "_read_array_index_and_device_put" in repr(unraisable.object):
        return True
    error = unraisable.exc_value
    return unraisable.object is None and isinstance(error, RuntimeError) and str(error) == "Event loop is closed"


def _is_orphaned_read_log(record: logging.LogRecord, directory: str) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return "exception was never retrieved" in record.getMessage() and directory in str(error)


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
