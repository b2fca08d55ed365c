"""Public tests of a code problem read from its own docstring: the examples the problem states.

A HumanEval prompt shows a few calls with their results (`>>> f(1)` then `2`, `f(1) ➞ 2`,
`For lst = [1] the output should be 2`, `Input: 3` then `Output: 2`, ...). Those examples are what a
workflow may legitimately test against (the AFlow convention for "public tests"); the hidden tests
never are. Each example becomes `assert candidate(...) == value` (floats compared to 1e-6). Only calls
of the entry point with literal arguments (optionally inside round/sorted/len/...) and literal results
are taken, so an example in prose, or one calling another name, gives no test rather than a wrong one.
"""

from __future__ import annotations

import ast
import re

_RESULT = re.compile(r"\s*#?\s*(?:==>|=>|➞|->|==|(?<![<>!])=(?!=)|should return|returns?|should be|gives|is|:)\s*(.+)$")
_FOR_ASSIGNMENTS = re.compile(r"(?:for|input:)\s+(.+?)[,:]?\s*(?:the (?:output|result) should be|output:?)\s*(.+)$",
                              re.IGNORECASE)
_TRAILING_PROSE = re.compile(r"\s+(?:#|because|since|as|\()")
_WRAPPERS = frozenset({"round", "sorted", "len", "abs", "set", "list", "tuple", "sum", "min", "max", "float", "int",
                       "str"})
_TRUTH = {"true": "True", "false": "False"}
_LITERAL_CALL_NODES = (ast.Call, ast.Name, ast.Load, ast.keyword, ast.Constant, ast.List, ast.Tuple, ast.Set,
                       ast.Dict, ast.UnaryOp, ast.BinOp, ast.operator, ast.unaryop)


def public_tests_from_docstring(prompt: str, entry_point: str) -> list[str]:
    """`assert candidate(...) == value` for every example the entry point's docstring states."""
    function = _function(prompt, entry_point)
    if function is None:
        return []
    parameters = {argument.arg for argument in function.args.args}
    lines = [line.strip() for line in (ast.get_docstring(function, clean=True) or "").splitlines()]
    tests: list[str] = []
    for index, line in enumerate(lines):
        following = next((later for later in lines[index + 1:] if later), "")
        example = _example(line, following, entry_point, parameters)
        if example is not None:
            test = _assertion(*example, entry_point)
            if test not in tests:
                tests.append(test)
    return tests


def _function(prompt: str, name: str) -> ast.FunctionDef | None:
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return None
    return next((node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == name), None)


def _example(line: str, following: str, entry_point: str, parameters: set[str]) -> tuple[str, str] | None:
    """(call, result) stated by this docstring line (and the next one, for two-line forms)."""
    if line.startswith(">>>"):
        return _prompt_example(line[3:], following, entry_point, parameters)
    if line.lower().startswith("input:") and following.lower().startswith("output:"):
        call = _keyword_call(line[len("input:"):], entry_point, parameters)
        result = _literal(following[len("output:"):])
        return (call, result) if call and result else None
    match = _FOR_ASSIGNMENTS.match(line)
    if match:
        call, result = _keyword_call(match.group(1), entry_point, parameters), _literal(match.group(2))
        if call and result:
            return call, result
    start = line.find(f"{entry_point}(")
    if start < 0:
        return None
    call, rest = _leading_call(line[start:], entry_point, parameters)
    match = _RESULT.match(rest) if call else None
    result = _literal(match.group(1)) if match else None
    return (call, result) if call and result else None


def _prompt_example(source: str, following: str, entry_point: str, parameters: set[str]) -> tuple[str, str] | None:
    """`>>> f(x)` with the result on the next line, or `>>> f(x) == y` on one line."""
    try:
        node = ast.parse(source.strip(), mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], ast.Eq):
        call, result = _call(node.left, entry_point, parameters), _literal(ast.unparse(node.comparators[0]))
        return (call, result) if call and result else None
    call = _call(node, entry_point, parameters)
    result = None if following.startswith(">>>") else _literal(following)
    return (call, result) if call and result else None


def _leading_call(text: str, entry_point: str, parameters: set[str]) -> tuple[str | None, str]:
    """The longest prefix of `text` that is a call of the entry point, and what follows it."""
    for end in range(len(text), 0, -1):
        if text[end - 1] == ")":
            try:
                node = ast.parse(text[:end], mode="eval").body
            except SyntaxError:
                continue
            call = _call(node, entry_point, parameters)
            if call:
                return call, text[end:]
    return None, ""


def _keyword_call(assignments: str, entry_point: str, parameters: set[str]) -> str | None:
    """`lst = [1, 2], k = 3` (or bare arguments) as a call; trailing prose after a comma is dropped."""
    pieces = assignments.split(",")
    for count in range(len(pieces), 0, -1):
        try:
            node = ast.parse(f"{entry_point}({','.join(pieces[:count])})", mode="eval").body
        except SyntaxError:
            continue
        call = _call(node, entry_point, parameters)
        if call:
            return call
    return None


def _call(node: ast.expr, entry_point: str, parameters: set[str]) -> str | None:
    """The expression's source if it calls the entry point with literals (keywords must be parameters),
    possibly inside harmless built-ins; None otherwise."""
    names = _WRAPPERS | {entry_point}
    calls_entry = False
    for child in ast.walk(node):
        if not isinstance(child, _LITERAL_CALL_NODES):
            return None
        if isinstance(child, ast.Name) and child.id not in names:
            return None
        if isinstance(child, ast.Call):
            if not isinstance(child.func, ast.Name):
                return None
            if child.func.id == entry_point:
                calls_entry = True
                if any(keyword.arg not in parameters for keyword in child.keywords):
                    return None
    return ast.unparse(node) if calls_entry else None


def _literal(text: str) -> str | None:
    """The Python literal a docstring gives as a result, trailing prose, full stops and `x - y =` work
    stripped; `true`/`false` read as booleans."""
    text = text.strip()
    candidates = [text, text.rstrip(".,").strip(), _TRAILING_PROSE.split(text)[0].rstrip(".,").strip()]
    if "=" in text:
        candidates.append(text.rsplit("=", 1)[1].strip().rstrip("."))
    for candidate in candidates:
        candidate = _TRUTH.get(candidate, candidate)
        try:
            ast.literal_eval(candidate)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        return candidate
    return None


def _assertion(call: str, result: str, entry_point: str) -> str:
    tree = ast.parse(call, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == entry_point:
            node.func.id = "candidate"
    candidate_call = ast.unparse(tree)
    if isinstance(ast.literal_eval(result), float):
        return f"assert abs({candidate_call} - ({result})) < 1e-6"
    return f"assert {candidate_call} == {result}"
