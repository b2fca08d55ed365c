"""One host of the two-process SamplerPolicy test (tests/test_w4s_multihost.py); not a test itself.

Joins jax.distributed through `init_distributed` (W4S_* variables set by the parent), builds the
same tiny random model with the SmolLM2 tokenizer on a mesh over both processes' devices, runs this
host's generation calls (a different number on each host, at different times) and then `finish()`,
and prints one JSON line: the replies and how many collective rounds this host joined.
"""

from __future__ import annotations

import asyncio
import json
import sys

from w4s_jax.parallel.distributed import init_distributed


def conversation(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You write workflows."}, {"role": "user", "content": text}]


# Per host: (delay before the call, conversations with their seeds). Host 1 starts late, as if
# evaluating, and calls once; host 0 calls twice, so host 1 serves host 0's second round from finish().
CALLS = {
    0: [(0.0, [("improve the gsm8k solver", 11), ("improve the drop solver", 12), ("add self-consistency", 13)]),
        (0.0, [("now add a verifier", 14), ("write a code solver", 15)])],
    1: [(1.0, [("improve the math solver", 21)])],
}


async def run_host(policy, process_index: int) -> list[list[str]]:
    replies = []
    for delay, requests in CALLS[process_index]:
        await asyncio.sleep(delay)
        out = await policy.generate([conversation(text) for text, _ in requests], n=1, temperature=0.7,
                                    max_new_tokens=8, seed=[seed for _, seed in requests])
        replies += [row[0] for row in out]
    await policy.finish()
    return replies


def build_policy(gguf_path: str, devices=None):
    """The tiny random meta-agent (vocabulary widened to the tokenizer's) behind a SamplerPolicy."""
    from w4s_jax.models import load_model
    from w4s_jax.models.presets import get_preset
    from w4s_jax.parallel.mesh import make_mesh
    from w4s_jax.sampling.chat import ChatTokenizer
    from w4s_jax.sampling.sampler import Sampler
    from w4s_jax.w4s.policy import SamplerPolicy

    tokenizer = ChatTokenizer.from_path(gguf_path)
    mesh = make_mesh(-1, 1, 1, devices=devices)
    config = get_preset("tiny").replace(vocab_size=tokenizer.vocab_size, max_positions=512)
    _, model = load_model(config, "", mesh=mesh, seed=7)
    return SamplerPolicy(Sampler(model, tokenizer, mesh, max_prompt_len=256, max_batch=8))


def main() -> None:
    plan = init_distributed()
    import jax

    assert plan.mode == "explicit" and jax.process_count() == 2, (plan, jax.process_count())
    policy = build_policy(sys.argv[1])
    replies = asyncio.run(run_host(policy, jax.process_index()))
    print(json.dumps({"process": jax.process_index(), "devices": jax.device_count(), "replies": replies,
                      "rounds": policy.rounds, "usage": policy.usage.to_json()}), flush=True)


if __name__ == "__main__":
    main()
