"""Plausibly broken versions of a correct Python function: the mistakes a strong coder makes.

The stand-in executor answers a code problem with its reference solution or with one of these. Each
kind of bug is one small edit a model really makes: an off-by-one constant, a flipped comparison, a
swapped arithmetic or boolean operator, a lost or added negation (`in` / `not in`, `is` / `is not`),
a near-miss call (`min` for `max`, `lower` for `upper`, ...), a dropped edge-case guard. Edits are made
on tokens (or whole lines, for a guard), so the code keeps its formatting and comments and a broken
version looks like a real reply; every version still parses. About nine in ten of them fail
HumanEval's hidden tests; the rest are harmless slips, as a real model's sometimes are. Which site each kind edits is chosen by a seed, so a problem
always gets the same few bugs (voting then sees several different wrong programs against one right one).
"""

from __future__ import annotations

import ast
import hashlib
import io
import random
import tokenize

_COMPARISON_FLIPS = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
_ARITHMETIC_SWAPS = {"+": "-", "-": "+", "*": "+", "//": "/", "%": "//", "+=": "-=", "-=": "+="}
_BOOLEAN_SWAPS = {"and": "or", "or": "and", "True": "False", "False": "True"}
_NEAR_MISS_CALLS = {"min": "max", "max": "min", "lower": "upper", "upper": "lower", "startswith": "endswith",
                    "endswith": "startswith", "swapcase": "upper", "isdigit": "isalpha", "isalpha": "isdigit",
                    "sorted": "list", "set": "list", "sum": "max", "abs": "int", "append": "insert"}
BUG_KINDS = ("off_by_one", "comparison", "arithmetic", "boolean", "negation", "near_miss_call", "dropped_guard")


def buggy_versions(source: str, count: int, seed: str, editable_from: int = 0) -> list[str]:
    """Up to `count` distinct broken versions of `source`, one bug each, all of which parse.

    Only text after `editable_from` is edited (the problem's own prompt, signature and docstring stay
    as given). The kinds are tried in a seeded order, then again at other sites, until `count` are found.
    """
    head, body = source[:editable_from], source[editable_from:]
    rng = random.Random(int(hashlib.sha256(seed.encode("utf-8")).hexdigest()[:16], 16))
    sites = {kind: _sites(kind, body, head) for kind in BUG_KINDS}
    for kind_sites in sites.values():
        rng.shuffle(kind_sites)
    order = list(BUG_KINDS)
    rng.shuffle(order)
    versions: list[str] = []
    while len(versions) < count and any(sites.values()):
        for kind in order:
            while sites[kind]:
                candidate = head + sites[kind].pop()
                if candidate != source and candidate not in versions and _parses(candidate):
                    versions.append(candidate)
                    break
            if len(versions) == count:
                break
    return versions


def _sites(kind: str, body: str, head: str) -> list[str]:
    """Every edited body that one bug of this kind can produce."""
    if kind == "dropped_guard":
        return _without_guards(body, head)
    tokens = _tokens(body)
    edits = []
    for position, token in enumerate(tokens):
        before = tokens[position - 1].string if position else ""
        after = tokens[position + 1].string if position + 1 < len(tokens) else ""
        replacement = None
        if kind == "off_by_one" and token.type == tokenize.NUMBER and token.string.isdigit():
            replacement = str(int(token.string) + 1)
        elif kind == "comparison" and token.type == tokenize.OP:
            replacement = _COMPARISON_FLIPS.get(token.string)
        elif kind == "arithmetic" and token.type == tokenize.OP:
            replacement = _ARITHMETIC_SWAPS.get(token.string)
        elif kind == "boolean" and token.type == tokenize.NAME:
            replacement = _BOOLEAN_SWAPS.get(token.string)
        elif kind == "negation" and token.type == tokenize.NAME:
            replacement = _negation(token.string, before, after)
        elif kind == "near_miss_call" and token.type == tokenize.NAME and after == "(":
            replacement = _NEAR_MISS_CALLS.get(token.string)
        if replacement is not None:
            edits.append(_replace(body, token, replacement))
    return edits


def _negation(word: str, before: str, after: str) -> str | None:
    """`in` <-> `not in`, `is` <-> `is not` (edited at the `in`/`is`, or at the `not` to drop it)."""
    if word == "not" and after == "in":
        return ""
    if word == "not" and before == "is":
        return ""
    if word == "in" and before != "not":
        return "not in"
    if word == "is" and after != "not":
        return "is not"
    return None


def _tokens(body: str) -> list[tokenize.TokenInfo]:
    try:
        return list(tokenize.generate_tokens(io.StringIO(body).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def _replace(text: str, token: tokenize.TokenInfo, replacement: str) -> str:
    lines = text.splitlines(keepends=True)
    (row, start), (_, end) = token.start, token.end
    line = lines[row - 1]
    if not replacement and line[end:end + 1] == " ":
        end += 1  # a dropped word takes its space with it
    lines[row - 1] = line[:start] + replacement + line[end:]
    return "".join(lines)


def _without_guards(body: str, head: str) -> list[str]:
    """The body without one `if` that only returns early (a missed edge case)."""
    try:
        tree = ast.parse(head + body)
    except SyntaxError:
        return []
    offset = head.count("\n")
    lines = body.splitlines(keepends=True)
    edits = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.If) and not node.orelse and len(node.body) == 1
                and isinstance(node.body[0], ast.Return) and node.lineno > offset):
            first, last = node.lineno - 1 - offset, node.end_lineno - offset
            edits.append("".join(lines[:first] + lines[last:]))
    return edits


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True
