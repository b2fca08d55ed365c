"""OpenAI-compatible HTTP serving over the JAX sampler: protocol, request batching, the aiohttp app."""
