"""Parent-side schema of the worker channel: every frame a worker sends is checked here.

A worker runs untrusted code, so anything it sends may be hostile: frames are size-capped before
they are read, must be JSON objects of a known type, and each field must have the expected type and
size. A frame that fails raises ProtocolError; the caller fails that sample and kills the worker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from w4s_jax.sandbox.framing import FrameError, decode_payload

LLM_METHODS = frozenset({"call_llm", "call_json_format_llm"})
SANDBOX_METHODS = frozenset({"execute_code"})
METHODS = LLM_METHODS | SANDBOX_METHODS
MAX_CALL_ID = 2**53
MAX_LAYERS = 32


class ProtocolError(ValueError):
    """A frame from a worker that breaks the schema; the worker is killed and the sample fails."""


@dataclass(frozen=True)
class Call:
    """An `agent.<method>(**kwargs)` request from a workflow thread."""

    id: int
    method: str
    kwargs: dict


@dataclass(frozen=True)
class Result:
    """The end of a job: a JSON answer or an error {type, message, line}, plus captured output."""

    answer: object
    error: dict | None
    stdout: str


@dataclass(frozen=True)
class Ready:
    """A confined worker waiting for its job, with the confinement layers that took effect."""

    layers: tuple[str, ...]
    pid: int


def parse(payload: bytes) -> Call | Result | Ready:
    """Decodes and validates one frame body."""
    try:
        message = decode_payload(payload)
    except FrameError as error:
        raise ProtocolError(str(error)) from None
    kind = message.get("type")
    if kind == "call":
        return _parse_call(message)
    if kind == "result":
        return _parse_result(message)
    if kind == "ready":
        return _parse_ready(message)
    raise ProtocolError(f"unknown frame type {str(kind)[:40]!r}; expected call, result or ready")


def _parse_call(message: dict) -> Call:
    call_id, method, kwargs = message.get("id"), message.get("method"), message.get("kwargs")
    if type(call_id) is not int or not 0 < call_id < MAX_CALL_ID:
        raise ProtocolError(f"call.id must be a positive integer, got {str(call_id)[:40]!r}")
    if method not in METHODS:
        raise ProtocolError(f"call.method must be one of {sorted(METHODS)}, got {str(method)[:40]!r}")
    if type(kwargs) is not dict:
        raise ProtocolError(f"call.kwargs must be an object, got {type(kwargs).__name__}")
    if method in LLM_METHODS:
        messages = kwargs.get("messages")
        if type(messages) is not list or not all(
            type(m) is dict and type(m.get("role")) is str and type(m.get("content")) is str for m in messages
        ):
            raise ProtocolError(f"agent.{method}: messages must be a list of {{role: str, content: str}}")
    else:
        if type(kwargs.get("code")) is not str:
            raise ProtocolError("agent.execute_code: code must be a string")
        if type(kwargs.get("timeout")) not in (int, float):
            raise ProtocolError("agent.execute_code: timeout must be a number")
    return Call(call_id, method, kwargs)


def _parse_result(message: dict) -> Result:
    error, stdout = message.get("error"), message.get("stdout", "")
    if error is not None:
        if type(error) is not dict or type(error.get("type")) is not str or type(error.get("message")) is not str:
            raise ProtocolError("result.error must be null or {type: str, message: str, line: int|null}")
        line = error.get("line")
        if line is not None and type(line) is not int:
            raise ProtocolError("result.error.line must be an integer or null")
        error = {"type": error["type"][:200], "message": error["message"][:4000], "line": line}
    if type(stdout) is not str:
        raise ProtocolError("result.stdout must be a string")
    return Result(message.get("answer"), error, stdout)


def _parse_ready(message: dict) -> Ready:
    layers, pid = message.get("layers"), message.get("pid")
    if type(layers) is not list or len(layers) > MAX_LAYERS or not all(type(x) is str for x in layers):
        raise ProtocolError("ready.layers must be a short list of strings")
    if type(pid) is not int:
        raise ProtocolError("ready.pid must be an integer")
    return Ready(tuple(layers), pid)


def json_size(value: object) -> int:
    """Bytes of `value` as compact JSON (the unit of sandbox.max_output_bytes)."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
