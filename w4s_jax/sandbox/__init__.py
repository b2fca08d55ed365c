"""Confined subprocess workers for untrusted workflow code; the `agent` proxies calls to the parent."""

from w4s_jax.sandbox.sandbox import (
    CodeExecutionError,
    Handler,
    HandlerReply,
    SampleContext,
    SampleResult,
    Sandbox,
    workflow_hash,
)
from w4s_jax.sandbox.settings import SandboxSettings

__all__ = [
    "CodeExecutionError",
    "Handler",
    "HandlerReply",
    "SampleContext",
    "SampleResult",
    "Sandbox",
    "SandboxSettings",
    "workflow_hash",
]
