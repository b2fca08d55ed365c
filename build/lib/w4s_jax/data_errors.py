"""Errors about benchmark data, kept free of heavy imports so the CLI can catch them cheaply.

The CLI prints either one as a single line and exits with status 2: the user fixes the data or where
it points, no traceback helps.
"""

from __future__ import annotations

from collections.abc import Sequence

DATA_DIR_FLAG = "--config.task.data_dir"


class DataError(ValueError):
    """Bad benchmark data or data location: the message names the file, line and field."""


class MissingData(DataError):
    """No benchmark data where it was looked for.

    Raised by a reader with only the path (`tried`) and what was found there (`detail`); the task that
    asked re-raises it with its name and `ways` to get the data. A way may hold `{flag}`, the option
    that sets the data location (`--config.task.data_dir` for the run subcommands); `render(flag)`
    fills it in for a command whose option is named otherwise.
    """

    def __init__(self, tried: str, detail: str = "", task: str = "", ways: Sequence[str] = ()) -> None:
        self.tried, self.detail, self.task, self.ways = str(tried), detail, task, tuple(ways)
        super().__init__(self.render())

    def render(self, flag: str = DATA_DIR_FLAG) -> str:
        where = f"{self.tried} ({self.detail})" if self.detail else self.tried
        if not self.task:
            return f"{where}: benchmark data not found"
        ways = "; or ".join(way.replace("{flag}", flag) for way in self.ways)
        return f"task {self.task!r}: no data at {where}. Get it with {ways}"
