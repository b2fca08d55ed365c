"""A `Ledger` whose spending outlives the process: one budget per command, kept across resume.

Why: a command (`rlao` with its rounds, `collect`, `optimize`) runs several collections, and a killed
command is rerun with the same output_dir. With one ledger per collection, or a fresh one per
process, the budget would be per collection and start again from zero on every resume.

`JournaledLedger` appends one line to a JSONL file every time its totals change (a call reserved,
settled or released): `{"spent": ..., "reserved": ...}` after the change, written, flushed and
fsynced before the call goes on, so the line of a reservation is on disk before its request is sent.
Loading takes the last complete line and counts `spent + reserved` as already spent: a call that
was in flight when the process died may have been billed, so its worst case is kept (the same rule
as `Ledger.close_unanswered` for a call that timed out). A line cut short by a crash is dropped;
any other bad line is a `DataError` naming the file and line (the CLI exits 2).
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import threading
from collections.abc import Mapping

from w4s_jax import crash_points
from w4s_jax.data_errors import DataError
from w4s_jax.executor.accounting import Ledger

SPENT_FILE = "spent.jsonl"


def load_spent(path: pathlib.Path) -> float:
    """Dollars spent (worst case of calls left in flight included) by earlier processes, per `path`."""
    if not path.exists():
        return 0.0
    data = path.read_bytes()
    good_end = data.rfind(b"\n") + 1
    if good_end < len(data):  # a line cut short by a crash: its change never reached a request
        with open(path, "r+b") as handle:
            handle.truncate(good_end)
    spent = 0.0
    for number, line in enumerate(data[:good_end].splitlines(), start=1):
        try:
            record = json.loads(line)
            spent = float(record["spent"]) + float(record["reserved"])
        except (ValueError, TypeError, KeyError) as error:
            raise DataError(f"{path}:{number}: corrupt spending record ({type(error).__name__}: {error}); "
                            "expected {\"spent\": dollars, \"reserved\": dollars}") from None
        if not (math.isfinite(spent) and spent >= 0):
            raise DataError(f"{path}:{number}: spending record must hold finite dollars >= 0, got {line!r}")
    return spent


class JournaledLedger(Ledger):
    """A `Ledger` that starts from the dollars journaled in `path` and journals every change."""

    def __init__(self, prices: Mapping[str, Mapping[str, float]], budget_usd: float,
                 path: str | os.PathLike[str]) -> None:
        super().__init__(prices, budget_usd)
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.spent_before_usd = load_spent(self.path)
        self.spent_usd = self.spent_before_usd
        self._journal_lock = threading.RLock()  # orders the lines like the changes they record
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the command

    def _journal(self) -> None:
        self._file.write(json.dumps({"spent": self.spent_usd, "reserved": self.reserved_usd}) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def reserve(self, model: str, role: str, prompt_tokens_bound: int, max_output_tokens: int) -> float:
        with self._journal_lock:
            reservation = super().reserve(model, role, prompt_tokens_bound, max_output_tokens)
            if reservation:
                self._journal()
                crash_points.reached("budget-reserved")  # journaled, its request not yet sent
            return reservation

    def release(self, reservation: float) -> None:
        with self._journal_lock:
            super().release(reservation)
            if reservation:
                self._journal()

    def settle(self, model: str, role: str, reservation: float, prompt_tokens: int,
               completion_tokens: int, responses: int) -> float:
        with self._journal_lock:
            cost = super().settle(model, role, reservation, prompt_tokens, completion_tokens, responses)
            if reservation or cost:
                self._journal()
            return cost

    def report(self) -> dict[str, object]:
        """`Ledger.report` plus what earlier processes of this command spent (`spent_before_usd`)."""
        return {**super().report(), "spent_before_usd": self.spent_before_usd}

    def close(self) -> None:
        with self._journal_lock:
            self._file.close()
