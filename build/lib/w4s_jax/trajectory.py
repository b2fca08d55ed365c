"""The trajectory format (schema `w4s-trajectory/1`, docs/trajectories.md): its typed record, reader and writer.

The W4S loop writes one record per sampled candidate; RLAO trains on them and the learning experiment
measures them. All three go through this module, so the schema is written once. It imports nothing
from the package, so every layer may use it.

Every record is checked on reading, so a bad file fails in seconds with the file, line and field
named, not hours later inside a jitted step. Fields are only ever added under the schema's name:
`repair_branch` and `check_failed` came later (a record without them has no repair branch, and its
documented `note`, "check failed after N repairs: ...", tells whether its check failed), and the
fields RLAO never needed (`rollout`, `seed`, `iteration`, `repairs`, `workflow_hash`, `note`) may be
left out of a hand-written file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TextIO

SCHEMA = "w4s-trajectory/1"
ROLES = ("system", "user", "assistant")


class TrajectoryFormatError(ValueError):
    """A trajectory file is missing, empty or holds a record that breaks the schema."""


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """One candidate action at one turn: the state it was sampled from, the reply, and its reward."""

    run: str
    task: str
    episode: int
    turn: int
    candidate: int
    messages: tuple[dict[str, str], ...]
    reply: str
    reward: float
    val_score: float | None
    valid_action: bool
    selected: bool
    repair_branch: tuple[dict[str, str], ...] = ()  # (failed reply, repair request) pairs that led to `reply`
    check_failed: bool = False  # the workflow still failed its check after the last repair
    rollout: str = ""
    seed: int | None = None
    iteration: int | None = None
    repairs: int = 0
    workflow_hash: str = ""
    note: str = ""
    source: str = ""  # "file:line" of a record read from a file, for error messages and reports

    @property
    def prompt_messages(self) -> tuple[dict[str, str], ...]:
        """The context that produced `reply`: the turn's state, then the repair branch if any."""
        return self.messages + self.repair_branch

    @property
    def trainable(self) -> bool:
        """A candidate the paper trains on: a valid workflow that passed its check (and was evaluated)."""
        return self.valid_action and not self.check_failed

    def to_json(self) -> dict[str, Any]:
        """The record as one line of the file holds it (every field, in the documented order)."""
        return {
            "schema": SCHEMA,
            "run": self.run,
            "rollout": self.rollout,
            "task": self.task,
            "seed": self.seed,
            "episode": self.episode,
            "turn": self.turn,
            "iteration": self.iteration,
            "candidate": self.candidate,
            "messages": list(self.messages),
            "repair_branch": list(self.repair_branch),
            "reply": self.reply,
            "reward": self.reward,
            "val_score": self.val_score,
            "valid_action": self.valid_action,
            "selected": self.selected,
            "repairs": self.repairs,
            "check_failed": self.check_failed,
            "workflow_hash": self.workflow_hash,
            "note": self.note,
        }


def write_records(handle: TextIO, records: Iterable[Mapping[str, Any]]) -> int:
    """Writes records in their JSON form (`Trajectory.to_json`), one per line; returns their number."""
    count = 0
    for record in records:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count


def _fail(path: pathlib.Path, line: int, field: str, problem: str) -> TrajectoryFormatError:
    return TrajectoryFormatError(f"{path}:{line}: field '{field}': {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


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


def _check_failed(raw: dict, note: str, path: pathlib.Path, line: int) -> bool:
    if "check_failed" in raw:
        if not isinstance(raw["check_failed"], bool):
            raise _fail(path, line, "check_failed", f"expected true or false, got {raw['check_failed']!r:.60}")
        return raw["check_failed"]
    return note.startswith("check failed")


_Check = tuple[Callable[[Any], bool], str]
_REQUIRED: dict[str, _Check] = {
    "run": (_is_str, "a string"),
    "task": (_is_str, "a string"),
    "episode": (_is_int, "an integer"),
    "turn": (_is_int, "an integer"),
    "candidate": (_is_int, "an integer"),
    "reply": (_is_str, "a string"),
    "reward": (_is_number, "a finite number"),
    "val_score": (lambda v: v is None or _is_number(v), "a finite number or null"),
    "valid_action": (_is_bool, "true or false"),
    "selected": (_is_bool, "true or false"),
}
_OPTIONAL: dict[str, _Check] = {  # checked when present; absent, the record's default
    "rollout": (_is_str, "a string"),
    "seed": (_is_int, "an integer"),
    "iteration": (_is_int, "an integer"),
    "repairs": (_is_int, "an integer"),
    "workflow_hash": (_is_str, "a string"),
    "note": (_is_str, "a string"),
}


def parse_record(raw: Any, path: pathlib.Path, line: int) -> Trajectory:
    """Validates one decoded JSON value against the schema; errors name file, line and field."""
    if not isinstance(raw, dict):
        raise _fail(path, line, "<record>", f"expected a JSON object, got {type(raw).__name__}")
    if raw.get("schema") != SCHEMA:
        raise _fail(path, line, "schema", f"expected {SCHEMA!r}, got {raw.get('schema')!r:.60}")
    for field, (check, expected) in _REQUIRED.items():
        if field not in raw:
            raise _fail(path, line, field, "missing")
        if not check(raw[field]):
            raise _fail(path, line, field, f"expected {expected}, got {raw[field]!r:.60}")
    for field, (check, expected) in _OPTIONAL.items():
        if field in raw and not check(raw[field]):
            raise _fail(path, line, field, f"expected {expected}, got {raw[field]!r:.60}")
    if "messages" not in raw:
        raise _fail(path, line, "messages", "missing")
    messages = _check_messages(raw["messages"], path, line)
    optional = {field: raw[field] for field in _OPTIONAL if field in raw}
    return Trajectory(
        run=raw["run"],
        task=raw["task"],
        episode=raw["episode"],
        turn=raw["turn"],
        candidate=raw["candidate"],
        messages=messages,
        reply=raw["reply"],
        reward=float(raw["reward"]),
        val_score=None if raw["val_score"] is None else float(raw["val_score"]),
        valid_action=raw["valid_action"],
        selected=raw["selected"],
        repair_branch=_check_repair_branch(raw.get("repair_branch"), path, line),
        check_failed=_check_failed(raw, optional.get("note", ""), path, line),
        source=f"{path}:{line}",
        **optional,
    )


def read_trajectory_file(path: str | pathlib.Path, *, allow_empty: bool = False) -> list[Trajectory]:
    """All records of one JSONL file (blank lines skipped). An empty file is an error unless
    `allow_empty`: training on nothing is a mistake, while a collection may count no candidates."""
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
    if not records and not allow_empty:
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
