"""A byte-level chat tokenizer for the `tiny` preset (vocab 256): tests and demos with no files.

Ids 0..2 are special (pad, start of turn, end of turn); every other id is the UTF-8 byte with that
value, so any text round-trips except the three control bytes, which are refused. It follows the
`ChatTokenizer` training interface (docs/interfaces.md): `encode_training_pair` masks the reply and
its end-of-turn token only.
"""

from __future__ import annotations

from collections.abc import Sequence

PAD_ID, START_ID, END_ID = 0, 1, 2


class ByteChatTokenizer:
    """ChatML-like template over bytes: <start>role\\ncontent<end>\\n."""

    pad_id = PAD_ID
    eos_token_ids = (END_ID,)
    vocab_size = 256

    def _text(self, text: str) -> list[int]:
        ids = list(text.encode("utf-8"))
        if any(i <= END_ID for i in ids):
            raise ValueError("ByteChatTokenizer: text holds a control byte 0x00-0x02 reserved for special tokens")
        return ids

    def _turn(self, role: str, content: str) -> list[int]:
        return [START_ID, *self._text(role + "\n"), *self._text(content), END_ID, *self._text("\n")]

    def encode_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        ids: list[int] = []
        for message in messages:
            ids += self._turn(message["role"], message["content"])
        if add_generation_prompt:
            ids += [START_ID, *self._text("assistant\n")]
        return ids

    def encode_training_pair(self, prompt_messages: Sequence[dict[str, str]], reply: str) -> tuple[list[int], list[int]]:
        prompt = self.encode_chat(prompt_messages, add_generation_prompt=True)
        target = [*self._text(reply), END_ID]
        return prompt + target, [0] * len(prompt) + [1] * len(target)

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(i for i in ids if i > END_ID).decode("utf-8", errors="replace")
