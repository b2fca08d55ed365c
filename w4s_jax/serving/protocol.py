"""OpenAI chat-completions wire format: request validation, response bodies and error JSON.

Validation happens before a request reaches the batcher, so a malformed request gets a 4xx with
OpenAI's error shape (`{"error": {"message", "type", "param", "code"}}`) and can never poison a
shared sampler call.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

from w4s_jax.sampling.params import Completion, SamplingParams
from w4s_jax.sampling.settings import TEMPERATURE_MAX

MAX_N = 64
MAX_STOP_STRINGS = 4  # OpenAI's limit


class RequestError(Exception):
    """A request the server refuses; carries the HTTP status and OpenAI's error fields."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.error_type = status, message, param, code, error_type

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, self.param, self.code)


def error_body(message: str, error_type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    """A validated /v1/chat/completions request."""

    messages: list[dict[str, str]]
    params: SamplingParams
    stream: bool
    include_usage: bool
    json_mode: bool
    logprobs: bool


@dataclasses.dataclass(frozen=True)
class Defaults:
    """Server-side defaults for fields a request leaves out (from the config's sampling section)."""

    max_new_tokens: int
    temperature: float
    top_p: float
    top_k: int
    seed: int


def _number(body: dict, name: str, default: float, low: float, high: float, *, low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(400, f"'{name}' must be a number, got {type(value).__name__}", name, "invalid_type")
    if value < low or value > high or (low_open and value == low):
        bracket = "(" if low_open else "["
        raise RequestError(400, f"'{name}' = {value} is out of range {bracket}{low}, {high}]", name, "invalid_value")
    return float(value)


def _integer(body: dict, name: str, default: int, low: int, high: int | None = None) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"'{name}' must be an integer, got {type(value).__name__}", name, "invalid_type")
    if value < low or (high is not None and value > high):
        limit = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise RequestError(400, f"'{name}' = {value} must be {limit}", name, "invalid_value")
    return value


def _messages(body: dict) -> list[dict[str, str]]:
    messages = body.get("messages")
    if messages is None:
        raise RequestError(400, "'messages' is required", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "'messages' must be a non-empty array", "messages", "invalid_type")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestError(400, f"messages[{i}] must be an object", f"messages[{i}]", "invalid_type")
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "developer", "user", "assistant"):
            raise RequestError(400, f"messages[{i}].role = {role!r} is not supported", f"messages[{i}].role", "invalid_value")
        if isinstance(content, list):  # content parts: only text parts can be served by a text model
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content):
                raise RequestError(400, f"messages[{i}].content: only text parts are supported", f"messages[{i}].content", "invalid_type")
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise RequestError(400, f"messages[{i}].content must be a string", f"messages[{i}].content", "invalid_type")
        out.append({"role": "system" if role == "developer" else role, "content": content})
    return out


def _stop(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise RequestError(400, "'stop' must be a non-empty string or an array of them", "stop", "invalid_type")
    if len(stops) > MAX_STOP_STRINGS:
        raise RequestError(400, f"'stop' has {len(stops)} entries; at most {MAX_STOP_STRINGS}", "stop", "invalid_value")
    return tuple(stops)


def parse_chat_request(raw: bytes, served_name: str, defaults: Defaults) -> ChatRequest:
    """Validates a request body; raises RequestError (400/404) with OpenAI's error fields."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RequestError(400, f"request body is not valid JSON: {error}", None, "invalid_json") from error
    if not isinstance(body, dict):
        raise RequestError(400, "request body must be a JSON object", None, "invalid_type")
    model = body.get("model")
    if model is not None and model != served_name:
        raise RequestError(404, f"model {model!r} does not exist; this server serves {served_name!r}", "model",
                           "model_not_found")
    messages = _messages(body)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    max_tokens = _integer({"max_tokens": max_tokens}, "max_tokens", defaults.max_new_tokens, 1)
    response_format = body.get("response_format") or {"type": "text"}
    if not isinstance(response_format, dict) or response_format.get("type") not in ("text", "json_object"):
        raise RequestError(400, "'response_format.type' must be 'text' or 'json_object'", "response_format", "invalid_value")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise RequestError(400, "'stream_options' must be an object", "stream_options", "invalid_type")
    for flag in ("stream", "logprobs"):
        if body.get(flag) is not None and not isinstance(body.get(flag), bool):
            raise RequestError(400, f"'{flag}' must be a boolean", flag, "invalid_type")
    params = SamplingParams(
        max_new_tokens=max_tokens,
        temperature=_number(body, "temperature", defaults.temperature, 0.0, TEMPERATURE_MAX),
        top_p=_number(body, "top_p", defaults.top_p, 0.0, 1.0, low_open=True),
        top_k=_integer(body, "top_k", defaults.top_k, 0),
        n=_integer(body, "n", 1, 1, MAX_N),
        seed=_integer(body, "seed", defaults.seed, -(2**63), 2**64 - 1) % 2**32,
        stop_strings=_stop(body),
    )
    return ChatRequest(
        messages=messages,
        params=params,
        stream=bool(body.get("stream", False)),
        include_usage=bool(stream_options.get("include_usage", False)),
        json_mode=response_format["type"] == "json_object",
        logprobs=bool(body.get("logprobs", False)),
    )


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completions: list[Completion]) -> dict[str, int]:
    generated = sum(len(c.token_ids) for c in completions)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": generated, "total_tokens": prompt_tokens + generated}


def logprobs_content(completion: Completion, decode) -> dict[str, Any]:
    """OpenAI's `choices[].logprobs` for the chosen tokens (no alternatives: top_logprobs is [])."""
    content = []
    for token, logprob in zip(completion.token_ids, completion.logprobs):
        text = decode([token])
        content.append({"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8")), "top_logprobs": []})
    return {"content": content}


def chat_completion_body(completion_id: str, model: str, completions: list[Completion], prompt_tokens: int,
                         logprobs: list[dict] | None) -> dict[str, Any]:
    choices = []
    for i, completion in enumerate(completions):
        choices.append({
            "index": i,
            "message": {"role": "assistant", "content": completion.text},
            "logprobs": logprobs[i] if logprobs else None,
            "finish_reason": completion.finish_reason,
        })
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage(prompt_tokens, completions),
    }


def chunk_body(completion_id: str, model: str, created: int, choices: list[dict], usage_counts: dict | None = None) -> dict:
    body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": choices}
    if usage_counts is not None:
        body["usage"] = usage_counts
    return body


def text_pieces(completion: Completion, decode) -> list[str]:
    """The completion's text split at token boundaries, for streaming deltas.

    Pieces are differences of decoded prefixes, held back while a prefix ends in an incomplete
    UTF-8 sequence, so that concatenating the pieces gives exactly `completion.text`.
    """
    pieces, sent = [], ""
    for i in range(1, len(completion.token_ids) + 1):
        prefix = decode(completion.token_ids[:i])
        if prefix.endswith("\ufffd") or not prefix.startswith(sent) or not completion.text.startswith(prefix):
            continue
        if len(prefix) > len(sent):
            pieces.append(prefix[len(sent):])
            sent = prefix
    if len(completion.text) > len(sent):
        pieces.append(completion.text[len(sent):])
    return pieces
