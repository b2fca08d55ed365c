"""ResponseCache group commit: rows are committed before `store` returns, one transaction per loop
iteration, failures reach every waiter, and a cancelled caller's paid-for reply is still kept."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from w4s_jax.executor.cache import ResponseCache


def _rows_on_disk(path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(path) as connection:  # a separate connection sees only committed rows
        return connection.execute("SELECT request_key, sample_index, text FROM responses ORDER BY 1, 2").fetchall()


def test_concurrent_stores_share_one_commit_and_are_durable_on_return(tmp_path, monkeypatch):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    commits: list[int] = []
    original = cache._commit
    monkeypatch.setattr(cache, "_commit", lambda rows: (commits.append(len(rows)), original(rows))[1])

    async def main() -> None:
        await asyncio.gather(*(cache.store(f"key{i:02d}", [(0, f"reply {i}"), (1, f"other {i}")], 5, 7)
                               for i in range(40)))
        assert len(_rows_on_disk(tmp_path / "cache.sqlite")) == 80  # committed before store returned
        await cache.store("late", [(3, "later reply")], 1, 1)

    asyncio.run(main())
    assert commits == [80, 1]
    assert cache.get("key07", [0, 1, 2]) == {0: "reply 7", 1: "other 7"}
    assert cache.get("late", [3]) == {3: "later reply"}
    cache.close()


def test_a_failed_commit_reaches_every_waiter_and_keeps_nothing(tmp_path):
    path = tmp_path / "cache.sqlite"
    cache = ResponseCache(path)
    with sqlite3.connect(path) as connection:
        connection.execute("DROP TABLE responses")
        connection.execute("CREATE TABLE responses (request_key TEXT)")  # wrong columns: INSERT fails

    async def main() -> list[object]:
        return await asyncio.gather(cache.store("a", [(0, "x")], 1, 1), cache.store("b", [(0, "y")], 1, 1),
                                    return_exceptions=True)

    outcomes = asyncio.run(main())
    assert all(isinstance(outcome, sqlite3.OperationalError) for outcome in outcomes), outcomes
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0
    cache.close()


def test_a_cancelled_caller_still_has_its_reply_committed(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")

    async def main() -> None:
        task = asyncio.create_task(cache.store("paid", [(0, "kept")], 2, 3))
        await asyncio.sleep(0)  # the row is queued for this iteration's commit
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)

    asyncio.run(main())
    assert _rows_on_disk(tmp_path / "cache.sqlite") == [("paid", 0, "kept")]
    cache.close()
