"""The search backend behind `agent.web_search(query)`: an HTTP endpoint the parent queries for the
workflow (the sandbox itself never reaches the network).

The backend is any service answering `GET <search_url>?q=<query>` with text (e.g. a small proxy in
front of a search API, which keeps its key out of w4s-jax). Its reply reaches the workflow as text,
cut at MAX_RESULT_BYTES; a failed request is a SearchError the workflow can catch. With no
`search_url` (always so offline) `executor_handler` answers every search with WebSearchUnavailable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp

MAX_RESULT_BYTES = 64 * 1024
SearchBackend = Callable[[str], Awaitable[str]]


class SearchError(RuntimeError):
    """The search backend failed or answered with an HTTP error."""


def http_search(url: str, timeout_s: float = 30.0) -> SearchBackend:
    """`search(query) -> text` over GET `url?q=query` (no proxy from the environment is used)."""

    async def search(query: str) -> str:
        body = bytearray()
        try:
            async with (aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
                        session.get(url, params={"q": query}) as response):
                if response.status != 200:
                    raise SearchError(f"search backend answered HTTP {response.status}")
                async for chunk in response.content.iter_chunked(8192):
                    body += chunk
                    if len(body) >= MAX_RESULT_BYTES:
                        break
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SearchError(f"search backend unreachable: {type(error).__name__}: {error}") from None
        return bytes(body[:MAX_RESULT_BYTES]).decode("utf-8", errors="replace")

    return search
