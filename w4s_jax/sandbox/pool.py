"""Warm sandbox workers: confined processes spawned ahead of need, one job each, then destroyed.

A sample never waits for a Python start-up: the pool keeps `size` workers confined and idle, hands
one out per job and spawns a replacement in the background. Destroying a worker kills its process
group and, when it ran under its own uid, every process of that uid (catching children that left
the group), then removes its working directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

from w4s_jax.sandbox import protocol
from w4s_jax.sandbox.framing import HEADER, encode_frame

WORKER_SCRIPT = pathlib.Path(__file__).with_name("worker.py")
# uids handed to workers as root: far above any real account, random so parallel parents never share.
UID_BASE, UID_SPAN = 1_000_000_000, 1_000_000_000
WORKDIR_PREFIX = "w4s-sandbox-"
STALE_WORKDIR_S = 600.0
STDERR_KEEP_BYTES = 16_384
READY_TIMEOUT_S = 60.0


class WorkerDied(RuntimeError):
    """The worker process ended (or closed its channel) before finishing its job."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker is confined to; sent to it on its command line (nothing secret in it)."""

    cpu_seconds: int
    memory_mb: int
    max_file_mb: int
    max_open_files: int
    max_threads: int
    max_output_bytes: int
    workdir_mb: int = 64

    @property
    def max_frame_bytes(self) -> int:
        return max(8 << 20, 2 * self.max_output_bytes + (1 << 20))


class Worker:
    """One confined process with its channel; used for exactly one job."""

    def __init__(self, process: asyncio.subprocess.Process, workdir: str, uid: int | None,
                 max_frame_bytes: int) -> None:
        self.process, self.workdir, self.uid = process, workdir, uid
        self.max_frame_bytes = max_frame_bytes
        self.layers: tuple[str, ...] = ()
        self.stderr_tail = bytearray()
        self._send_lock = asyncio.Lock()
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        self._destroyed = False

    async def _drain_stderr(self) -> None:
        """Keeps the stderr pipe flowing (a full pipe would stall the worker) and its last bytes."""
        while chunk := await self.process.stderr.read(65536):
            self.stderr_tail += chunk
            del self.stderr_tail[:-STDERR_KEEP_BYTES]

    async def send(self, message: dict) -> None:
        async with self._send_lock:
            self.process.stdin.write(encode_frame(message))
            await self.process.stdin.drain()

    async def receive(self) -> protocol.Call | protocol.Result | protocol.Ready:
        """The next validated frame; WorkerDied on EOF, ProtocolError on a bad frame."""
        try:
            header = await self.process.stdout.readexactly(HEADER.size)
            (size,) = HEADER.unpack(header)
            if size > self.max_frame_bytes:
                raise protocol.ProtocolError(f"frame of {size} bytes exceeds the {self.max_frame_bytes}-byte cap")
            payload = await self.process.stdout.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            raise WorkerDied(await self.death_note()) from None
        return protocol.parse(payload)

    async def death_note(self) -> str:
        """Why the worker ended, for the sample's error message."""
        try:
            code = await asyncio.wait_for(self.process.wait(), 2.0)
        except TimeoutError:
            return "the worker closed its channel"
        tail = bytes(self.stderr_tail[-600:]).decode("utf-8", "replace").strip()
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            why = {
                "SIGSEGV": "a segmentation fault (native crash or C stack overflow)",
                "SIGXCPU": "the CPU-time limit (sandbox.cpu_seconds)",
                "SIGKILL": "SIGKILL (CPU-time hard limit or an external kill)",
                "SIGBUS": "a bus error (native crash)",
                "SIGABRT": "an abort (often memory exhaustion in native code)",
            }.get(name, name)
            text = f"worker process killed by {why}"
        else:
            text = f"worker process exited with code {code} before reporting a result"
        return text + (f"; stderr tail: {tail}" if tail else "")

    async def _discard_channel(self) -> None:
        """Reads what the killed worker left on its channel, to EOF. Python 3.11's `Process.wait()`
        returns only once every pipe of the process has closed, and a channel whose reading was paused
        (the worker sent more than the parent read, as a flood does) never sees its EOF unless someone
        reads: `wait()` would hang for good, and with it the pool's close."""
        with contextlib.suppress(RuntimeError, ConnectionError):  # RuntimeError: a receive() reads it still
            while await self.process.stdout.read(1 << 16):
                pass

    async def destroy(self) -> None:
        """Kills the worker's whole tree (group, and its uid when it had one), removes its workdir."""
        if self._destroyed:
            return
        self._destroyed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.uid is not None:
            await asyncio.to_thread(kill_uid, self.uid)
        # os.kill, not process.kill(): Popen.send_signal() polls first and would reap the child behind
        # asyncio's watcher, losing its exit status. Unreaped, the pid cannot be reused meanwhile.
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)
        await self._discard_channel()
        await self.process.wait()
        self._stderr_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._stderr_task
        await asyncio.to_thread(shutil.rmtree, self.workdir, True)


def kill_uid(uid: int, rounds: int = 5) -> None:
    """SIGKILLs every process whose real or effective uid is `uid` (the worker's own, unused uid)."""
    for _ in range(rounds):
        found = False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                os.kill(int(entry.name), signal.SIGKILL)
                found = True
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
        if not found:
            return


def remove_stale_workdirs(now: float | None = None) -> int:
    """Removes working directories left by a parent that was killed before it could clean up: those
    owned by a sandbox uid, older than STALE_WORKDIR_S, whose uid runs no process any more."""
    now = time.time() if now is None else now
    live_uids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                live_uids.add(entry.stat().st_uid)
    removed = 0
    for entry in os.scandir(tempfile.gettempdir()):
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if (entry.name.startswith(WORKDIR_PREFIX) and entry.is_dir(follow_symlinks=False)
                and info.st_uid >= UID_BASE and info.st_uid not in live_uids
                and now - info.st_mtime > STALE_WORKDIR_S):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    return removed


async def spawn(spec: WorkerSpec) -> Worker:
    """Starts one worker, waits until it reports itself confined, and returns it."""
    uid = UID_BASE + secrets.randbelow(UID_SPAN) if os.geteuid() == 0 else None
    workdir = tempfile.mkdtemp(prefix=WORKDIR_PREFIX)
    try:
        return await _start_worker(spec, uid, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


async def _start_worker(spec: WorkerSpec, uid: int | None, workdir: str) -> Worker:
    if uid is not None:
        os.chown(workdir, uid, uid)
    config = {
        "uid": uid,
        "max_output_chars": spec.max_output_bytes,
        "workdir_mb": spec.workdir_mb,
        "rlimits": {
            "cpu_seconds": spec.cpu_seconds, "memory_mb": spec.memory_mb, "max_file_mb": spec.max_file_mb,
            "max_open_files": spec.max_open_files, "max_tasks": spec.max_threads,
        },
    }
    env = {"PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "MALLOC_ARENA_MAX": "2", "LANG": "C.UTF-8"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-I", "-S", "-B", str(WORKER_SCRIPT), json.dumps(config),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=workdir, env=env, start_new_session=True, close_fds=True,
    )
    worker = Worker(process, workdir, uid, spec.max_frame_bytes)
    try:
        ready = await asyncio.wait_for(worker.receive(), READY_TIMEOUT_S)
        if not isinstance(ready, protocol.Ready):
            raise protocol.ProtocolError("the worker's first frame must be 'ready'")
    except BaseException:
        await asyncio.shield(worker.destroy())
        raise
    worker.layers = ready.layers
    return worker


class WorkerPool:
    """Keeps up to `size` confined workers idle; `acquire` returns one (spawning if none is ready).

    `release` destroys a used worker and spawns its replacement in the background, so neither the
    clean-up nor the next spawn sits on a sample's critical path.
    """

    def __init__(self, spec: WorkerSpec, size: int) -> None:
        self.spec, self.size = spec, max(1, size)
        self._idle: list[Worker] = []
        self._spawning: set[asyncio.Task] = set()
        self._cleanups: set[asyncio.Task] = set()
        self._closed = False
        self.last_layers: tuple[str, ...] = ()

    def _refill(self) -> None:
        while not self._closed and len(self._idle) + len(self._spawning) < self.size:
            task = asyncio.ensure_future(spawn(self.spec))
            self._spawning.add(task)
            task.add_done_callback(self._spawned)

    def _spawned(self, task: asyncio.Task) -> None:
        self._spawning.discard(task)
        if task.cancelled() or task.exception() is not None:
            return  # acquire() spawns directly when the pool is empty, and that error surfaces
        worker = task.result()
        if self._closed:
            self._track(worker.destroy())
        else:
            self._idle.append(worker)

    def _track(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def start(self) -> None:
        """Fills the pool and waits for the first workers (start-up errors surface here)."""
        if os.geteuid() == 0:
            await asyncio.to_thread(remove_stale_workdirs)
        self._refill()
        if self._spawning:
            done, _ = await asyncio.wait(self._spawning, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()

    async def acquire(self) -> Worker:
        """An idle confined worker. Waiting callers never own a spawn, so a caller cancelled while
        waiting leaves nothing half-built: the spawn finishes and its worker joins the idle list."""
        while True:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.returncode is None:
                    self.last_layers = worker.layers
                    return worker
                self._track(worker.destroy())
            if self._closed:
                raise RuntimeError("the sandbox is closed")
            self._refill()
            done, _ = await asyncio.wait(set(self._spawning), return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()

    def release(self, worker: Worker) -> None:
        """Destroys a used worker and refills the pool, both in the background."""

        async def destroy_and_refill() -> None:
            await worker.destroy()
            self._refill()

        self._track(destroy_and_refill())

    async def settled(self) -> None:
        """Waits until no clean-up or spawn is in flight (tests and benchmarks use this)."""
        while self._spawning or self._cleanups:
            await asyncio.gather(*self._spawning, *self._cleanups, return_exceptions=True)

    async def close(self) -> None:
        self._closed = True
        # In-flight spawns are awaited, not cancelled: a cancelled spawn could leave a half-started process.
        await self.settled()
        idle, self._idle = self._idle, []
        await asyncio.gather(*(worker.destroy() for worker in idle))
        await self.settled()
