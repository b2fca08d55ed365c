"""Parent-side schema of the worker channel: every frame a worker sends is checked here.

A worker runs untrusted code and can write raw bytes to its channel, so anything it sends may be
hostile: frames are size-capped before they are read, must be JSON objects of a known type, and
every value in them must be valid Unicode (no lone surrogates), a finite number, and nest no deeper
than MAX_DEPTH with at most MAX_NODES values per frame; each field must have the expected type and
size. A frame that fails raises ProtocolError; the caller fails that sample and kills the worker.

Call frames carry only the argument names the worker's agent sends for each method (anything else
is a forgery, so a ProtocolError). The values of those arguments are checked against their ranges
by `check_arguments` before the call is dispatched: a value out of range becomes a ValueError the
workflow sees (its own code may have passed it), and nothing is allocated or sent for it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from w4s_jax.sandbox.framing import FrameError, decode_payload

LLM_METHODS = frozenset({"call_llm", "call_json_format_llm"})
SANDBOX_METHODS = frozenset({"execute_code", "read_attachment"})  # answered by the sandbox itself
TOOL_METHODS = frozenset({"web_search"})  # answered by the handler, but not executor (LLM) calls
METHODS = LLM_METHODS | SANDBOX_METHODS | TOOL_METHODS
# The argument names the worker's agent (agent_proxy.Agent) sends for each method, and no others.
_LLM_ARGUMENTS = {"messages", "model", "temperature", "max_completion_tokens", "num_of_response", "agent_role",
                  "instructions"}
ARGUMENTS = {
    "call_llm": frozenset(_LLM_ARGUMENTS | {"response_format"}),
    "call_json_format_llm": frozenset(_LLM_ARGUMENTS | {"return_dict_keys"}),
    "execute_code": frozenset({"code", "timeout"}),
    "read_attachment": frozenset(),
    "web_search": frozenset({"query"}),
}
MAX_QUERY_CHARS = 2000  # web_search
MAX_CALL_ID = 2**53
MAX_LAYERS = 32
# execute_code values cross in values.py's tagged encoding: up to 3 JSON levels per Python level, and
# values.MAX_DEPTH (100) Python levels; a frame adds its own 2.
MAX_DEPTH = 320
MAX_NODES = 200_000  # JSON values (scalars and containers) in one frame
MAX_MESSAGES = 1024
MAX_MESSAGE_FIELDS = 8
MAX_KEYS = 64  # return_dict_keys
MAX_KEY_CHARS = 256
MAX_SHORT_CHARS = 256  # model, role names, response_format
MAX_TOKENS = 1 << 20  # an absolute ceiling; the executor client also caps at its configured max_tokens
MAX_CODE_TIMEOUT_S = 86_400.0


class ProtocolError(ValueError):
    """A frame from a worker that breaks the schema; the worker is killed and the sample fails."""


@dataclass(frozen=True)
class Call:
    """An `agent.<method>(**kwargs)` request from a workflow thread; `size` is its frame's bytes."""

    id: int
    method: str
    kwargs: dict
    size: int = 0


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
    """Decodes and validates one frame body (strict JSON: see the module doc)."""
    try:
        message = decode_payload(payload)
    except FrameError as error:
        raise ProtocolError(str(error)) from None
    check_value(message)
    kind = message.get("type")
    if kind == "call":
        return _parse_call(message, len(payload))
    if kind == "result":
        return _parse_result(message)
    if kind == "ready":
        return _parse_ready(message)
    raise ProtocolError(f"unknown frame type {str(kind)[:40]!r}; expected call, result or ready")


def check_value(value: object, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """ProtocolError unless `value` is plain JSON data that any strict JSON writer can write: str
    (valid Unicode), finite numbers, bool, None, lists and str-keyed dicts, within the depth and
    node caps. Iterative, so a deep value cannot exhaust the parent's stack."""
    stack, nodes = [(value, 0)], 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise ProtocolError(f"frame holds more than {max_nodes} JSON values")
        kind = type(item)
        if kind is str:
            _check_text(item)
        elif kind is float:
            if not math.isfinite(item):
                raise ProtocolError(f"frame holds the non-finite number {item!r}")
        elif kind is list or kind is dict:
            if depth >= max_depth:
                raise ProtocolError(f"frame nests deeper than {max_depth} levels")
            if kind is dict:
                for key in item:
                    _check_text(key)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif item is not None and kind not in (bool, int):
            raise ProtocolError(f"frame holds a value of type {kind.__name__}")


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ProtocolError(f"frame holds a string that is not valid Unicode ({error.reason} at "
                                f"index {error.start})") from None


def _parse_call(message: dict, size: int) -> Call:
    call_id, method, kwargs = message.get("id"), message.get("method"), message.get("kwargs")
    if type(call_id) is not int or not 0 < call_id < MAX_CALL_ID:
        raise ProtocolError(f"call.id must be a positive integer, got {str(call_id)[:40]!r}")
    if method not in METHODS:
        raise ProtocolError(f"call.method must be one of {sorted(METHODS)}, got {str(method)[:40]!r}")
    if type(kwargs) is not dict:
        raise ProtocolError(f"call.kwargs must be an object, got {type(kwargs).__name__}")
    unknown = sorted(set(kwargs) - ARGUMENTS[method])
    if unknown:
        raise ProtocolError(f"agent.{method}: unknown argument(s) {str(unknown)[:200]}; the agent sends only "
                            f"{sorted(ARGUMENTS[method])}")
    if method in LLM_METHODS:
        messages = kwargs.get("messages")
        if type(messages) is not list or not all(
            type(m) is dict and type(m.get("role")) is str and type(m.get("content")) is str for m in messages
        ):
            raise ProtocolError(f"agent.{method}: messages must be a list of {{role: str, content: str}}")
    elif method == "execute_code":
        if type(kwargs.get("code")) is not str:
            raise ProtocolError("agent.execute_code: code must be a string")
        if type(kwargs.get("timeout")) not in (int, float):
            raise ProtocolError("agent.execute_code: timeout must be a number")
    elif method == "web_search" and type(kwargs.get("query")) is not str:
        raise ProtocolError("agent.web_search: query must be a string")
    return Call(call_id, method, kwargs, size)


def check_arguments(call: Call, max_responses: int) -> None:
    """ValueError naming the argument and its range when a call's argument values are out of bounds
    (the workflow may have passed them, so it gets an error it can catch; nothing is dispatched)."""
    name, kwargs = f"agent.{call.method}", call.kwargs
    if call.method == "execute_code":
        timeout = kwargs["timeout"]
        if not 0 <= timeout <= MAX_CODE_TIMEOUT_S:
            raise ValueError(f"{name}: timeout must be a finite number of seconds in [0, {MAX_CODE_TIMEOUT_S:g}], "
                             f"got {timeout!r}")
        return
    if call.method == "read_attachment":
        return
    if call.method == "web_search":
        if not 0 < len(kwargs["query"].strip()) <= MAX_QUERY_CHARS:
            raise ValueError(f"{name}: query must be 1 to {MAX_QUERY_CHARS} characters, got {len(kwargs['query'])}")
        return
    messages = kwargs["messages"]
    if not 1 <= len(messages) <= MAX_MESSAGES:
        raise ValueError(f"{name}: messages must hold 1 to {MAX_MESSAGES} messages, got {len(messages)}")
    if any(len(m) > MAX_MESSAGE_FIELDS or len(m["role"]) > MAX_SHORT_CHARS for m in messages):
        raise ValueError(f"{name}: a message has more than {MAX_MESSAGE_FIELDS} fields or a role longer than "
                         f"{MAX_SHORT_CHARS} characters")
    _integer(name, "num_of_response", kwargs.get("num_of_response", 1), max_responses,
             "(sandbox.max_responses)")
    if kwargs.get("max_completion_tokens") is not None:  # None: the executor's configured max_tokens
        _integer(name, "max_completion_tokens", kwargs["max_completion_tokens"], MAX_TOKENS, "")
    temperature = kwargs.get("temperature", 1.0)
    if type(temperature) not in (int, float) or not 0 <= temperature <= 2:
        raise ValueError(f"{name}: temperature must be a number in [0, 2], got {str(temperature)[:40]!r}")
    for field in ("model", "agent_role", "response_format"):
        value = kwargs.get(field, "")
        if field == "model" and value is None:  # ignored: the configured executor model is used
            continue
        if type(value) is not str or len(value) > MAX_SHORT_CHARS:
            raise ValueError(f"{name}: {field} must be a string of at most {MAX_SHORT_CHARS} characters")
    if type(kwargs.get("instructions", "")) is not str:
        raise ValueError(f"{name}: instructions must be a string")
    keys = kwargs.get("return_dict_keys", [])
    if type(keys) is not list or len(keys) > MAX_KEYS or not all(
        type(k) is str and len(k) <= MAX_KEY_CHARS for k in keys
    ):
        raise ValueError(f"{name}: return_dict_keys must be a list of at most {MAX_KEYS} strings of at most "
                         f"{MAX_KEY_CHARS} characters each")


def _integer(name: str, field: str, value: object, most: int, where: str) -> None:
    if type(value) is not int or not 1 <= value <= most:
        setting = f" {where}" if where else ""
        raise ValueError(f"{name}: {field} must be an integer in [1, {most}]{setting}, got {str(value)[:40]!r}")


def _parse_result(message: dict) -> Result:
    error, stdout = message.get("error"), message.get("stdout", "")
    if error is not None:
        if type(error) is not dict or type(error.get("type")) is not str or type(error.get("message")) is not str:
            raise ProtocolError("result.error must be null or {type: str, message: str, line: int|null}")
        line = error.get("line")
        if line is not None and (type(line) is not int or not 0 <= line < MAX_CALL_ID):
            raise ProtocolError("result.error.line must be a line number or null")
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
    """Bytes of `value` as compact JSON (the unit of sandbox.max_output_bytes); `value` passed
    check_value, so it always encodes."""
    return len(json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode())
