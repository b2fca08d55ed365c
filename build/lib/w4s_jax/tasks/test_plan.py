"""Hidden tests split into what the candidate may see (the inputs) and what it may not (the rest).

A code task's hidden tests are a `check` function of asserts (HumanEval: `check(candidate)`; MBPP:
`check()` calling the entry point by name). Trusted code here rewrites that function (never running
it) into three programs, each run as an `execute_code` job in its own confined worker:

- the *cases program* runs the benchmark's own code only (its setup and the rewritten tests), with a
  recorder in place of the candidate. Every assert of a form the parent can judge on plain data is
  recorded as a case: `candidate(...) == E` (or `!=`, `E == candidate(...)`), `abs(candidate(...) - E)
  < T` (or `<=`), `math.isclose(candidate(...), E, rel_tol=.., abs_tol=..)`, `candidate(...)`, `not
  candidate(...)`, `candidate(...) is True/False/None`. It returns the calls' arguments and, apart
  from them, each case's expected values.
- the *candidate program* runs the candidate's source and makes those calls, nothing else: it holds
  the arguments, never a test or an expected value, and returns each result in the strict tagged
  encoding (sandbox/values.py), so only plain data comes back. A truth test gets `bool(result)`.
- any other assert (e.g. HumanEval/32's `math.fabs(poly(coeffs, solution)) < 1e-4`, MBPP's
  `set(f(x)) == set(...)`) is *deferred*: the cases program skips it; the *replay program* runs the
  benchmark's code again, feeding the recorded plain results back in place of the candidate's calls,
  and evaluates the deferred asserts on them. It checks that the tests make the same calls as the
  first time (`random` is seeded in both), and never runs candidate code.

Tests whose calls take a previous result of the candidate as an argument (`f(f(x))`) are refused with
a clear error, as are tests that use a result outside an assert before the replay.

In the official harnesses the tests share the candidate's globals, so a test may use a module only
the candidate imports (MBPP 596 calls `sys.getsizeof`). Here the tests never see the candidate's
names; instead the standard modules in TEST_MODULES are bound in the tests' namespace wherever the
setup and tests do not define those names themselves.
"""

from __future__ import annotations

import ast
import dataclasses
import json

PREFIX = "__w4s_"
CASE, PROBE, DEFERRED = f"{PREFIX}case", f"{PREFIX}probe", f"{PREFIX}deferred"
CASE_KINDS = ("eq", "ne", "abs_lt", "abs_le", "isclose", "truthy", "falsy", "is", "is_not")
TEST_MODULES = ("sys", "math", "cmath", "re", "string", "collections", "itertools", "functools", "operator",
                "heapq", "bisect", "random")


@dataclasses.dataclass(frozen=True)
class HiddenSuite:
    """A code problem's hidden tests, all trusted benchmark text: `setup` (e.g. HumanEval's prompt with
    its helpers and imports) runs before `test`, which defines `check`; `entry_point` is the
    function the candidate must define."""

    setup: str
    test: str
    entry_point: str


class UnsupportedTests(ValueError):
    """The hidden tests have a shape this module cannot split (named in the message)."""


def rewrite(suite: HiddenSuite) -> tuple[str, list[str], int]:
    """The test source with its `check` asserts rewritten, the names that denote the candidate inside
    `check`, and the number of deferred asserts."""
    try:
        tree = ast.parse(suite.test)
    except SyntaxError as error:
        raise UnsupportedTests(f"the hidden tests do not parse: {error}") from None
    check = next((node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "check"), None)
    if check is None:
        raise UnsupportedTests("the hidden tests define no check() function")
    names = {suite.entry_point} | ({check.args.args[0].arg} if check.args.args else set())
    rewriter = _AssertRewriter(frozenset(names))
    check.body = [rewriter.visit(statement) for statement in check.body]
    return ast.unparse(ast.fix_missing_locations(tree)), sorted(names), rewriter.deferred


class _AssertRewriter(ast.NodeTransformer):
    def __init__(self, names: frozenset[str]) -> None:
        self.names, self.deferred = names, 0

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        return node  # asserts of nested helper functions are the helpers' business

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        split = _split(node.test, self.names)
        if split is None:
            self.deferred += 1
            message = node.msg if node.msg is not None else ast.Constant(None)
            call = ast.Call(ast.Name(DEFERRED, ast.Load()),
                            [_thunk(node.test), _thunk(message)], [])
            return ast.copy_location(ast.Expr(call), node)
        kind, operands = split
        call = ast.Call(ast.Name(CASE, ast.Load()), [ast.Constant(kind), *operands], [])
        return ast.copy_location(ast.Expr(call), node)


def _thunk(expression: ast.expr) -> ast.Lambda:
    arguments = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[],
                              kwarg=None, defaults=[])
    return ast.Lambda(arguments, expression)


def _mentions(node: ast.AST, names: frozenset[str]) -> bool:
    return any(isinstance(child, ast.Name) and child.id in names for child in ast.walk(node))


def _direct_call(node: ast.expr, names: frozenset[str]) -> bool:
    """A call of the candidate whose arguments do not themselves involve the candidate."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
            and not any(_mentions(argument, names) for argument in [*node.args, *node.keywords]))


def _probe(call: ast.Call, truth: bool) -> ast.Call:
    """`candidate(args)` -> `__w4s_probe(truth)(args)`: records the call, evaluated where it was."""
    func = ast.Call(ast.Name(PROBE, ast.Load()), [ast.Constant(truth)], [])
    return ast.Call(func, call.args, call.keywords)


def _split(test: ast.expr, names: frozenset[str]) -> tuple[str, list[ast.expr]] | None:
    """(kind, operands in their original evaluation order, the call replaced by a probe), or None
    where the assert is not one of the forms of the module doc."""
    if _direct_call(test, names):
        return "truthy", [_probe(test, True)]
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and _direct_call(test.operand, names):
        return "falsy", [_probe(test.operand, True)]
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, op, right = test.left, test.ops[0], test.comparators[0]
        if isinstance(op, ast.Eq | ast.NotEq):
            kind = "eq" if isinstance(op, ast.Eq) else "ne"
            if _direct_call(left, names) and not _mentions(right, names):
                return kind, [_probe(left, False), right]
            if _direct_call(right, names) and not _mentions(left, names):
                return kind, [left, _probe(right, False)]
        if (isinstance(op, ast.Is | ast.IsNot) and _direct_call(left, names) and isinstance(right, ast.Constant)
                and right.value in (True, False, None) and type(right.value) in (bool, type(None))):
            return ("is" if isinstance(op, ast.Is) else "is_not"), [_probe(left, False), right]
        difference = _abs_difference(left, names)
        if isinstance(op, ast.Lt | ast.LtE) and difference is not None and not _mentions(right, names):
            call, expected = difference
            return ("abs_lt" if isinstance(op, ast.Lt) else "abs_le"), [_probe(call, False), expected, right]
    return _isclose(test, names)


def _abs_difference(node: ast.expr, names: frozenset[str]) -> tuple[ast.Call, ast.expr] | None:
    """`abs(candidate(...) - E)` as (the call, E)."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "abs"
            and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.BinOp)
            and isinstance(node.args[0].op, ast.Sub)):
        left, right = node.args[0].left, node.args[0].right
        if _direct_call(left, names) and not _mentions(right, names):
            return left, right
    return None


def _isclose(test: ast.expr, names: frozenset[str]) -> tuple[str, list[ast.expr]] | None:
    """`math.isclose(candidate(...), E[, rel_tol=R][, abs_tol=A])`."""
    if not (isinstance(test, ast.Call) and isinstance(test.func, ast.Attribute) and test.func.attr == "isclose"
            and isinstance(test.func.value, ast.Name) and test.func.value.id == "math" and len(test.args) == 2):
        return None
    keywords = {keyword.arg: keyword.value for keyword in test.keywords}
    if not set(keywords) <= {"rel_tol", "abs_tol"} or None in keywords:
        return None
    call, expected = test.args
    if not _direct_call(call, names) or _mentions(expected, names) or any(_mentions(v, names) for v in keywords.values()):
        return None
    return "isclose", [_probe(call, False), expected, keywords.get("rel_tol", ast.Constant(1e-09)),
                       keywords.get("abs_tol", ast.Constant(0.0))]


# The runtime shared by the cases and replay programs; `values` is the worker's own copy of
# sandbox/values.py, loaded before confinement.
_RUNTIME = '''
_SETUP = {setup!r}
_TEST = {test!r}
_ENTRY_POINT = {entry_point!r}
_TEST_MODULES = {modules!r}
_REPLAY = {replay!r}
_EXPECTED_CALLS = {expected_calls!r}


def solution():
    import json
    import random

    import values

    judging = _REPLAY is not None
    outputs = values.decode(json.loads(_REPLAY)) if judging else None
    expected_calls = json.loads(_EXPECTED_CALLS) if judging else None
    calls, raw_calls, cases, trouble, skipped = [], [], [], [], []

    class Pending:
        """A result not known while the calls are collected: it absorbs what the tests do with it
        (`tuple(p)`, `p[0] + 1`, `sorted(p) == ...`), so the rest of a deferred assert still runs and
        its later calls of the candidate are recorded too."""

        def _absorb(self, *args, **kwargs):
            return Pending()

        __iter__ = lambda self: iter(())
        __len__ = __hash__ = __index__ = __int__ = lambda self: 0
        __float__ = lambda self: 0.0
        __bool__ = lambda self: False
        __getattr__ = __getitem__ = __call__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _absorb
        __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _absorb
        __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = __abs__ = _absorb
        __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = __contains__ = _absorb

    class Probe:
        def __init__(self, index):
            self.index = index

    class Refused(BaseException):
        """Raised past the tests' own exception handling."""

    def record(args, kwargs, truth):
        index = len(calls)
        try:
            encoded = json.dumps(values.encode([list(args), dict(kwargs)], strict=True), sort_keys=True)
        except (TypeError, ValueError) as error:
            trouble.append(f"call {{index + 1}} passes the candidate a value that is not plain data, e.g. an "
                           f"earlier result of the candidate ({{error}})")
            raise Refused from None
        if judging and (index >= len(expected_calls) or expected_calls[index] != encoded):
            trouble.append(f"call {{index + 1}} differs from the first run: the hidden tests are not deterministic")
            raise Refused
        calls.append([encoded, truth])
        return index

    def candidate(*args, **kwargs):
        index = record(args, kwargs, False)
        raw_calls.append(index)
        return outputs[index] if judging else Pending()

    def probe(truth):
        return lambda *args, **kwargs: Probe(record(args, kwargs, truth))

    def case(kind, *operands):
        if judging:
            return
        probes = [o for o in operands if isinstance(o, Probe)]
        others = [o for o in operands if not isinstance(o, Probe)]
        try:
            expected = values.encode(others, strict=True)
        except TypeError as error:
            trouble.append(f"an expected value is not plain data ({{error}})")
            raise Refused from None
        cases.append([probes[0].index, kind, expected])

    def deferred(test, message):
        if judging:
            if not test():
                text = message()
                raise AssertionError() if text is None else AssertionError(text)
            return
        try:
            if not test():
                skipped.append("a deferred assert failed before any call of the candidate")
        except Exception as error:
            skipped.append(f"{{type(error).__name__}}: {{error}}")

    random.seed(0)
    namespace = {{"__name__": "__hidden_tests__", "{case}": case, "{probe}": probe, "{deferred}": deferred}}
    namespace.update((name, __import__(name)) for name in _TEST_MODULES)
    try:
        exec(compile(_SETUP, "<setup>", "exec"), namespace)
        exec(compile(_TEST, "<tests>", "exec"), namespace)
        namespace[_ENTRY_POINT] = candidate
        check = namespace["check"]
        if check.__code__.co_argcount:
            check(candidate)
        else:
            check()
    except Refused:
        pass
    if trouble:
        raise RuntimeError(trouble[0])
    if judging:
        if len(calls) != len(expected_calls):
            raise RuntimeError("the hidden tests made fewer calls than the first time: not deterministic")
        return "passed"
    if skipped and not raw_calls:
        raise AssertionError("the hidden tests fail whatever the candidate: " + skipped[0])
    return json.dumps({{"calls": [encoded for encoded, _ in calls], "truth": [truth for _, truth in calls],
                       "cases": cases}})
'''

_CANDIDATE = '''
_SOURCE = {source!r}
_ENTRY_POINT = {entry_point!r}
_CALLS = {calls!r}
_TRUTH = {truth!r}


def solution():
    import json

    import values

    namespace = {{"__name__": "__candidate__"}}
    exec(compile(_SOURCE, "<candidate>", "exec"), namespace)
    function = namespace.get(_ENTRY_POINT)
    if not callable(function):
        raise NameError(f"the answer defines no function {{_ENTRY_POINT}}()")
    results = []
    for number, (encoded, truth) in enumerate(zip(_CALLS, _TRUTH), 1):
        args, kwargs = values.decode(json.loads(encoded))
        value = function(*args, **kwargs)
        try:
            results.append(bool(value) if truth else values.encode(value, strict=True))
        except TypeError as error:
            raise TypeError(f"hidden test call {{number}} returned something the tests cannot compare: {{error}}; "
                            "only plain data (numbers, strings, lists, tuples, dicts, sets, None) is compared") from None
    return json.dumps(results)
'''


def cases_program(suite: HiddenSuite) -> tuple[str, int]:
    """The cases program (module doc) and the number of deferred asserts."""
    test, _names, deferred = rewrite(suite)
    return _runtime(suite, test, None, None), deferred


def replay_program(suite: HiddenSuite, outputs_json: str, calls: list[str]) -> str:
    """The replay program: the deferred asserts judged on the candidate's recorded plain results."""
    test, _names, _deferred = rewrite(suite)
    return _runtime(suite, test, outputs_json, _json_list(calls))


def candidate_program(source: str, entry_point: str, calls: list[str], truth: list[bool]) -> str:
    """The candidate program: the candidate's source and the calls' arguments, nothing else."""
    return _CANDIDATE.format(source=source, entry_point=entry_point, calls=list(calls),
                             truth=[bool(t) for t in truth])


def _runtime(suite: HiddenSuite, test: str, replay: str | None, expected_calls: str | None) -> str:
    return _RUNTIME.format(setup=suite.setup, test=test, entry_point=suite.entry_point, modules=TEST_MODULES,
                           replay=replay, expected_calls=expected_calls, case=CASE, probe=PROBE, deferred=DEFERRED)


def _json_list(items: list[str]) -> str:
    return json.dumps(list(items))
