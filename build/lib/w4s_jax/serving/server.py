"""OpenAI-compatible HTTP server (aiohttp) over a `Sampler`: /v1/models, /v1/chat/completions.

JSON mode (`response_format: {"type": "json_object"}`): every choice's text must parse with
`json.loads`. A choice that does not is sampled again with the next seed, at most `json_retries`
times (a greedy request is deterministic, so it is not retried); if a choice is still not JSON the
request fails with HTTP 422 and error code `json_invalid`, so a client never mistakes prose for
JSON; or, with `json_invalid="return"`, it is returned as decoded, as OpenAI returns a JSON reply cut
at max_tokens (the client must parse it: an offline demo's weak executor shows its messy JSON so). Streaming (`stream: true`) sends OpenAI's chunk format ending with `data: [DONE]`: each
choice's text goes out as the continuous batcher decodes it (the first token right after the
request's prefill), held back only where an incomplete UTF-8 character or a possible stop string
could still change it; each choice's logprobs come with its finish chunk. A JSON-mode stream is sent
once every choice parses (a stream cannot take back a choice that has to be re-sampled).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
from collections.abc import Callable

from aiohttp import web

from w4s_jax.sampling.params import Completion
from w4s_jax.sampling.sampler import Sampler
from w4s_jax.serving.batching import AsyncBatcher
from w4s_jax.serving.protocol import (
    ChatRequest,
    Defaults,
    RequestError,
    chat_completion_body,
    chunk_body,
    error_body,
    logprobs_content,
    new_completion_id,
    parse_chat_request,
    text_pieces,
    usage,
)

log = logging.getLogger(__name__)

SAMPLER_KEY = web.AppKey("sampler", Sampler)
BATCHER_KEY = web.AppKey("batcher", AsyncBatcher)
JSON_INVALID = ("error", "return")  # JSON mode, a choice still not JSON after the retries: HTTP 422, or as is


def _json_error(error: RequestError) -> web.Response:
    return web.json_response(error.body(), status=error.status)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class ChatHandler:
    """The route handlers; holds the served name, request defaults and JSON-mode retries."""

    def __init__(self, sampler: Sampler, batcher: AsyncBatcher, served_name: str, defaults: Defaults,
                 json_retries: int, json_invalid: str = "error") -> None:
        if json_invalid not in JSON_INVALID:
            raise ValueError(f"json_invalid must be one of {JSON_INVALID}, got {json_invalid!r}")
        self.sampler, self.batcher = sampler, batcher
        self.served_name, self.defaults, self.json_retries = served_name, defaults, json_retries
        self.json_invalid = json_invalid
        self.started = int(time.time())

    async def models(self, _request: web.Request) -> web.Response:
        model = {"id": self.served_name, "object": "model", "created": self.started, "owned_by": "w4s-jax"}
        return web.json_response({"object": "list", "data": [model]})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        try:
            chat = parse_chat_request(await request.read(), self.served_name, self.defaults)
            prompt = self.sampler.tokenizer.encode_chat(chat.messages)
            try:
                self.sampler.check_request([prompt], chat.params)
            except ValueError as error:
                raise RequestError(400, str(error), "messages", "context_length_exceeded") from error
            if chat.stream and not chat.json_mode:
                return await self._stream_as_decoded(request, chat, prompt)
            completions = (await self.batcher.complete([prompt], chat.params))[0]
            if chat.json_mode:
                completions = await self._retry_until_json(prompt, chat, completions)
        except RequestError as error:
            return _json_error(error)
        decode = self.sampler.tokenizer.decode
        logprobs = [logprobs_content(c, decode) for c in completions] if chat.logprobs else None
        completion_id = new_completion_id()
        if not chat.stream:
            body = chat_completion_body(completion_id, self.served_name, completions, len(prompt), logprobs)
            return web.json_response(body)
        # JSON mode: a stream cannot take back a choice that turns out not to parse, so it is sent once valid.
        stream = _EventStream(request, completion_id, self.served_name)
        await stream.open(chat.params.n)
        for i, completion in enumerate(completions):
            for piece in text_pieces(completion, decode):
                await stream.delta(i, piece)
            await stream.finish(i, completion, logprobs[i] if logprobs else None)
        return await stream.close(usage(len(prompt), completions) if chat.include_usage else None)

    async def _retry_until_json(self, prompt: list[int], chat: ChatRequest, completions: list[Completion]) -> list[Completion]:
        completions = list(completions)
        retries = 0 if chat.params.is_greedy else self.json_retries
        for attempt in range(1, retries + 1):
            bad = [i for i, c in enumerate(completions) if not _is_json(c.text)]
            if not bad:
                break
            params = chat.params.replace(n=len(bad), seed=(chat.params.seed + attempt * 7919) % 2**32)
            again = (await self.batcher.complete([prompt], params))[0]
            for i, completion in zip(bad, again):
                completions[i] = completion
        bad = [i for i, c in enumerate(completions) if not _is_json(c.text)]
        if bad and self.json_invalid == "error":
            raise RequestError(
                422, f"response_format json_object: choice(s) {bad} are not valid JSON after {retries} retries",
                "response_format", "json_invalid", error_type="invalid_response_error",
            )
        return completions

    async def _stream_as_decoded(self, request: web.Request, chat: ChatRequest, prompt: list[int]) -> web.StreamResponse:
        """Sends each choice's text as the batcher settles it, then its finish chunk, usage and [DONE]."""
        submission = self.batcher.submit([prompt], chat.params, stream=True)
        stream = _EventStream(request, new_completion_id(), self.served_name)
        completions: list[Completion | None] = [None] * chat.params.n
        try:
            await stream.open(chat.params.n)
            async for event in submission.events():
                if event.text:
                    await stream.delta(event.sample_index, event.text)
                if event.completion is not None:
                    completions[event.sample_index] = event.completion
                    logprobs = logprobs_content(event.completion, self.sampler.tokenizer.decode) if chat.logprobs else None
                    await stream.finish(event.sample_index, event.completion, logprobs)
        except ConnectionResetError:  # the client went away; its rows are freed below
            return stream.response
        except Exception as error:  # headers are sent: report in the stream (the openai client raises it)
            log.exception("streamed request failed")
            return await stream.fail(error)
        finally:
            submission.cancel()  # frees the rows of a client that went away; no-op once finished
        return await stream.close(usage(len(prompt), completions) if chat.include_usage else None)


class _EventStream:
    """One server-sent-events response in OpenAI's chat.completion.chunk format."""

    def __init__(self, request: web.Request, completion_id: str, model: str) -> None:
        self.request, self.completion_id, self.model = request, completion_id, model
        self.response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        self.created = int(time.time())

    async def _send(self, choices: list[dict], usage_counts: dict | None = None) -> None:
        body = chunk_body(self.completion_id, self.model, self.created, choices, usage_counts)
        await self.response.write(f"data: {json.dumps(body)}\n\n".encode())

    async def open(self, n: int) -> None:
        """Headers, then each choice's role chunk."""
        await self.response.prepare(self.request)
        for i in range(n):
            await self._send([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                               "finish_reason": None}])

    async def delta(self, index: int, text: str) -> None:
        await self._send([{"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])

    async def finish(self, index: int, completion: Completion, logprobs: dict | None) -> None:
        await self._send([{"index": index, "delta": {}, "logprobs": logprobs, "finish_reason": completion.finish_reason}])

    async def close(self, usage_counts: dict | None) -> web.StreamResponse:
        if usage_counts is not None:
            await self._send([], usage_counts)
        await self.response.write(b"data: [DONE]\n\n")
        await self.response.write_eof()
        return self.response

    async def fail(self, error: Exception) -> web.StreamResponse:
        body = error_body(f"generation failed: {type(error).__name__}: {error}", "server_error", None, "internal_error")
        await self.response.write(f"data: {json.dumps(body)}\n\n".encode())
        await self.response.write_eof()
        return self.response


@web.middleware
async def _errors_as_json(request: web.Request, handler: Callable) -> web.StreamResponse:
    """Unknown routes, wrong methods and unexpected failures answer in OpenAI's error shape."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return web.json_response(error_body(error.reason, "invalid_request_error", None, str(error.status)),
                                 status=error.status)
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return web.json_response(error_body("internal server error", "server_error", None, "internal_error"), status=500)


def make_app(sampler: Sampler, *, served_name: str, defaults: Defaults, steps_per_call: int,
             json_retries: int = 3, max_body_mb: float = 32.0, json_invalid: str = "error") -> web.Application:
    """The aiohttp application; the batcher starts and stops with the app."""
    if sampler.tokenizer is None:
        raise ValueError("the server needs a sampler with a tokenizer (chat template for messages)")
    app = web.Application(middlewares=[_errors_as_json], client_max_size=int(max_body_mb * 2**20))
    batcher = AsyncBatcher(sampler, steps_per_call=steps_per_call)
    app[SAMPLER_KEY], app[BATCHER_KEY] = sampler, batcher
    handler = ChatHandler(sampler, batcher, served_name, defaults, json_retries, json_invalid)
    app.router.add_get("/v1/models", handler.models)
    app.router.add_post("/v1/chat/completions", handler.chat)

    async def start(_app: web.Application) -> None:
        batcher.start()

    async def stop(_app: web.Application) -> None:
        await batcher.close()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


async def serve_until_signal(app: web.Application, host: str, port: int, on_ready: Callable[[str], None],
                             shutdown_timeout_s: float = 600.0) -> None:
    """Serves until SIGTERM or SIGINT; then stops accepting, finishes in-flight requests, returns."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout_s, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    on_ready(f"http://{host}:{bound_port}")
    await stop.wait()
    log.info("signal received: finishing in-flight requests")
    await runner.cleanup()


class BackgroundServer:
    """Runs an app on its own event loop in a thread (tests, notebooks): `with BackgroundServer(app) as url:`."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app, self.host, self.port = app, host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="w4s-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    def __enter__(self) -> str:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        return self.url

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.url = f"http://{self.host}:{self._runner.addresses[0][1]}"

    def __exit__(self, *exc_info) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
