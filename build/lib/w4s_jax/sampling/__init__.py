"""KV-cache sampling: chat tokenizer, sampling parameters, the jitted sampler and stop handling."""
