"""Hostile workflows: each is contained with the right error, and the parent stays healthy.

Every case runs in a real confined worker (real subprocesses, real sockets on loopback). After each
case the same sandbox must still run a normal workflow, no secret of the parent may appear in any
answer, output or error, and nothing may be left behind (processes, files outside the workdir).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import shutil
import socket
import tempfile
import threading
import time

import pytest

from w4s_jax.sandbox import Sandbox, SandboxSettings
from w4s_jax.sandbox.pool import STALE_WORKDIR_S, UID_BASE, WORKDIR_PREFIX, remove_stale_workdirs

SECRET = "sk-w4s-fake-secret-7d1f0c"
SETTINGS = SandboxSettings(
    workers=3, sample_timeout_s=3.0, cpu_seconds=4, memory_mb=256, max_file_mb=2, max_open_files=32,
    max_output_bytes=100_000, execute_code_timeout_s=2.0, workdir_mb=8,
)
NORMAL = "def solver(agent, task):\n    return {'answer': agent.call_llm(messages=[{'role': 'user', 'content': task}])[0]}\n"


async def echo_handler(method: str, kwargs: dict, scope: str) -> object:
    return [f"echo:{kwargs['messages'][-1]['content']}"]


@pytest.fixture(scope="module")
def loop_and_sandbox():
    os.environ["W4S_SANDBOX_TEST_SECRET"] = SECRET
    loop = asyncio.new_event_loop()
    sandbox = Sandbox(SETTINGS, echo_handler)
    loop.run_until_complete(sandbox.__aenter__())
    yield loop, sandbox
    loop.run_until_complete(sandbox.close())
    loop.close()
    os.environ.pop("W4S_SANDBOX_TEST_SECRET", None)


@pytest.fixture(scope="module")
def listener():
    """A loopback TCP listener; records every connection that reaches it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    arrived: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            arrived.append(conn.recv(1024) or b"<connected>")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], arrived
    stop.set()
    thread.join(2)
    server.close()


def solver_of(body: str) -> str:
    lines = body.strip("\n").splitlines()
    return "import os, sys\n\ndef solver(agent, task):\n" + "\n".join("    " + line for line in lines) + "\n"


OUTSIDE = "/tmp/w4s_hostile_outside_marker"
# (id, workflow body inside solver, expected error type, a fragment of the expected message)
HOSTILE = [
    ("python_infinite_loop", "while True:\n    pass", "TimeoutError", "3 s wall clock"),
    ("regex_backtracking_in_c", "import re\nre.match(r'(a+)+$', 'a' * 64 + 'b')\nreturn {'answer': 1}",
     "TimeoutError", "wall clock"),
    ("ctypes_import", "import ctypes\nreturn {'answer': ctypes.string_at(0)}", "PermissionError", "ctypes"),
    ("fork_bomb", "while True:\n    os.fork()", "PermissionError", "os.fork"),
    ("posix_spawn", "os.posix_spawn('/bin/sh', ['sh', '-c', 'sleep 100'], {})\nreturn {'answer': 1}",
     "PermissionError", "os.posix_spawn"),
    ("memory_bomb_bytes", "x = bytearray(8 << 30)\nreturn {'answer': len(x)}", "MemoryError", ""),
    ("memory_bomb_growth", "a = []\nwhile True:\n    a.append(' ' * 10_000_000)", "MemoryError", ""),
    ("c_stack_overflow", "sys.setrecursionlimit(10**8)\ndef f(n):\n    return list(map(f, [n + 1]))\n"
     "return {'answer': f(0)}", "WorkerCrashed", "segmentation fault"),
    ("huge_answer", "return {'answer': 'x' * 5_000_000}", "OutputTooLarge", "max_output_bytes"),
    ("environment_keys", "return {'answer': dict(os.environ)}", None, None),
    ("parent_proc_environ", "return {'answer': open(f'/proc/{os.getppid()}/environ').read()}",
     "PermissionError", "outside the working directory"),
    ("all_proc_environ", "found = []\nfor p in os.listdir('/proc'):\n    found.append(p)\nreturn {'answer': found}",
     "PermissionError", "/proc"),
    ("read_outside_file", "return {'answer': open('/etc/passwd').read()}", "PermissionError", "/etc/passwd"),
    ("read_hidden_data_via_relative_path", "return {'answer': open('../../etc/hostname').read()}",
     "PermissionError", "outside the working directory"),
    ("write_outside_file", f"open({OUTSIDE!r}, 'w').write('pwned')\nreturn {{'answer': 1}}",
     "PermissionError", "writing"),
    ("chdir_escape", "os.chdir('/')\nreturn {'answer': os.listdir('.')}", "PermissionError", "os.chdir"),
    ("symlink_escape", "os.symlink('/etc/passwd', 'link')\nreturn {'answer': open('link').read()}",
     "PermissionError", "os.symlink"),
    ("socket_loopback", "import socket\ns = socket.create_connection(('127.0.0.1', PORT), timeout=1)\n"
     "s.sendall(b'leak')\nreturn {'answer': 1}", "PermissionError", "socket"),
    ("socket_elsewhere", "import socket\ns = socket.create_connection(('8.8.8.8', 53), timeout=1)\n"
     "return {'answer': 1}", "PermissionError", "socket"),
    ("subprocess_module", "import subprocess\nreturn {'answer': subprocess.check_output(['id'])}",
     "PermissionError", "subprocess"),
    ("os_system", f"os.system('touch {OUTSIDE}')\nreturn {{'answer': 1}}", "PermissionError", "os.system"),
    ("kill_parent", "os.kill(os.getppid(), 9)\nreturn {'answer': 1}", "PermissionError", "os.kill"),
    ("kill_parent_group", "os.killpg(os.getpgid(os.getppid()), 9)\nreturn {'answer': 1}", "PermissionError",
     "os.killpg"),
    ("os_exit", "os._exit(0)", "WorkerCrashed", "exited with code 0"),
    ("ignore_sigterm_and_spin", "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n"
     "    pass", "TimeoutError", "wall clock"),
    ("segfault_native", "import faulthandler\nfaulthandler._sigsegv()", "WorkerCrashed", "segmentation fault"),
    ("hostile_reduce_answer", "class Evil:\n    def __reduce__(self):\n        return (os.system, ('touch "
     f"{OUTSIDE}',))\nreturn {{'answer': Evil()}}", "TypeError", "not JSON"),
    ("set_answer", "return {'answer': {1, 2, 3}}", "TypeError", "set"),
    ("dict_subclass_result", "class D(dict):\n    pass\nreturn D(answer=1)", "TypeError", "dict with key"),
    ("threads_outlive_the_call", "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)])"
     ".start()\nreturn {'answer': 'done'}", None, None),
    ("thread_exhaustion", "import threading, time\nfor _ in range(500):\n"
     "    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\nreturn {'answer': 1}",
     "RuntimeError", "thread"),
    ("fill_the_disk", "n = 0\nwhile True:\n    open(f'f{n}', 'w').write('x' * 1_000_000)\n    n += 1",
     "OSError", "No space left"),
    ("one_huge_file", "open('big', 'w').write('x' * 50_000_000)\nreturn {'answer': 1}", "OSError", "too large"),
    ("exhaust_file_descriptors", "fds = []\nwhile True:\n    fds.append(open('f', 'w'))", "OSError",
     "Too many open files"),
    ("raise_own_limits", "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (10**6, 10**6))\n"
     "return {'answer': 1}", "PermissionError", "resource.setrlimit"),
    ("heap_walk_to_channel", "import gc\nreturn {'answer': len(gc.get_objects())}", "PermissionError", "gc."),
    ("garbage_into_channel", "for fd in range(3, 12):\n    try:\n        os.write(fd, b'\\x00\\x00\\x00\\x05hello')\n"
     "    except OSError:\n        pass\nimport time\ntime.sleep(2)\nreturn {'answer': 1}", "ProtocolError",
     "protocol"),
    ("oversized_frame_header", "for fd in range(3, 12):\n    try:\n        os.write(fd, b'\\xff\\xff\\xff\\xff')\n"
     "    except OSError:\n        pass\nimport time\ntime.sleep(2)\nreturn {'answer': 1}", "ProtocolError",
     "exceeds"),
    ("tamper_proxy_internals", "agent._call_parent = lambda method, kwargs: ['forged']\n"
     "return {'answer': agent.call_llm(messages=[{'role': 'user', 'content': 'x'}])[0]}", None, None),
    ("llm_call_with_unserialisable_args", "return {'answer': agent.call_llm(messages=[{'role': 'user', "
     "'content': 'x'}], temperature=object())}", "TypeError", "JSON-safe"),
    ("system_exit", "raise SystemExit(3)", "SystemExit", "3"),
    ("execute_code_escape", "return {'answer': agent.execute_code('import os\\nos.system(\"id\")')}",
     "Exception", "Error when executing code"),
    ("execute_code_flood", "import threading\nfor _ in range(12):\n    threading.Thread(target=agent.execute_code, "
     "args=('import time\\ntime.sleep(1)',)).start()\nimport time\ntime.sleep(60)", "TimeoutError", "wall clock"),
    ("execute_code_infinite_loop", "return {'answer': agent.execute_code('while True:\\n    pass', timeout=60)}",
     "Exception", "2 s wall clock"),
]


def _leftover_processes(sandbox: Sandbox) -> list[int]:
    """Processes of this test's sandbox (a sandbox uid >= 1e9, child of this process or orphaned to
    init) other than the pool's idle workers. Other sandboxes on the machine are not counted."""
    idle = {w.process.pid for w in sandbox.pool._idle}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in idle:
            continue
        try:
            uid = entry.stat().st_uid
            parent = int(pathlib.Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        if uid >= 1_000_000_000 and parent in (os.getpid(), 1):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize("case", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_workflow_is_contained(case, loop_and_sandbox, listener):
    name, body, error_type, fragment = case
    loop, sandbox = loop_and_sandbox
    port, arrived = listener
    pathlib.Path(OUTSIDE).unlink(missing_ok=True)
    started = time.monotonic()
    result = loop.run_until_complete(sandbox.run_workflow(solver_of(body.replace("PORT", str(port))), ["q"]))[0]
    assert time.monotonic() - started < SETTINGS.sample_timeout_s + 3.0

    text = f"{result.answer!r} {result.stdout} {result.error}"
    assert SECRET not in text, f"{name}: the parent's secret leaked"
    if error_type is None:
        assert result.error is None, f"{name}: {result.error}"
    else:
        assert result.error is not None, f"{name}: expected {error_type}, got answer {str(result.answer)[:200]}"
        assert result.error["type"] == error_type, f"{name}: {result.error}"
        assert fragment in result.error["message"], f"{name}: {result.error}"
    if result.error is not None and result.error["type"] not in ("TimeoutError", "WorkerCrashed", "ProtocolError",
                                                                 "OutputTooLarge"):
        assert isinstance(result.error["line"], int), f"{name}: no workflow line in {result.error}"

    assert not pathlib.Path(OUTSIDE).exists(), f"{name}: wrote outside its working directory"
    assert arrived == [], f"{name}: a connection reached the loopback listener"
    loop.run_until_complete(sandbox.pool.settled())
    assert _leftover_processes(sandbox) == [], f"{name}: left processes behind"
    healthy = loop.run_until_complete(sandbox.run_workflow(NORMAL, ["still alive?"]))[0]
    assert healthy.error is None and healthy.answer == "echo:still alive?"


def test_environment_answer_has_no_parent_variables(loop_and_sandbox):
    loop, sandbox = loop_and_sandbox
    result = loop.run_until_complete(sandbox.run_workflow(solver_of("return {'answer': dict(os.environ)}"), ["q"]))[0]
    assert "W4S_SANDBOX_TEST_SECRET" not in result.answer
    assert not any(key.endswith(("_KEY", "_TOKEN")) for key in result.answer)


def test_huge_stdout_is_capped(loop_and_sandbox):
    loop, sandbox = loop_and_sandbox
    body = "for _ in range(100):\n    print('y' * 100_000)\nos.write(2, b'z' * 10_000_000)\nreturn {'answer': 'ok'}"
    result = loop.run_until_complete(sandbox.run_workflow(solver_of(body), ["q"]))[0]
    assert result.error is None and result.answer == "ok"
    assert len(result.stdout) <= SETTINGS.max_output_bytes
    assert "characters dropped" in result.stdout or len(result.stdout) == SETTINGS.max_output_bytes


def test_parent_keeps_its_own_process_group_and_workdirs_are_removed(loop_and_sandbox):
    loop, sandbox = loop_and_sandbox
    body = "open('scratch.txt', 'w').write('x')\nreturn {'answer': os.getcwd()}"
    result = loop.run_until_complete(sandbox.run_workflow(solver_of(body), ["q"]))[0]
    assert result.error is None
    loop.run_until_complete(sandbox.pool.settled())  # clean-up runs off the sample's critical path
    assert not pathlib.Path(result.answer).exists()
    assert os.getpgrp() == os.getpgid(0)
    assert "audit_hook" in sandbox.layers and any(layer.startswith("RLIMIT_AS") for layer in sandbox.layers)


def test_stale_workdirs_of_a_killed_parent_are_swept():
    stale = pathlib.Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    fresh = pathlib.Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    (stale / "leftover.txt").write_text("x")
    for path in (stale, fresh):
        os.chown(path, UID_BASE + 7, UID_BASE + 7)
    old = time.time() - STALE_WORKDIR_S - 60
    os.utime(stale, (old, old))
    try:
        assert remove_stale_workdirs() >= 1
        assert not stale.exists() and fresh.exists()
    finally:
        shutil.rmtree(stale, ignore_errors=True)
        shutil.rmtree(fresh, ignore_errors=True)


def test_host_files_do_not_exist_for_a_workflow_as_root(loop_and_sandbox, shared_data_dir):
    """stat() raises no audit event, so this probes the minimal chroot itself, not the hook."""
    loop, sandbox = loop_and_sandbox
    probes = ["/etc/passwd", str(shared_data_dir / "humaneval" / "test.jsonl"), "/proc/1", __file__]
    body = f"return {{'answer': [os.path.exists(p) for p in {probes!r}] + [__import__('colorsys').__name__]}}"
    result = loop.run_until_complete(sandbox.run_workflow(solver_of(body), ["q"]))[0]
    assert result.error is None, result.error
    if os.geteuid() == 0:
        assert "chroot_minimal_root" in sandbox.layers
        assert result.answer == [False] * len(probes) + ["colorsys"]
