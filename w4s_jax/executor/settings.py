"""`ExecutorSettings`: the `executor` config section, typed; the one place its defaults are written.

Standard library only. `ExecutorClient.from_settings` builds the client from it (and the API
meta-agent's client from `MetaAgentSettings`), `BackoffPolicy` and `ExecutorClient` take their
defaults from it.
"""

from __future__ import annotations

import dataclasses
import urllib.parse

from w4s_jax.config_errors import ConfigError
from w4s_jax.settings_fields import above, at_least, check_fields, one_of, setting

TRANSPORTS = ("openai", "aiohttp")
DEFAULT_PRICES = {
    "gpt-4o-mini": {"input": 0.15, "output": 0.60},
    "gpt-4o": {"input": 2.50, "output": 10.00},
    "gpt-3.5-turbo": {"input": 0.50, "output": 1.50},
}


@dataclasses.dataclass(frozen=True)
class ExecutorSettings:
    base_url: str = setting("https://api.openai.com/v1", "OpenAI-compatible endpoint(s) of the strong executor, "
                                                         "comma-separated to spread load")
    model: str = setting("gpt-4o-mini", "executor model name sent to the endpoint")
    api_key_env: str = setting("OPENAI_API_KEY", "environment variable holding the executor's API key")
    max_concurrency: int = setting(64, "in-flight calls per endpoint", above(0))
    global_max_concurrency: int = setting(0, "in-flight calls over all endpoints; 0 = max_concurrency x number of "
                                             "endpoints", at_least(0))
    timeout_s: float = setting(60.0, "per-call timeout in seconds", above(0))
    max_retries: int = setting(6, "retries on 429, 5xx, timeouts and dropped connections", at_least(0))
    backoff_base_s: float = setting(0.5, "first retry delay in seconds (doubles each retry, with jitter); "
                                         "Retry-After wins", at_least(0))
    backoff_max_s: float = setting(30.0, "longest retry delay in seconds when the endpoint sends no Retry-After",
                                   at_least(0))
    native_n: bool = setting(True, "request n responses in one call; False = n single calls (auto-off if fewer "
                                   "come back)")
    transport: str = setting("openai", "HTTP layer: openai (the official SDK) or aiohttp (direct, about 6x less "
                                       "CPU per call)", one_of(TRANSPORTS))
    max_tokens: int = setting(2048, "max completion tokens per executor call", above(0))
    cache_path: str = setting("", "SQLite cache of executor calls; '' = <output_dir>/executor_cache.sqlite")
    budget_usd: float = setting(5.0, "hard budget in dollars for one command's API calls (executor, and an API "
                                     "meta-agent; all rounds and the final collection of rlao); calls that would "
                                     "exceed it are refused; spending is journaled in output_dir/spent.jsonl, so a "
                                     "rerun with the same output_dir continues from it", at_least(0))
    prices: dict = dataclasses.field(default_factory=lambda: {model: dict(price) for model, price in DEFAULT_PRICES.items()},
                                     metadata={"doc": "map: model -> {input, output} dollars per million tokens"})

    def __post_init__(self) -> None:
        urls = self.urls
        if not urls:
            raise ConfigError("executor.base_url: no endpoint given; fix: set an OpenAI-compatible URL, e.g. "
                              "http://127.0.0.1:8000/v1")
        for url in urls:
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"executor.base_url: {url!r} is not an http(s) URL; fix: write the endpoint as "
                                  "http(s)://HOST[:PORT]/v1")
        check_fields(self, "executor")

    @property
    def urls(self) -> list[str]:
        return [url.strip() for url in self.base_url.split(",") if url.strip()]
