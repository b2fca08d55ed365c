"""`command_ledger(executor, output_dir)`: the one budget of a command, built once at its entry.

`executor.budget_usd` caps one command: every collection of `rlao` (all rounds and the final one),
of `collect` and `optimize`, executor and API meta-agent calls together. The commands build this
ledger once and hand it to every `run_w4s(..., ledger=...)` and to the meta-agent policy; what it
spends is journaled in `<output_dir>/spent.jsonl` (executor/spend_journal.py), so a rerun with the
same output_dir continues from what the killed run spent instead of from zero.
"""

from __future__ import annotations

import pathlib

from w4s_jax.executor.settings import ExecutorSettings
from w4s_jax.executor.spend_journal import SPENT_FILE, JournaledLedger


def command_ledger(executor: ExecutorSettings, output_dir: str | pathlib.Path, process_index: int = 0,
                   process_count: int = 1) -> JournaledLedger:
    """The command's ledger over the executor's prices and budget_usd, resumed from `output_dir`.

    On several hosts each host spends from its own ledger and journal (`host<i>/spent.jsonl`), as each
    runs its own executor client."""
    directory = pathlib.Path(output_dir)
    if process_count > 1:
        directory = directory / f"host{process_index}"
    return JournaledLedger(executor.prices, executor.budget_usd, directory / SPENT_FILE)
