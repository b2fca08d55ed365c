"""`command_ledger(config, output_dir)`: the one budget of a command, built once at its entry.

`executor.budget_usd` caps one command: every collection of `rlao` (all rounds and the final one),
of `collect` and `optimize`, executor and API meta-agent calls together. The commands build this
ledger once and hand it to every `run_w4s(..., ledger=...)` and to the meta-agent policy; what it
spends is journaled in `<output_dir>/spent.jsonl` (executor/spend_journal.py), so a rerun with the
same output_dir continues from what the killed run spent instead of from zero.
"""

from __future__ import annotations

import pathlib
from typing import Any

from w4s_jax.executor.spend_journal import SPENT_FILE, JournaledLedger


def command_ledger(config: Any, output_dir: str | pathlib.Path, process_index: int = 0,
                   process_count: int = 1) -> JournaledLedger:
    """The command's ledger over `config.executor` (prices, budget_usd), resumed from `output_dir`.

    On several hosts each host spends from its own ledger and journal (`host<i>/spent.jsonl`), as each
    runs its own executor client."""
    prices = config.executor.get("prices") or {}
    prices = prices.to_dict() if hasattr(prices, "to_dict") else dict(prices)
    directory = pathlib.Path(output_dir)
    if process_count > 1:
        directory = directory / f"host{process_index}"
    return JournaledLedger(prices, float(config.executor.budget_usd), directory / SPENT_FILE)
