"""How one chat-completions request travels: the `openai` SDK (default) or lean direct HTTP.

Both transports speak the OpenAI wire protocol to any compatible endpoint and do no retries of their
own; each returns the raw reply body or raises, and `classify` turns any failure into a `Failure`
the client's retry loop understands. Why two: the SDK costs about 1.3 ms of CPU per call (request
building, header and URL models), the direct aiohttp transport about 0.2 ms; at hundreds of calls
per second against a fast local server (vLLM, `w4s-jax serve`) the SDK alone can saturate a core.
Request fields that are not SDK parameters (`top_k`, which vLLM, SGLang and `w4s-jax serve` read) go
through the SDK as its `extra_body`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json

import aiohttp
import httpx2
import openai

from w4s_jax.executor.retry import RETRYABLE_STATUS, parse_retry_after
from w4s_jax.executor.settings import TRANSPORTS

NON_SDK_FIELDS = ("top_k",)  # request fields the SDK does not know; sent as its extra_body
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"  # the error code of a prompt over the model's context


@dataclasses.dataclass
class Failure:
    """The outcome of one HTTP attempt that did not return a usable reply."""

    status: str
    retryable: bool
    retry_after_s: float | None = None
    maybe_billed: bool = False
    too_long: bool = False  # refused as longer than the model's context (HTTP 400 context_length_exceeded)


class HTTPStatusError(Exception):
    """A non-200 reply of the direct transport."""

    def __init__(self, status: int, retry_after: str | None, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status
        self.retry_after = retry_after
        self.body = body


class OpenAITransport:
    """The official SDK (AsyncOpenAI, aiohttp-backed, retries off), via its low-level `post`: that
    skips the SDK's per-call parameter transform and model construction; the body is parsed by us."""

    def __init__(self, url: str, api_key: str, timeout_s: float, max_connections: int) -> None:
        limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.client = openai.AsyncOpenAI(
            base_url=url, api_key=api_key, max_retries=0, timeout=timeout_s,
            http_client=openai.DefaultAioHttpClient(limits=limits, timeout=timeout_s),
        )

    async def post_chat(self, body: dict) -> bytes:
        extra = {name: body[name] for name in NON_SDK_FIELDS if name in body}
        if extra:  # sent as `chat.completions.create(..., extra_body=extra)` sends it
            body = {name: value for name, value in body.items() if name not in extra}
        response = await self.client.post("/chat/completions", body=body, cast_to=httpx2.Response,
                                          options={"extra_json": extra} if extra else {})
        return response.content

    async def close(self) -> None:
        await self.client.close()


class AiohttpTransport:
    """Direct OpenAI-compatible HTTP over one aiohttp session (keep-alive pool per endpoint)."""

    def __init__(self, url: str, api_key: str, timeout_s: float, max_connections: int) -> None:
        self.url = url.rstrip("/") + "/chat/completions"
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )

    async def post_chat(self, body: dict) -> bytes:
        async with self.session.post(self.url, data=json.dumps(body).encode()) as response:
            data = await response.read()
            if response.status != 200:
                raise HTTPStatusError(response.status, response.headers.get("Retry-After"),
                                      data.decode("utf-8", "replace"))
            return data

    async def close(self) -> None:
        await self.session.close()


def make_transport(kind: str, url: str, api_key: str, timeout_s: float,
                   max_connections: int) -> OpenAITransport | AiohttpTransport:
    if kind == "openai":
        return OpenAITransport(url, api_key, timeout_s, max_connections)
    if kind == "aiohttp":
        return AiohttpTransport(url, api_key, timeout_s, max_connections)
    raise ValueError(f"executor.transport must be one of {TRANSPORTS}, got {kind!r}")


def _causes(error: BaseException) -> list[BaseException]:
    """The exception and its chain of causes, outermost first."""
    chain = [error]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 10:
        chain.append(cause)
    return chain


def classify(error: Exception) -> Failure:
    """Which failures are retried, and which may have been billed (sent, but no reply seen).
    An error that is not the endpoint's is re-raised."""
    if isinstance(error, openai.APIStatusError | HTTPStatusError):
        if isinstance(error, openai.APIStatusError):
            # str(error) shows the error body's message only; the code is beside it in the body
            status, retry_after, text = error.status_code, error.response.headers.get("retry-after"), str(error.body)
        else:
            status, retry_after, text = error.status, error.retry_after, error.body
        return Failure(status=f"HTTP {status}: {str(error)[:200]}", retryable=status in RETRYABLE_STATUS,
                       retry_after_s=parse_retry_after(retry_after),
                       too_long=status == 400 and CONTEXT_LENGTH_EXCEEDED in text)
    if isinstance(error, asyncio.TimeoutError):
        return Failure(status="timeout", retryable=True, maybe_billed=True)
    if isinstance(error, openai.APIConnectionError | aiohttp.ClientError):
        # The SDK's aiohttp backend reports most connection failures as timeouts: look at the causes.
        causes = _causes(error)
        if any(isinstance(c, ConnectionRefusedError | aiohttp.ClientConnectorError) for c in causes):
            return Failure(status=f"connection refused: {causes[-1]}", retryable=True)
        if any(isinstance(c, aiohttp.ServerDisconnectedError | ConnectionResetError | aiohttp.ClientOSError
                          | aiohttp.ClientPayloadError) for c in causes):
            return Failure(status=f"connection dropped: {causes[-1]}", retryable=True, maybe_billed=True)
        if isinstance(error, openai.APITimeoutError):
            return Failure(status="timeout", retryable=True, maybe_billed=True)
        return Failure(status=f"connection error: {causes[-1]}", retryable=True, maybe_billed=True)
    raise error


def parse_completion(body: bytes, n: int) -> tuple[list[str], dict | None, Failure | None]:
    """(texts of up to n choices in index order, usage or None, failure or None) of a reply body."""
    try:
        data = json.loads(body)
        choices = sorted(data["choices"], key=lambda choice: choice.get("index", 0))[:n]
        texts = [choice["message"].get("content") or "" for choice in choices]
        usage = data.get("usage")
        if usage is not None and not {"prompt_tokens", "completion_tokens"} <= set(usage):
            usage = None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        shown = body[:120].decode("utf-8", "replace")
        return [], None, Failure(status=f"malformed reply ({type(error).__name__}): {shown!r}", retryable=True)
    if not texts:
        return [], None, Failure(status="malformed reply: no choices", retryable=True)
    return texts, usage, None
