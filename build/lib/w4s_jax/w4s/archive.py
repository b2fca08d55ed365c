"""The archive of scored workflows of one rollout: one .py file per workflow plus a JSON index.

The .py files let a person read or rerun any workflow (`w4s-jax eval --config.workflow=...`); the
index holds what the loop needs (validation score, origin, feedback). Files are written atomically
(`atomic_write`) so a crash never leaves a half-written index.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

from w4s_jax.w4s.atomic import atomic_write
from w4s_jax.w4s.prompts import ArchiveView


@dataclasses.dataclass(frozen=True)
class ArchiveEntry:
    """A workflow with its validation score; `origin` is 'seed:<name>' or 'e<ep>t<turn>c<cand>'."""

    name: str
    workflow_hash: str
    origin: str
    val_score: float
    iteration: int
    feedback: str
    file: str


class Archive:
    """Entries in insertion order; a workflow (by hash) is stored once, with its first score."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.entries: list[ArchiveEntry] = []
        self.sources: dict[str, str] = {}

    def add(self, source: str, workflow_hash: str, origin: str, val_score: float, iteration: int,
            feedback: str) -> ArchiveEntry:
        for entry in self.entries:
            if entry.workflow_hash == workflow_hash:
                return entry
        name = origin.removeprefix("seed:") if origin.startswith("seed:") else f"workflow_{len(self.entries):03d}"
        file = f"{len(self.entries):03d}_{workflow_hash}.py"
        entry = ArchiveEntry(name, workflow_hash, origin, val_score, iteration, feedback, file)
        with atomic_write(self.directory / file) as handle:
            handle.write(source)
        self.entries.append(entry)
        self.sources[workflow_hash] = source
        self._write_index()
        return entry

    def _write_index(self) -> None:
        index: dict[str, Any] = {"entries": [dataclasses.asdict(entry) for entry in self.entries]}
        with atomic_write(self.directory / "index.json") as handle:
            handle.write(json.dumps(index, indent=2, ensure_ascii=False) + "\n")

    def best(self) -> ArchiveEntry:
        """Highest validation score; the earliest entry wins ties (a later copy has to beat it)."""
        if not self.entries:
            raise ValueError("the archive is empty: no workflow was scored")
        return max(self.entries, key=lambda entry: (entry.val_score, -self.entries.index(entry)))

    def best_score(self) -> float:
        return self.best().val_score if self.entries else 0.0

    def top(self, count: int) -> list[ArchiveView]:
        """The `count` best entries for a prompt, in archive order (older first)."""
        ranked = sorted(range(len(self.entries)), key=lambda i: (-self.entries[i].val_score, i))[:count]
        return [
            ArchiveView(self.entries[i].name, self.sources[self.entries[i].workflow_hash], self.entries[i].val_score)
            for i in sorted(ranked)
        ]
