"""Reading and validating RLAO trajectory files (schema `w4s-trajectory/1`, docs/trajectories.md).

A trajectory file is written by the W4S loop, one JSON object per sampled candidate. Every record is
checked before training starts, so a bad file fails in seconds with the file, line and field named,
not hours later inside a jitted step.

`repair_branch` and `check_failed` were added to the schema later (fields are only ever added under
its name): a record without them has no repair branch, and its documented `note` ("check failed
after N repairs: ...") tells whether its check failed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

SCHEMA = "w4s-trajectory/1"
ROLES = ("system", "user", "assistant")


class TrajectoryFormatError(ValueError):
    """A trajectory file is missing, empty or holds a record that breaks the schema."""


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One candidate action at one turn: the state it was sampled from, the reply, and its reward."""

    messages: tuple[dict[str, str], ...]
    repair_branch: tuple[dict[str, str], ...]  # (failed reply, repair request) pairs that led to `reply`
    reply: str
    reward: float
    run: str
    task: str
    episode: int
    turn: int
    candidate: int
    val_score: float | None
    valid_action: bool
    selected: bool
    check_failed: bool  # the workflow still failed its check after the last repair
    source: str  # "file:line", for error messages and reports

    @property
    def prompt_messages(self) -> tuple[dict[str, str], ...]:
        """The context that produced `reply`: the turn's state, then the repair branch if any."""
        return self.messages + self.repair_branch

    @property
    def trainable(self) -> bool:
        """A candidate the paper trains on: a valid workflow that passed its check (and was evaluated)."""
        return self.valid_action and not self.check_failed


def _fail(path: pathlib.Path, line: int, field: str, problem: str) -> TrajectoryFormatError:
    return TrajectoryFormatError(f"{path}:{line}: field '{field}': {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _message_list(raw: Any, path: pathlib.Path, line: int, field: str) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        raise _fail(path, line, field, f"expected a list of messages, got {raw!r:.80}")
    messages = []
    for i, message in enumerate(raw):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise _fail(path, line, where, f"expected an object with role and content, got {message!r:.80}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _fail(path, line, f"{where}.role", f"expected one of {ROLES}, got {role!r:.40}")
        if not isinstance(content, str):
            raise _fail(path, line, f"{where}.content", f"expected a string, got {type(content).__name__}")
        messages.append({"role": role, "content": content})
    return messages


def _check_messages(raw: Any, path: pathlib.Path, line: int) -> tuple[dict[str, str], ...]:
    messages = _message_list(raw, path, line, "messages")
    if not messages:
        raise _fail(path, line, "messages", "expected a non-empty list of messages, got []")
    if not any(m["role"] == "user" for m in messages):
        raise _fail(path, line, "messages", "holds no user message (the task prompt is missing)")
    if messages[-1]["role"] != "user":
        raise _fail(path, line, "messages", f"must end with a user message, ends with {messages[-1]['role']!r}")
    return tuple(messages)


def _check_repair_branch(raw: Any, path: pathlib.Path, line: int) -> tuple[dict[str, str], ...]:
    """Pairs of (assistant: a failed reply, user: the repair request); absent means none."""
    branch = _message_list([] if raw is None else raw, path, line, "repair_branch")
    roles = [m["role"] for m in branch]
    if roles != ["assistant", "user"] * (len(branch) // 2):
        raise _fail(path, line, "repair_branch", f"expected (assistant, user) pairs, got roles {roles}")
    return tuple(branch)


def _check_failed(raw: dict, path: pathlib.Path, line: int) -> bool:
    if "check_failed" in raw:
        if not isinstance(raw["check_failed"], bool):
            raise _fail(path, line, "check_failed", f"expected true or false, got {raw['check_failed']!r:.60}")
        return raw["check_failed"]
    note = raw.get("note", "")
    return isinstance(note, str) and note.startswith("check failed")


_TYPED_FIELDS: dict[str, tuple[Any, str]] = {
    "run": (lambda v: isinstance(v, str), "a string"),
    "task": (lambda v: isinstance(v, str), "a string"),
    "episode": (_is_int, "an integer"),
    "turn": (_is_int, "an integer"),
    "candidate": (_is_int, "an integer"),
    "reply": (lambda v: isinstance(v, str), "a string"),
    "reward": (_is_number, "a finite number"),
    "val_score": (lambda v: v is None or _is_number(v), "a finite number or null"),
    "valid_action": (lambda v: isinstance(v, bool), "true or false"),
    "selected": (lambda v: isinstance(v, bool), "true or false"),
}


def parse_record(raw: Any, path: pathlib.Path, line: int) -> Trajectory:
    """Validates one decoded JSON value against the schema; errors name file, line and field."""
    if not isinstance(raw, dict):
        raise _fail(path, line, "<record>", f"expected a JSON object, got {type(raw).__name__}")
    if raw.get("schema") != SCHEMA:
        raise _fail(path, line, "schema", f"expected {SCHEMA!r}, got {raw.get('schema')!r:.60}")
    for field, (check, expected) in _TYPED_FIELDS.items():
        if field not in raw:
            raise _fail(path, line, field, "missing")
        if not check(raw[field]):
            raise _fail(path, line, field, f"expected {expected}, got {raw[field]!r:.60}")
    if "messages" not in raw:
        raise _fail(path, line, "messages", "missing")
    messages = _check_messages(raw["messages"], path, line)
    return Trajectory(
        messages=messages,
        repair_branch=_check_repair_branch(raw.get("repair_branch"), path, line),
        reply=raw["reply"],
        reward=float(raw["reward"]),
        run=raw["run"],
        task=raw["task"],
        episode=raw["episode"],
        turn=raw["turn"],
        candidate=raw["candidate"],
        val_score=None if raw["val_score"] is None else float(raw["val_score"]),
        valid_action=raw["valid_action"],
        selected=raw["selected"],
        check_failed=_check_failed(raw, path, line),
        source=f"{path}:{line}",
    )


def read_trajectory_file(path: str | pathlib.Path) -> list[Trajectory]:
    """All records of one JSONL file (blank lines skipped); an empty file is an error."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise TrajectoryFormatError(f"{path}: trajectory file not found")
    records = []
    with path.open(encoding="utf-8") as handle:
        for line_number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as error:
                raise _fail(path, line_number, "<json>", f"not valid JSON ({error.msg} at column {error.colno})") from None
            records.append(parse_record(raw, path, line_number))
    if not records:
        raise TrajectoryFormatError(f"{path}:1: field '<record>': file holds no trajectories (empty file)")
    return records


def expand_paths(paths: str | Sequence[str] | Iterable[str]) -> list[pathlib.Path]:
    """Comma-separated string or list -> paths; a directory means its trajectories.jsonl."""
    if isinstance(paths, str):
        paths = [p for p in paths.split(",") if p.strip()]
    out = []
    for raw in paths:
        path = pathlib.Path(str(raw).strip())
        out.append(path / "trajectories.jsonl" if path.is_dir() else path)
    if not out:
        raise TrajectoryFormatError("no trajectory files given")
    return out


def read_trajectories(paths: str | Sequence[str]) -> list[Trajectory]:
    """Every record of every file, in file order (the pipeline shuffles later, seeded)."""
    records: list[Trajectory] = []
    for path in expand_paths(paths):
        records.extend(read_trajectory_file(path))
    return records
