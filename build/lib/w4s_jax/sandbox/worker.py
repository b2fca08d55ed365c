"""The child-side runner: confine this process, then run one job (a workflow sample, or code).

Started by the parent as `python -I -S worker.py CONFIG_JSON` with an empty environment, its own
session and a fresh working directory. Standard library only. Fd 0/1 become the framed JSON channel
(moved to private descriptors) and fd 1 is pointed at stderr, so prints at the C level cannot reach
the channel by accident. After confinement it sends {"type": "ready"} and waits for one job; when the
job ends it reports and exits, so no state survives into another sample.
"""

from __future__ import annotations

import ast
import builtins
import itertools
import json
import linecache
import math
import os
import sys
import threading
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import agent_proxy  # sibling modules, found through the line above under -I
import framing
import limits
import values

del sys.path[0]

WORKFLOW_FILE = "<workflow>"
# Imported before confinement: a lazy import may be refused later when the stdlib is not readable
# by the sandbox uid (e.g. an interpreter installed under /root).
PRELOADED = (
    "re", "json", "math", "cmath", "random", "string", "itertools", "functools", "collections",
    "collections.abc", "heapq", "bisect", "statistics", "fractions", "decimal", "datetime", "time",
    "typing", "dataclasses", "enum", "copy", "operator", "textwrap", "difflib", "hashlib", "ast",
    "io", "contextlib", "numbers", "unicodedata", "concurrent.futures", "concurrent.futures.thread",
    "queue", "threading", "traceback", "inspect", "pprint", "calendar", "array", "struct", "base64",
    "uuid", "html", "csv", "signal", "weakref", "abc", "types", "locale", "codecs", "encodings.idna",
    "encodings.latin_1", "encodings.ascii", "zlib", "binascii", "keyword", "tokenize", "token",
    "argparse", "warnings", "shlex", "fnmatch", "glob", "tempfile", "shutil", "pathlib", "os.path",
    "socket", "select", "selectors", "gc", "resource", "faulthandler", "platform", "sysconfig",
)


class BoundedText:
    """A stdout/stderr stand-in that keeps the first `limit` characters and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit, self.parts, self.size, self.dropped = limit, [], 0, 0
        self.lock = threading.Lock()

    def write(self, text) -> int:
        text = str(text)
        with self.lock:
            room = self.limit - self.size
            kept = text[: max(room, 0)]
            if kept:
                self.parts.append(kept)
                self.size += len(kept)
            self.dropped += len(text) - len(kept)
        return len(text)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def getvalue(self) -> str:
        with self.lock:
            text = "".join(self.parts)
        return text + (f"\n[... {self.dropped} more characters dropped]" if self.dropped else "")


class Channel:
    """Framed JSON over two private fds; concurrent calls from workflow threads, matched by id."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self.fd_in, self.fd_out = fd_in, fd_out
        self.send_lock = threading.Lock()
        self.ids = itertools.count(1)
        self.pending: dict[int, list] = {}
        self.pending_lock = threading.Lock()

    def send(self, message: dict) -> None:
        with self.send_lock:
            framing.write_frame_blocking(self.fd_out, message)

    def receive(self) -> dict:
        return framing.read_frame_blocking(self.fd_in)

    def start_reader(self) -> None:
        threading.Thread(target=self._read_replies, daemon=True, name="w4s-channel").start()

    def _read_replies(self) -> None:
        try:
            while True:
                message = self.receive()
                with self.pending_lock:
                    slot = self.pending.pop(message.get("id"), None)
                if slot is not None:
                    slot[1] = message
                    slot[0].set()
        except BaseException:
            os._exit(3)  # the parent went away or spoke garbage: nothing left to report to

    def call(self, method: str, kwargs: dict):
        """Blocks the calling workflow thread until the parent replies."""
        call_id = next(self.ids)
        slot = [threading.Event(), None]
        with self.pending_lock:
            self.pending[call_id] = slot
        try:
            self.send({"type": "call", "id": call_id, "method": method, "kwargs": kwargs})
        except framing.FrameError as error:
            with self.pending_lock:
                self.pending.pop(call_id, None)
            raise TypeError(f"agent.{method}: arguments must be JSON-safe ({error})") from None
        slot[0].wait()
        reply = slot[1]
        if reply.get("ok"):
            return reply.get("value")
        error = reply.get("error") or {}
        raise _error_class(str(error.get("type", "SandboxError")))(str(error.get("message", "")))


def _error_class(name: str) -> type[Exception]:
    """The parent's error type by name, so a workflow sees e.g. BudgetExceeded or TimeoutError."""
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, Exception):
        return builtin
    return type(name if name.isidentifier() else "SandboxError", (Exception,), {})


def json_safe(value, depth: int = 0):
    """A workflow's answer as plain JSON types only (exact types, so no subclass code runs); tuples
    become lists; anything else raises TypeError, reported on the solver's line."""
    if depth > 100:
        raise TypeError("answer nests deeper than 100 levels")
    kind = type(value)
    if value is None or kind in (bool, int, str):
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        raise TypeError(f"answer holds the non-finite float {value!r}")
    if kind in (list, tuple):
        return [json_safe(v, depth + 1) for v in value]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"answer holds a dict key of type {type(key).__name__}")
            out[key] = json_safe(item, depth + 1)
        return out
    raise TypeError(f"answer holds a value of type {kind.__name__}, which is not JSON")


def _error_info(error: BaseException, filename: str) -> dict:
    line = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == filename:
            line = lineno
    if line is None and isinstance(error, SyntaxError) and error.filename == filename:
        line = error.lineno
    if isinstance(error, AnswerError):
        return {"type": "TypeError", "message": str(error), "line": error.line}
    message = str(error)
    try:
        message = message[:4000]
    except Exception:
        message = "(unprintable message)"
    return {"type": type(error).__name__, "message": message, "line": line}


def _compile(source: str, filename: str):
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def call_parent(channel: Channel):
    """The agent's way to the parent: execute_code values arrive tagged (values.py) and are decoded here."""

    def call(method: str, kwargs: dict):
        value = channel.call(method, kwargs)
        return values.decode(value) if method == "execute_code" else value

    return call


def run_workflow(job: dict, channel: Channel) -> dict:
    """exec the workflow, call solver(agent, task), return its strictly JSON-safe answer."""
    context = job.get("context") or {}
    agent = agent_proxy.Agent(call_parent(channel), context.get("public_tests", []), context.get("entry_point", ""))
    namespace = {"__name__": "workflow", "__builtins__": builtins}
    exec(_compile(job["source"], WORKFLOW_FILE), namespace)
    solver = namespace.get("solver")
    if not callable(solver):
        raise NameError("the workflow defines no solver(agent, task) function")
    result = solver(agent, job["task"])
    try:
        if type(result) is not dict or "answer" not in result:
            raise TypeError(f"solver must return a dict with key 'answer', got {type(result).__name__}")
        return json_safe(result["answer"])
    except TypeError as error:
        raise AnswerError(str(error), getattr(getattr(solver, "__code__", None), "co_firstlineno", None)) from None


class AnswerError(TypeError):
    """The solver returned something other than {"answer": <plain JSON>}; `line` is its def line."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def run_code(job: dict) -> object:
    """execute_code semantics: solution() if defined, else the last expression or assignment; the
    value in the tagged encoding of values.py, which the workflow's agent decodes."""
    source = job["source"]
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    exec(_compile(source, "<code>"), namespace)
    if callable(namespace.get("solution")):
        return values.encode(namespace["solution"]())
    body = ast.parse(source).body
    if not body:
        return None
    last = body[-1]
    if isinstance(last, ast.Expr):
        return values.encode(eval(compile(ast.Expression(last.value), "<code>", "eval"), namespace))
    if isinstance(last, ast.Assign) and isinstance(last.targets[-1], ast.Name):
        return values.encode(namespace.get(last.targets[-1].id))
    return None


def main() -> None:
    config = json.loads(sys.argv[1])
    fd_in, fd_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    for name in PRELOADED:
        try:
            __import__(name)
        except ImportError:
            continue
    stdlib = os.path.dirname(os.__file__)
    c_modules = limits.c_module_names(stdlib)
    layers = limits.unshare_and_drop(config.get("uid"), int(config["workdir_mb"]), (stdlib,))
    layers += limits.apply_rlimits(**config["rlimits"])
    limits.confine_c_modules(c_modules)
    limits.install_audit_hook(os.getcwd(), (stdlib,), c_modules)
    layers += ["c_module_allow_list", "audit_hook"]
    channel = Channel(fd_in, fd_out)
    channel.send({"type": "ready", "layers": layers, "pid": os.getpid()})
    try:
        job = channel.receive()
    except (EOFError, framing.FrameError):
        os._exit(0)
    channel.start_reader()
    captured = BoundedText(int(config["max_output_chars"]))
    sys.stdout = sys.stderr = captured
    answer, error = None, None
    filename = {"workflow": WORKFLOW_FILE, "code": "<code>"}.get(job.get("kind"))
    try:
        if job.get("kind") == "workflow":
            answer = run_workflow(job, channel)
        elif job.get("kind") == "code":
            answer = run_code(job)
        else:
            raise ValueError(f"unknown job kind {job.get('kind')!r}")
    except BaseException as caught:  # SystemExit and KeyboardInterrupt from a workflow are errors too
        error = _error_info(caught, filename)
    message = {"type": "result", "answer": answer, "error": error, "stdout": captured.getvalue()}
    try:
        channel.send(message)
    except framing.FrameError as too_big:
        channel.send({"type": "result", "answer": None, "stdout": "",
                      "error": {"type": "OutputTooLarge", "message": str(too_big), "line": None}})
    os._exit(0)


if __name__ == "__main__":
    main()
