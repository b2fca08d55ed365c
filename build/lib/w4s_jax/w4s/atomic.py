"""`atomic_write(path)`: a text file that appears whole or not at all.

The archive, the trajectories and `w4s-jax eval`'s report are read by people and by later runs; a
crash mid-write must leave the previous file (or none), never half of one.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
from collections.abc import Iterator
from typing import TextIO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Yields a handle on a temporary file beside `path`; on a clean exit it is flushed, fsynced and
    renamed over `path`; on an error it is removed and `path` is left as it was."""
    path = pathlib.Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
