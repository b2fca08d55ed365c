"""Length-prefixed JSON frames: the only thing that crosses the pipe between parent and worker.

Standard library only, because the worker imports it under `python -I -S`. A frame is a 4-byte
big-endian length followed by that many bytes of UTF-8 JSON. JSON (never pickle) means a hostile
worker can at worst send a malformed frame, which the parent rejects.
"""

from __future__ import annotations

import json
import math
import os
import struct

HEADER = struct.Struct(">I")
MAX_FRAME_BYTES = 64 * 1024 * 1024


class FrameError(ValueError):
    """A frame that is too large, truncated, or not a JSON object."""


def encode_frame(message: dict) -> bytes:
    """Serialises one message; raises FrameError for values JSON cannot carry or oversized frames."""
    try:
        payload = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError) as error:
        raise FrameError(f"message is not JSON-safe: {error}") from None
    if len(payload) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return HEADER.pack(len(payload)) + payload


def _refuse_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"number {text[:40]} overflows a float")
    return value


def decode_payload(payload: bytes) -> dict:
    """Parses a frame body into a dict, or raises FrameError. Strict JSON: NaN, Infinity and numbers
    that overflow a float are refused, as the sender's encode_frame never writes them."""
    try:
        message = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FrameError(f"frame is not valid UTF-8 JSON: {error}") from None
    if not isinstance(message, dict):
        raise FrameError(f"frame must hold a JSON object, got {type(message).__name__}")
    return message


def _read_exactly(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("channel closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame_blocking(fd: int) -> dict:
    """Reads one frame from a blocking file descriptor (the worker side)."""
    (size,) = HEADER.unpack(_read_exactly(fd, HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    return decode_payload(_read_exactly(fd, size))


def write_frame_blocking(fd: int, message: dict) -> None:
    """Writes one whole frame to a blocking file descriptor."""
    data = memoryview(encode_frame(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]
