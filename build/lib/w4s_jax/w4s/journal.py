"""Append-only JSONL journal: every generation, evaluation and reward, durable as soon as it is known.

Why: a W4S run pays for meta-agent generations and executor calls. Each result is written as one
line, flushed and fsynced, before the loop acts on it. A restarted run replays the journal: the loop
runs again from the start, but every generation and evaluation whose key is journaled is answered
from the journal, so nothing paid for is paid again, and the replayed run takes the same decisions.

Each record is `{"kind": ..., "key": ..., **payload}`; (kind, key) is unique. A line cut short by a
crash is dropped on load (and cut off the file) since its result was never acted upon; any other bad
line is a `DataError` naming the file and line (the CLI exits 2 and nothing is overwritten).
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

from w4s_jax import crash_points
from w4s_jax.data_errors import DataError


def read_journal(path: pathlib.Path) -> tuple[list[dict[str, Any]], int]:
    """(the records of the journal at `path`, the length of its whole lines); a line cut short at the
    end is left out, any other bad line is a `DataError` naming the file and line. Reads only."""
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    records = []
    for number, line in enumerate(data[:good_end].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            record = error
        if not isinstance(record, dict) or not {"kind", "key"} <= record.keys():
            raise DataError(f"{path}:{number}: corrupt journal line ({str(record)[:120]}); expected a JSON object "
                            "with 'kind' and 'key'; move the file away to start the run afresh")
        records.append(record)
    return records, good_end


class Journal:
    """Keyed, append-only, fsynced JSONL records; `get` answers replays, `put` records new results."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[tuple[str, str], dict[str, Any]] = {}
        self._order: list[dict[str, Any]] = []
        self._load()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the run

    def _load(self) -> None:
        if not self.path.exists():
            return
        records, good_end = read_journal(self.path)
        if good_end < self.path.stat().st_size:  # checked first: a corrupt file is left as it is
            with open(self.path, "r+b") as handle:
                handle.truncate(good_end)
        for record in records:
            self._records[(record["kind"], record["key"])] = record
            self._order.append(record)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """The journaled record, or None."""
        return self._records.get((kind, key))

    def has(self, kind: str, key: str) -> bool:
        return (kind, key) in self._records

    def put(self, kind: str, key: str, **payload: Any) -> dict[str, Any]:
        """Writes the record once (a replayed key is not written again) and makes it durable."""
        existing = self._records.get((kind, key))
        if existing is not None:
            return existing
        record = {"kind": kind, "key": key, **payload}
        line = json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"  # strict JSON
        crash_points.reached(f"journal:{kind}")
        if crash_points.due(f"journal-torn:{kind}"):  # a crash mid-write leaves half a line
            self._file.write(line[: len(line) // 2])
            self._file.flush()
            crash_points.kill()
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._records[(kind, key)] = record
        self._order.append(record)
        return record

    def records(self, kind: str) -> list[dict[str, Any]]:
        """All records of one kind in the order they were first written."""
        return [record for record in self._order if record["kind"] == kind]

    def close(self) -> None:
        self._file.close()
