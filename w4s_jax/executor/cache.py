"""Persistent SQLite cache of executor responses, one row per (request key, sample index).

Why per sample index: a workflow that asks the same prompt five times (or once with n=5) must get
five distinct samples, and a rerun must get the same five back without paying again. A reply is
committed before its caller sees it (WAL mode), so a crash loses no paid-for reply. Async callers
use group commit (`store`): the replies of every call that completes in one event-loop iteration
share one transaction, which keeps the per-call cost small at hundreds of calls per second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import pathlib
import sqlite3
import threading
import time
from collections.abc import Mapping

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
  request_key TEXT NOT NULL,
  sample_index INTEGER NOT NULL,
  text TEXT NOT NULL,
  prompt_tokens INTEGER NOT NULL,
  completion_tokens INTEGER NOT NULL,
  created REAL NOT NULL,
  PRIMARY KEY (request_key, sample_index)
)
"""


Row = tuple[str, int, str, int, int, float]  # key, sample index, text, prompt/completion tokens, time


def _rows(key: str, items: list[tuple[int, str]], prompt_tokens: int, completion_tokens: int) -> list[Row]:
    now = time.time()
    return [(key, index, text, prompt_tokens, completion_tokens, now) for index, text in items]


def request_key(*, model: str, messages: list[dict[str, str]], temperature: float, max_tokens: int,
                response_format: str, sampling: Mapping[str, object] | None = None) -> str:
    """A stable hash of everything that shapes a reply (the system prompt is part of `messages`).
    `sampling`: a seeded call's extra fields (seed, top_p, top_k), so that two seeds never share a
    reply; None (the executor's calls) leaves the key as it always was."""
    payload = {
        "model": model,
        "messages": messages,
        "temperature": float(temperature),
        "max_tokens": int(max_tokens),
        "response_format": response_format,
    }
    if sampling is not None:
        payload["sampling"] = dict(sampling)
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclasses.dataclass
class _GroupCommit:
    """The rows waiting for the next commit in one event loop, and one future per waiting caller."""

    rows: list[Row] = dataclasses.field(default_factory=list)
    waiters: list[asyncio.Future[None]] = dataclasses.field(default_factory=list)


class ResponseCache:
    """Thread-safe SQLite store: `get(key, indices)` and `store(key, items, tokens)` (async, group commit)."""

    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._groups: dict[asyncio.AbstractEventLoop, _GroupCommit] = {}  # an entry lives until its flush
        with self._lock:
            self._db.execute(SCHEMA)

    @property
    def _db(self) -> sqlite3.Connection:
        """The connection, reopened on demand: a client closed after one event loop can serve another."""
        if self._connection is None:
            self._connection = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute("PRAGMA busy_timeout=30000")
        return self._connection

    def get(self, key: str, indices: list[int]) -> dict[int, str]:
        """The cached texts among `indices` (missing indices are absent from the result)."""
        if not indices:
            return {}
        marks = ",".join("?" * len(indices))
        with self._lock:
            rows = self._db.execute(
                f"SELECT sample_index, text FROM responses WHERE request_key = ? AND sample_index IN ({marks})",
                [key, *indices],
            ).fetchall()
        return {int(index): text for index, text in rows}

    async def store(self, key: str, items: list[tuple[int, str]], prompt_tokens: int,
                    completion_tokens: int) -> None:
        """Stores the replies of one completed call; returns once they are committed, together with
        those of every other call stored in the same event-loop iteration (one transaction for all)."""
        loop = asyncio.get_running_loop()
        group = self._groups.get(loop)
        if group is None:
            group = self._groups[loop] = _GroupCommit()
            loop.call_soon(self._flush, loop, group)
        group.rows.extend(_rows(key, items, prompt_tokens, completion_tokens))
        committed = loop.create_future()
        group.waiters.append(committed)
        await committed

    def _flush(self, loop: asyncio.AbstractEventLoop, group: _GroupCommit) -> None:
        del self._groups[loop]
        try:
            self._commit(group.rows)
        except Exception as error:  # every waiter of this group sees the failure
            for waiter in group.waiters:
                if not waiter.done():
                    waiter.set_exception(error)
        else:
            for waiter in group.waiters:
                if not waiter.done():  # a cancelled caller's rows are committed all the same
                    waiter.set_result(None)

    def _commit(self, rows: list[Row]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
