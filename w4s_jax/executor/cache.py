"""Persistent SQLite cache of executor responses, one row per (request key, sample index).

Why per sample index: a workflow that asks the same prompt five times (or once with n=5) must get
five distinct samples, and a rerun must get the same five back without paying again. Each row is
committed as soon as its call completes (WAL mode), so a crash loses no paid-for reply.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import sqlite3
import threading
import time

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


def request_key(*, model: str, messages: list[dict[str, str]], temperature: float, max_tokens: int,
                response_format: str) -> str:
    """A stable hash of everything that shapes a reply (the system prompt is part of `messages`)."""
    payload = {
        "model": model,
        "messages": messages,
        "temperature": float(temperature),
        "max_tokens": int(max_tokens),
        "response_format": response_format,
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """Thread-safe SQLite store: `get(key, indices)` and `put(key, index, text, tokens)`."""

    def __init__(self, path: str | pathlib.Path) -> None:
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
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

    def put_many(self, key: str, items: list[tuple[int, str]], prompt_tokens: int,
                 completion_tokens: int) -> None:
        """Stores the responses of one completed call in one committed transaction."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                [(key, index, text, prompt_tokens, completion_tokens, now) for index, text in items],
            )
            self._db.execute("COMMIT")

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
