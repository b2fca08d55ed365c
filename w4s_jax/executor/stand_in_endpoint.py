"""A stand-in executor: an OpenAI-compatible endpoint with scripted replies, latency and faults.

This is not a model server. It serves real HTTP on loopback and stands in for a strong executor in
the offline demo, the tests and the benchmarks: `/v1/models` and `/v1/chat/completions` (n,
temperature, max_tokens, response_format json_object, SSE streaming, usage from a character
tokenizer of 4 characters per token), with configurable latency and injected faults (429 with Retry-After, 500, dropped connections, a
malformed JSON body, slow replies and slow streams) chosen by schedule or by a marker in the prompt.
It keeps a request log (requests per distinct request hash) so tests can prove that nothing was
sent twice, and `/stats` serves that log over HTTP for the subprocess mode.

In-process:   `async with StandInEndpoint(replier=...) as ep: ep.url`
In a thread:  `with StandInEndpoint(...).in_thread() as ep: ep.url` (for synchronous callers)
Subprocess:   `python -m w4s_jax.executor.stand_in_endpoint --port 0 --answers table.json --accuracy 0.6
              --latency-ms 0` prints its URL on the first line of stdout and serves until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import pathlib
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from aiohttp import web

from w4s_jax.child_processes import dying_with_this_process
from w4s_jax.executor.repliers import OracleStandIn, Replier, ReplyRequest, TableReplier, load_answer_table

FAULT_KINDS = ("429", "500", "drop", "malformed", "slow")


def count_tokens(text: str) -> int:
    """The stand-in's tokenizer: one token per 4 characters (at least 1 for non-empty text)."""
    return math.ceil(len(text) / 4)


@dataclasses.dataclass
class Fault:
    """An injected fault. It applies to requests whose prompt contains `marker` ('' = all), and of
    those to the `first` k (0 = no limit) or to every `every`-th one (0 = each)."""

    kind: str
    first: int = 0
    every: int = 0
    marker: str = ""
    retry_after_s: float | None = None
    delay_s: float = 0.0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {self.kind!r}")

    def fires(self, prompt: str) -> bool:
        if self.marker and self.marker not in prompt:
            return False
        self.seen += 1
        if self.first and self.seen > self.first:
            return False
        return not (self.every and self.seen % self.every)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """`kind[:first=K][:every=K][:marker=TEXT][:retry_after=S][:delay=S]`, e.g. `429:first=2:retry_after=1`."""
        kind, *options = spec.split(":")
        values: dict[str, object] = {}
        names = {"first": ("first", int), "every": ("every", int), "marker": ("marker", str),
                 "retry_after": ("retry_after_s", float), "delay": ("delay_s", float)}
        for option in options:
            name, _, value = option.partition("=")
            if name not in names:
                raise ValueError(f"fault {spec!r}: unknown option {name!r}; expected one of {sorted(names)}")
            field, convert = names[name]
            values[field] = convert(value)
        return cls(kind=kind, **values)


def request_hash(body: dict) -> str:
    """The identity of a request: its canonical JSON body."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class StandInEndpoint:
    """The stand-in server (see module doc). `replier(ReplyRequest) -> str` produces each choice."""

    def __init__(self, replier: Replier | None = None, *, model: str = "stand-in-executor", latency_ms: float = 0.0,
                 faults: list[Fault] | None = None, supports_n: bool = True, host: str = "127.0.0.1",
                 port: int = 0, stream_chunk_delay_ms: float = 0.0, name_in_replies: bool = False) -> None:
        self.replier = replier or TableReplier({})
        self.model = model
        self.name_in_replies = name_in_replies  # every reply names `model`, whatever the request asked for
        self.latency_s = latency_ms / 1000.0
        self.faults = list(faults or [])
        self.supports_n = supports_n
        self.host = host
        self.port = port
        self.stream_chunk_delay_s = stream_chunk_delay_ms / 1000.0
        self.url = ""
        self.request_log: collections.Counter[str] = collections.Counter()
        self.answered_log: collections.Counter[str] = collections.Counter()
        self.total_requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    # ----- lifecycle -----

    async def start(self) -> str:
        """Starts serving; returns the base URL (`http://127.0.0.1:<port>/v1`)."""
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=2048)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{self.host}:{port}/v1"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> StandInEndpoint:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[StandInEndpoint]:
        """Serves from a background thread with its own event loop (for synchronous callers)."""
        started = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as error:  # reported to the caller below
                failure.append(error)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        thread = threading.Thread(target=serve, name="stand-in-endpoint", daemon=True)
        thread.start()
        if not started.wait(30) or failure:
            raise RuntimeError(f"stand-in endpoint thread did not start: {failure[0] if failure else 'timeout'}")
        try:
            yield self
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)

    def stats(self) -> dict[str, object]:
        """Counts for tests: requests received, answered, per-hash duplicates, peak in-flight."""
        return {
            "total_requests": self.total_requests,
            "answered": sum(self.answered_log.values()),
            "distinct_requests": len(self.request_log),
            "max_requests_per_hash": max(self.request_log.values(), default=0),
            "max_answered_per_hash": max(self.answered_log.values(), default=0),
            "max_in_flight": self.max_in_flight,
        }

    # ----- handlers -----

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [
            {"id": self.model, "object": "model", "created": 0, "owned_by": "w4s-jax-stand-in"}]})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._chat_inner(request)
        finally:
            self.in_flight -= 1

    async def _chat_inner(self, request: web.Request) -> web.StreamResponse:
        self.total_requests += 1
        try:
            body = json.loads(await request.read())
            messages = body["messages"]
            prompt = "\n".join(str(m["content"]) for m in messages)
        except (ValueError, KeyError, TypeError) as error:
            return _error(400, f"bad request body: {error}")
        digest = request_hash(body)
        self.request_log[digest] += 1
        occurrence = self.request_log[digest] - 1
        firing = [f for f in self.faults if f.fires(prompt)]  # every fault counts every request it matches
        fault = firing[0] if firing else None
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        if fault is not None:
            if fault.kind == "429":
                headers = {} if fault.retry_after_s is None else {"Retry-After": f"{fault.retry_after_s:g}"}
                return _error(429, "rate limited (injected fault)", headers)
            if fault.kind == "500":
                return _error(500, "server error (injected fault)")
            if fault.kind == "drop":
                request.transport.close()
                return web.Response(status=500)
            if fault.kind == "malformed":
                return web.Response(text='{"id": "chatcmpl-broken", "choices": [', content_type="application/json")
            if fault.kind == "slow" and not body.get("stream"):
                await asyncio.sleep(fault.delay_s)
        n = int(body.get("n") or 1) if self.supports_n else 1
        temperature = 1.0 if body.get("temperature") is None else float(body["temperature"])
        fmt = (body.get("response_format") or {}).get("type", "text")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        first_sample = body.get("seed")
        texts, finish = [], []
        for index in range(n):
            seed = int(hashlib.sha256(f"{digest}:{occurrence}:{index}".encode()).hexdigest()[:15], 16)
            sample = first_sample + index if isinstance(first_sample, int) else None
            text = self.replier(ReplyRequest(messages, temperature, fmt, index, seed, sample))
            if max_tokens and count_tokens(text) > int(max_tokens):
                texts.append(text[: int(max_tokens) * 4])
                finish.append("length")
            else:
                texts.append(text)
                finish.append("stop")
        usage = {"prompt_tokens": sum(count_tokens(str(m["content"])) + 4 for m in messages) + 3,
                 "completion_tokens": sum(count_tokens(t) for t in texts)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        completion_id = f"chatcmpl-{digest[:16]}-{occurrence}"
        if body.get("stream"):
            delay = fault.delay_s if fault is not None and fault.kind == "slow" else self.stream_chunk_delay_s
            response = await self._stream(request, completion_id, texts, finish, usage, body, delay)
        else:
            response = web.json_response({
                "id": completion_id, "object": "chat.completion", "created": int(time.time()),
                "model": self.model if self.name_in_replies else body.get("model", self.model),
                "choices": [{"index": i, "message": {"role": "assistant", "content": t},
                             "finish_reason": f, "logprobs": None} for i, (t, f) in enumerate(zip(texts, finish))],
                "usage": usage,
            })
        self.answered_log[digest] += 1
        return response

    async def _stream(self, request: web.Request, completion_id: str, texts: list[str], finish: list[str],
                      usage: dict, body: dict, delay_s: float) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        model = self.model if self.name_in_replies else body.get("model", self.model)

        async def send(choices: list[dict], extra: dict | None = None) -> None:
            chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                     "model": model, "choices": choices, **(extra or {})}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        for index, text in enumerate(texts):
            await send([{"index": index, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for piece in _pieces(text):
                if delay_s:
                    await asyncio.sleep(delay_s)
                await send([{"index": index, "delta": {"content": piece}, "finish_reason": None}])
            await send([{"index": index, "delta": {}, "finish_reason": finish[index]}])
        if (body.get("stream_options") or {}).get("include_usage"):
            await send([], {"usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _pieces(text: str) -> list[str]:
    """Splits a reply into stream chunks of whole words (whitespace kept)."""
    words = text.split(" ")
    return [word + (" " if i < len(words) - 1 else "") for i, word in enumerate(words)]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "stand_in_endpoint_error", "code": status}},
                             status=status, headers=headers)


def spawn(args: list[str], *, timeout_s: float = 120.0,
          module: str = "w4s_jax.executor.stand_in_endpoint") -> tuple[subprocess.Popen, str]:
    """Starts the stand-in endpoint (or another `module` serving it, such as the simulated executor)
    in a subprocess that dies with this one; returns (process, base URL). Kill it when done."""
    package_root = str(pathlib.Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    process = subprocess.Popen(dying_with_this_process([sys.executable, "-m", module, "--port", "0", *args]),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline().strip() if ready else ""
    if not line.startswith("http://"):
        process.kill()
        _, err = process.communicate(timeout=10)
        raise RuntimeError(f"{module} subprocess did not start: {line!r}\n{err[-2000:]}")
    return process, line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A stand-in executor: an OpenAI-compatible endpoint with scripted replies.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (the URL is printed)")
    parser.add_argument("--answers", default="", help="JSON object question -> answer, or .jsonl rows")
    parser.add_argument("--accuracy", type=float, default=-1.0,
                        help="answer like the oracle stand-in with this accuracy; < 0 = always the table answer")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--model", default="stand-in-executor")
    parser.add_argument("--no-n", action="store_true", help="ignore n (reply with one choice), like some servers")
    parser.add_argument("--fault", action="append", default=[], help="e.g. 429:first=2:retry_after=1 (repeatable)")
    args = parser.parse_args(argv)
    table = load_answer_table(args.answers) if args.answers else {}
    replier = OracleStandIn(table, accuracy=args.accuracy) if args.accuracy >= 0 else TableReplier(table)
    endpoint = StandInEndpoint(replier, model=args.model, latency_ms=args.latency_ms, host=args.host, port=args.port,
                            faults=[Fault.parse(spec) for spec in args.fault], supports_n=not args.no_n)

    async def serve() -> None:
        url = await endpoint.start()
        print(url, flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
