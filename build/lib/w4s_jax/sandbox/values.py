"""Python values over the worker channel: the tagged JSON encoding of what `execute_code` returns.

The reference agent's `execute_code` returns `solution()`'s value as a Python object, so a workflow
may rely on getting a tuple, a set or a Fraction back. Plain JSON would turn a tuple into a list and
cannot carry a set, a Fraction or a dict with int keys. So the code worker encodes the value with
`encode`, the parent passes the encoded JSON on untouched (it never evals or unpickles what a worker
sends), and the workflow's own worker decodes it with `decode`. The one place the parent decodes is a
code task's hidden tests (tasks/hidden_tests.py), where `decode` building only plain values is the
point. Standard library only: both ends run under `python -I -S`.

The encoding: None, bool, int, str and finite floats are themselves and a list is a JSON array of
encoded items; every other value is an object {"$": tag, "v": payload}, so no JSON object is ever
ambiguous:
  tuple / set / frozenset -> array of encoded items    dict -> array of [key, value] encoded pairs
  Fraction -> [numerator, denominator]                 Decimal -> its str()
  complex -> [real, imag] as encoded floats            bytes / bytearray -> "bytes" / "bytearray": latin-1 str
  inf / -inf / nan -> "float": "inf" / "-inf" / "nan"   anything else -> "str": str(value)
Subclasses come back as their base type (a named tuple as a tuple, a Counter as a dict); an object
of any other type comes back as str(value), as a string, except with `strict=True` (what a code task's
candidate returns to its hidden tests), where it is a TypeError: only plain data crosses, so no method
of the candidate's (a custom `__eq__`, a `__str__` that mimics the expected value) reaches the side
that compares.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

MAX_DEPTH = 100
TAG = "$"
_FLOAT_NAMES = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
_SEQUENCES = {"tuple": tuple, "set": set, "frozenset": frozenset}


def encode(value: object, depth: int = 0, *, strict: bool = False) -> object:
    """`value` as JSON data in the tagged encoding (module doc); TypeError if it nests too deep, or
    with `strict` if it holds a value of a type outside the encoding."""
    if depth > MAX_DEPTH:
        raise TypeError(f"value nests deeper than {MAX_DEPTH} levels")
    if value is None or type(value) in (bool, int, str):
        return value
    if isinstance(value, int):  # an int subclass such as an IntEnum member (bool cannot be subclassed)
        return int(value)
    if isinstance(value, float):
        value = float(value)
        if math.isfinite(value):
            return value
        return {TAG: "float", "v": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, list):
        return [encode(item, depth + 1, strict=strict) for item in value]
    for name, kind in _SEQUENCES.items():
        if isinstance(value, kind):
            return {TAG: name, "v": [encode(item, depth + 1, strict=strict) for item in value]}
    if isinstance(value, dict):
        return {TAG: "dict", "v": [[encode(k, depth + 1, strict=strict), encode(v, depth + 1, strict=strict)]
                                  for k, v in value.items()]}
    if isinstance(value, Fraction):
        return {TAG: "fraction", "v": [int(value.numerator), int(value.denominator)]}
    if isinstance(value, Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, complex):
        return {TAG: "complex", "v": [encode(value.real, depth + 1), encode(value.imag, depth + 1)]}
    if isinstance(value, bytes | bytearray):
        return {TAG: "bytearray" if isinstance(value, bytearray) else "bytes", "v": bytes(value).decode("latin-1")}
    if strict:
        raise TypeError(f"a value of type {type(value).__name__} is not plain data")
    return {TAG: "str", "v": str(value)}


def decode(data: object, depth: int = 0) -> object:
    """The Python value of encoded JSON data; ValueError naming what is malformed."""
    if depth > MAX_DEPTH:
        raise ValueError(f"encoded value nests deeper than {MAX_DEPTH} levels")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [decode(item, depth + 1) for item in data]
    if type(data) is not dict or set(data) != {TAG, "v"}:
        raise ValueError(f"expected a tagged object {{'$': tag, 'v': payload}}, got {str(data)[:80]!r}")
    tag, payload = data[TAG], data["v"]
    try:
        if tag in _SEQUENCES and type(payload) is list:
            return _SEQUENCES[tag](decode(item, depth + 1) for item in payload)
        if tag == "dict" and type(payload) is list and all(type(p) is list and len(p) == 2 for p in payload):
            return {decode(k, depth + 1): decode(v, depth + 1) for k, v in payload}
        if tag == "float" and payload in _FLOAT_NAMES:
            return _FLOAT_NAMES[payload]
        if tag == "fraction" and type(payload) is list and len(payload) == 2 and all(type(x) is int for x in payload):
            return Fraction(payload[0], payload[1])
        if tag == "decimal" and type(payload) is str:
            return Decimal(payload)
        if tag == "complex" and type(payload) is list and len(payload) == 2:
            real, imag = (decode(part, depth + 1) for part in payload)
            if type(real) is float and type(imag) is float:
                return complex(real, imag)
        if tag in ("bytes", "bytearray") and type(payload) is str:
            raw = payload.encode("latin-1")
            return raw if tag == "bytes" else bytearray(raw)
        if tag == "str" and type(payload) is str:
            return payload
    except (TypeError, ArithmeticError, UnicodeEncodeError) as error:  # e.g. an unhashable set item
        raise ValueError(f"malformed {str(tag)[:20]!r} value: {error}") from None
    raise ValueError(f"malformed or unknown tagged value {str(data)[:80]!r}")
