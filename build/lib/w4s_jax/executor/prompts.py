"""The paper's agent-call semantics: message validation, system prompts and JSON reply parsing.

Workflows written for the W4S reference interface must run unchanged, so the system prompts and the
"NO {key} IN DICTIONARY" filling follow that interface exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence


def validate_messages(messages: object) -> list[dict[str, str]]:
    """A list of dicts with exactly the keys 'role' and 'content', both strings; else a clear ValueError."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"messages must be a non-empty list of {{'role', 'content'}} dicts, got {type(messages).__name__}"
                         + ("" if messages else " (empty)"))
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"messages[{index}] must be a dict with keys 'role' and 'content', "
                             f"got {type(message).__name__}")
        if set(message) != {"role", "content"}:
            raise ValueError(f"messages[{index}] must have exactly the keys 'role' and 'content', "
                             f"got {sorted(message)}")
        for field in ("role", "content"):
            if not isinstance(message[field], str):
                raise ValueError(f"messages[{index}]['{field}'] must be a str, "
                                 f"got {type(message[field]).__name__}")
    return [dict(message) for message in messages]


def text_messages(messages: list[dict[str, str]], agent_role: str, instructions: str) -> list[dict[str, str]]:
    """`call_llm`: prepend "You are a helpful {role}.\\n{instructions}" unless a system message leads."""
    if messages[0]["role"] == "system":
        return messages
    return [{"role": "system", "content": f"You are a helpful {agent_role}.\n{instructions}"}, *messages]


def json_messages(messages: list[dict[str, str]], agent_role: str, return_dict_keys: Sequence[str],
                  instructions: str) -> list[dict[str, str]]:
    """`call_json_format_llm`: always prepend the JSON system prompt naming the allowed keys."""
    keys = list(return_dict_keys)
    system = f"You are a helpful {agent_role}.\nReply in JSON format, ONLY using the keys {keys}.\n{instructions}"
    return [{"role": "system", "content": system}, *messages]


def parse_json_reply(text: str, return_dict_keys: Sequence[str]) -> tuple[dict, bool]:
    """(dict with every requested key, was_format_error). Invalid JSON -> {"JSONDecodeError": text}."""
    format_error = False
    try:
        parsed = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        parsed = None
    if not isinstance(parsed, dict):
        parsed = {"JSONDecodeError": text}
        format_error = True
    for key in return_dict_keys:
        if key not in parsed:
            parsed[key] = f"NO {key} IN DICTIONARY"
    return parsed, format_error
