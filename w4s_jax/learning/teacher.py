"""The warm start's teacher: a scripted `Policy` whose replies are workflow variants (variants.py).

It stands where the meta-agent stands in a W4S run, so the warm start's training data are real W4S
trajectories: real prompt states, the replies checked and evaluated in the sandbox against the
executor, written by the runner like any other run. It is not a language model: each reply is the
variant drawn from the request's seed (the loop seeds every candidate differently), and the analysis
quotes the name and score of the best archive workflow shown in the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from w4s_jax.learning.variants import draw_variant
from w4s_jax.w4s.policy import Conversation, TokenUsage, per_conversation_seeds

# How prompts.archive_text shows an archive entry; the first one shown is the best.
_ARCHIVE_ENTRY = re.compile(r"^### (\S+) \(validation score ([0-9.]+)\)", re.MULTILINE)


def best_in_prompt(conversation: Conversation) -> tuple[str, str]:
    """(name, score) of the first archive workflow in the conversation's first user message, else ('', '')."""
    first_user = next((m["content"] for m in conversation if m["role"] == "user"), "")
    match = _ARCHIVE_ENTRY.search(first_user)
    return (match.group(1), match.group(2)) if match else ("", "")


class VariantTeacher:
    """A `Policy` (w4s/policy.py) that answers with seeded workflow variants; one process, no model."""

    process_index = 0
    process_count = 1

    def __init__(self) -> None:
        self.usage = TokenUsage()

    async def generate(self, conversations: Sequence[Conversation], *, n: int = 1, temperature: float,
                       max_new_tokens: int, seed: int | Sequence[int]) -> list[list[str]]:
        replies = []
        for conversation, one_seed in zip(conversations, per_conversation_seeds(len(conversations), seed)):
            name, score = best_in_prompt(conversation)
            replies.append([draw_variant(one_seed * 1000 + index).reply(name, score) for index in range(n)])
        self.usage.replies += len(conversations) * n
        return replies

    async def finish(self) -> None:
        """Nothing to do: the teacher serves this process only."""

    async def aclose(self) -> None:
        """Nothing to release."""
