"""The parent's API: run a workflow's source on samples, run executor-written code and test programs.

The sandbox knows nothing of tasks or executors: `handler(method, kwargs, scope)` answers the
agent's LLM calls (the parent owns keys, cache and budget); code and test programs run in their
own confined workers, apart from the workflow's. Every failure of untrusted code becomes an error on
its own sample; the parent carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from w4s_jax.sandbox import protocol
from w4s_jax.sandbox.attachments import read_attachment_text
from w4s_jax.sandbox.framing import FrameError
from w4s_jax.sandbox.pool import Worker, WorkerDied, WorkerPool, WorkerSpec
from w4s_jax.sandbox.settings import SandboxSettings


@dataclass(frozen=True)
class HandlerReply:
    """What a handler may return instead of a bare value, to report the tokens a call used."""

    value: object
    tokens: int = 0


Handler = Callable[[str, dict, str], Awaitable[object]]


@dataclass
class SampleResult:
    """One sample of one workflow: the answer or an error {type, message, line}, and its costs."""

    answer: object = None
    error: dict | None = None
    wall_s: float = 0.0
    executor_calls: int = 0
    tokens: int = 0
    stdout: str = ""


@dataclass(frozen=True)
class SampleContext:
    """What a workflow may see of its sample besides the question: the public tests of code tasks."""

    public_tests: tuple[str, ...] = ()
    entry_point: str = ""
    attachment: str = ""  # a file the parent reads for agent.read_attachment(); its path never reaches the worker


def workflow_hash(source: str) -> str:
    """Short content hash (12 hex digits of the stripped source's sha256) naming a workflow everywhere:
    the workflow part of every executor scope, and the W4S archive, journal and trajectories."""
    return hashlib.sha256(source.strip().encode("utf-8")).hexdigest()[:12]


@dataclass
class _Tally:
    calls: int = 0
    tokens: int = 0
    tasks: set = field(default_factory=set)


class Sandbox:
    """`async with Sandbox(settings, handler) as sandbox: await sandbox.run_workflow(...)`."""

    def __init__(self, settings: SandboxSettings, handler: Handler | None = None) -> None:
        """`handler` answers the agent's calls of every workflow this sandbox runs; given here only, so
        one sandbox has one answerer (None: a workflow's agent call fails as a RuntimeError)."""
        self.settings = settings
        self._handler = handler
        spec = WorkerSpec(
            cpu_seconds=self.settings.cpu_seconds, memory_mb=self.settings.memory_mb,
            max_file_mb=self.settings.max_file_mb, max_open_files=self.settings.max_open_files,
            max_threads=self.settings.max_threads, max_output_bytes=self.settings.max_output_bytes,
            workdir_mb=self.settings.workdir_mb,
        )
        self.pool = WorkerPool(spec, self.settings.workers)
        self._sample_slots = asyncio.Semaphore(max(1, self.settings.workers))
        # execute_code and test programs get their own slots: they never call back, so they cannot
        # deadlock against samples, and a workflow firing many of them cannot fork the host to death.
        self._code_slots = asyncio.Semaphore(max(1, self.settings.workers))

    async def __aenter__(self) -> Sandbox:
        await self.pool.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        await self.pool.close()

    @property
    def layers(self) -> tuple[str, ...]:
        """Confinement layers that took effect in the most recent worker (recorded in reports)."""
        return self.pool.last_layers

    async def run_workflow(self, source: str, tasks: Sequence[str], sample_ids: Sequence[str] | None = None,
                           contexts: Sequence[SampleContext] | None = None) -> list[SampleResult]:
        """Runs `solver(agent, task)` once per task, concurrently, each in its own worker.

        Sample i's executor calls carry scope f"{workflow_hash(source)}:{sample_ids[i]}".
        """
        ids = [str(i) for i in range(len(tasks))] if sample_ids is None else [str(s) for s in sample_ids]
        contexts = list(contexts) if contexts is not None else [SampleContext()] * len(tasks)
        if not len(ids) == len(contexts) == len(tasks):
            raise ValueError("run_workflow: tasks, sample_ids and contexts must have the same length")
        prefix = workflow_hash(source)
        results = [SampleResult() for _ in tasks]

        async def one(index: int) -> None:
            async with self._sample_slots:
                results[index] = await self._run_sample(source, tasks[index], f"{prefix}:{ids[index]}",
                                                        contexts[index])

        jobs = [asyncio.ensure_future(one(i)) for i in range(len(tasks))]
        started = time.monotonic()
        _done, pending = await asyncio.wait(jobs, timeout=self.settings.workflow_timeout_s) if jobs else ((), ())
        for job in pending:
            job.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.monotonic() - started
        for index, job in enumerate(jobs):
            if job in pending:
                results[index] = SampleResult(error={
                    "type": "TimeoutError", "line": None,
                    "message": f"workflow exceeded {self.settings.workflow_timeout_s:g} s wall clock "
                               "over all its samples (sandbox.workflow_timeout_s)"}, wall_s=elapsed)
            else:
                job.result()
        return results

    async def _run_sample(self, source: str, task: str, scope: str, context: SampleContext) -> SampleResult:
        job = {"type": "run", "kind": "workflow", "source": source, "task": task,
               "context": {"public_tests": list(context.public_tests), "entry_point": context.entry_point}}
        tally = _Tally()
        limit = self.settings.sample_timeout_s
        result, stdout, error, wall = await self._run_job(
            job, limit, f"sample exceeded {limit:g} s wall clock (sandbox.sample_timeout_s)",
            lambda worker, call: self._answer_call(worker, call, scope, tally, context),
        )
        if error is None:
            error = self._answer_error(result)
        return SampleResult(answer=None if error else result, error=error, wall_s=wall,
                            executor_calls=tally.calls, tokens=tally.tokens, stdout=stdout)

    def _answer_error(self, answer: object) -> dict | None:
        size = protocol.json_size(answer)
        if size > self.settings.max_output_bytes:
            return {"type": "OutputTooLarge", "line": None,
                    "message": f"answer is {size} bytes of JSON, over sandbox.max_output_bytes="
                               f"{self.settings.max_output_bytes}"}
        return None

    async def _run_job(self, job: dict, timeout_s: float, timeout_message: str,
                       on_call: Callable[[Worker, protocol.Call], Awaitable[None]] | None):
        """One job in a fresh worker: (answer, stdout, error, wall_s). The worker is always destroyed."""
        try:
            worker = await self.pool.acquire()
        except (WorkerDied, protocol.ProtocolError, OSError) as failed:  # start-up errors surface in __aenter__
            return None, "", {"type": "WorkerCrashed", "line": None, "message": f"a worker failed to start: {failed}"}, 0.0
        started = time.monotonic()
        calls: dict[asyncio.Task, int] = {}  # outstanding agent calls and their frames' bytes
        answer, stdout, error = None, "", None
        try:
            async with asyncio.timeout(timeout_s):
                await worker.send(job)
                while True:
                    frame = await worker.receive()
                    if isinstance(frame, protocol.Result):
                        answer, stdout, error = frame.answer, frame.stdout, frame.error
                        break
                    if not isinstance(frame, protocol.Call) or on_call is None:
                        raise protocol.ProtocolError(f"unexpected {type(frame).__name__.lower()} frame")
                    self._admit(frame, calls, worker.max_frame_bytes)
                    task = asyncio.ensure_future(on_call(worker, frame))
                    calls[task] = frame.size
                    task.add_done_callback(lambda done: calls.pop(done, None))
        except TimeoutError:
            error = {"type": "TimeoutError", "message": timeout_message, "line": None}
        except protocol.ProtocolError as bad:
            error = {"type": "ProtocolError", "line": None,
                     "message": f"worker broke the channel protocol and was killed: {bad}"}
        except WorkerDied as died:
            error = {"type": "WorkerCrashed", "message": str(died), "line": None}
        except (ConnectionError, BrokenPipeError) as broken:
            error = {"type": "WorkerCrashed", "message": f"channel to the worker broke: {broken}", "line": None}
        finally:
            for task in list(calls):
                task.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            self.pool.release(worker)
        return answer, stdout[: self.settings.max_output_bytes], error, time.monotonic() - started

    def _admit(self, call: protocol.Call, outstanding: dict[asyncio.Task, int], max_pending_bytes: int) -> None:
        """ProtocolError (the worker is killed) for a call frame over sandbox.max_call_bytes, one more
        outstanding call than the worker has threads (each honest call blocks one of its threads), or
        outstanding call frames of more than one frame's cap in all: so what a worker's pending calls
        hold in the parent is bounded (docs/sandbox_threat_model.md, "The parent's side")."""
        if call.size > self.settings.max_call_bytes:
            raise protocol.ProtocolError(f"agent.{call.method} call frame of {call.size} bytes exceeds "
                                         f"sandbox.max_call_bytes={self.settings.max_call_bytes}")
        if len(outstanding) >= self.settings.max_threads:
            raise protocol.ProtocolError(f"more than {self.settings.max_threads} agent calls outstanding at once "
                                         "(sandbox.max_threads)")
        if sum(outstanding.values()) + call.size > max_pending_bytes:
            raise protocol.ProtocolError(f"outstanding agent calls of more than {max_pending_bytes} bytes in all")

    async def _answer_call(self, worker: Worker, call: protocol.Call, scope: str, tally: _Tally,
                           context: SampleContext | None = None) -> None:
        """Answers one agent call; a failure becomes an error reply the workflow can catch."""
        try:
            protocol.check_arguments(call, self.settings.max_responses)
            if call.method == "execute_code":
                value = await self.run_code(call.kwargs["code"], float(call.kwargs["timeout"]))
            elif call.method == "read_attachment":
                value = await asyncio.to_thread(read_attachment_text, context.attachment if context else "")
            elif call.method in protocol.TOOL_METHODS:  # web_search: the handler's backend, not an executor call
                if self._handler is None:
                    raise RuntimeError("this sandbox has no handler")
                value = await self._handler(call.method, dict(call.kwargs), scope)
            else:
                if self._handler is None:
                    raise RuntimeError("this sandbox has no executor handler")
                kwargs = {k: v for k, v in call.kwargs.items() if k != "scope"}
                tally.calls += 1
                value = await self._handler(call.method, kwargs, scope)
                if isinstance(value, HandlerReply):
                    tally.tokens += value.tokens
                    value = value.value
            reply = {"type": "reply", "id": call.id, "ok": True, "value": value}
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the workflow sees the parent's error type and message
            reply = {"type": "reply", "id": call.id, "ok": False,
                     "error": {"type": type(error).__name__, "message": str(error)[:4000]}}
        try:
            await worker.send(reply)
        except FrameError as unsendable:  # e.g. a handler value JSON cannot carry: still answer the call
            reply = {"type": "reply", "id": call.id, "ok": False,
                     "error": {"type": "ExecutorError", "message": f"reply could not be sent: {unsendable}"}}
            with contextlib.suppress(ConnectionError, RuntimeError):
                await worker.send(reply)
        except (ConnectionError, RuntimeError):
            return  # the worker is gone; its sample already ended

    async def run_code(self, code: str, timeout_s: float) -> object:
        """execute_code: `solution()`'s value from a fresh worker, in the tagged JSON of values.py (passed
        on to the workflow's worker, which decodes it; never decoded here); raises CodeExecutionError."""
        limit = min(max(timeout_s, 0.1), self.settings.execute_code_timeout_s)
        async with self._code_slots:
            answer, _stdout, error, _wall = await self._run_job(
                {"type": "run", "kind": "code", "source": code}, limit,
                f"code exceeded {limit:g} s wall clock", None,
            )
        if error is not None:
            raise CodeExecutionError(f"{error['type']}: {error['message']}")
        too_big = self._answer_error(answer)
        if too_big is not None:
            raise CodeExecutionError(too_big["message"])
        return answer


class CodeExecutionError(RuntimeError):
    """execute_code failed: the code raised, timed out, crashed, or returned something too large."""
