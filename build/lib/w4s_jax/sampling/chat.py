"""`ChatTokenizer`: one tokenizer + chat template for sampling, serving and RLAO training pairs.

It wraps a transformers fast tokenizer built from a Hugging Face directory or from the metadata of
a `.gguf` file (vocabulary, merges, special tokens and the chat template all live there), so the
model's own template is applied to `messages` everywhere: the sampler, the server and the loss mask
of RLAO see the same token ids for the same conversation.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

from w4s_jax.sampling.gguf_tokenizer import load_gguf_tokenizer

# Special tokens that end an assistant turn in the families this project runs (ChatML for
# Qwen2.5 and SmolLM2, Llama-3, Phi-3); added to the end-of-sequence ids when the vocabulary has them.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|end_of_text|>", "<|end|>")

# Qwen2.5's ChatML template (without the tool-calling branches): the default for a tokenizer that
# ships no template, so that a plain vocabulary still formats conversations like the paper's model.
CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

ROLES = ("system", "user", "assistant", "tool")


class ChatTokenizer:
    """Text <-> token ids with the model's chat template; see `from_path`."""

    def __init__(self, tokenizer: Any, extra_eos_ids: Sequence[int] = ()) -> None:
        self.tokenizer = tokenizer
        if not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = CHATML_TEMPLATE
        self.eos_token_ids: tuple[int, ...] = self._collect_eos_ids(extra_eos_ids)
        if not self.eos_token_ids:
            raise ValueError("tokenizer has no end-of-sequence or end-of-turn token; generation could never stop")
        pad = tokenizer.pad_token_id
        self.pad_id: int = int(pad) if pad is not None else self.eos_token_ids[0]

    @classmethod
    def from_path(cls, path: str | pathlib.Path) -> ChatTokenizer:
        """Loads from a Hugging Face directory (tokenizer.json & co.) or a `.gguf` file's metadata."""
        from transformers import AutoTokenizer

        path = pathlib.Path(path)
        if path.is_file() and path.suffix == ".gguf":
            return cls(load_gguf_tokenizer(path), _gguf_eos_ids(path))
        if path.is_dir():
            if not any((path / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
                raise FileNotFoundError(f"{path}: no tokenizer.json, tokenizer_config.json or vocab.json in this directory")
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            return cls(tokenizer, _generation_config_eos_ids(path))
        raise FileNotFoundError(f"{path}: expected a Hugging Face tokenizer directory or a .gguf file")

    def _collect_eos_ids(self, extra: Sequence[int]) -> tuple[int, ...]:
        ids: list[int] = []
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        ids.extend(int(i) for i in extra)
        vocab = self.tokenizer.get_vocab()
        ids.extend(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
        return tuple(dict.fromkeys(ids))

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The conversation as the chat template writes it (special tokens as text)."""
        _check_messages(messages)
        return self.tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`; special-token strings in it become special tokens, nothing is added."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_chat(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        """Token ids of the templated conversation, ending with the assistant header by default."""
        return self.encode(self.render(messages, add_generation_prompt))

    def encode_training_pair(
        self, prompt_messages: Sequence[dict[str, str]], reply: str
    ) -> tuple[list[int], list[int]]:
        """(ids, loss_mask) of prompt + assistant reply; mask is 1 on the reply and its end-of-turn token.

        The prompt is tokenized exactly as the sampler saw it (`encode_chat(prompt_messages)`) and the
        rest of the templated text separately, so the ids are prompt ids + reply ids by construction:
        retokenizing the whole text could merge tokens across the boundary (e.g. a reply that starts
        with a newline) and shift the mask. Tokens after the end-of-turn token (ChatML's trailing
        newline) carry no loss: the sampler stops at the end-of-turn token and never emits them.
        """
        if not isinstance(reply, str):
            raise TypeError(f"reply must be a str, got {type(reply).__name__}")
        prompt_text = self.render(prompt_messages, add_generation_prompt=True)
        full_text = self.render([*prompt_messages, {"role": "assistant", "content": reply}], add_generation_prompt=False)
        if not full_text.startswith(prompt_text):
            raise ValueError(
                "chat template does not render the prompt as a prefix of prompt + reply; "
                "a loss mask on the reply alone is impossible with this template"
            )
        prompt_ids = self.encode(prompt_text)
        reply_ids = self.encode(full_text[len(prompt_text):])
        eos = set(self.eos_token_ids)
        end = next((i for i, t in enumerate(reply_ids) if t in eos), None)
        if end is None:
            raise ValueError("the chat template closes the assistant turn with no end-of-turn token")
        mask = [0] * len(prompt_ids) + [1] * (end + 1) + [0] * (len(reply_ids) - end - 1)
        return prompt_ids + reply_ids, mask

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)


def _check_messages(messages: Sequence[dict[str, str]]) -> None:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
        raise ValueError("messages must be a non-empty list of {'role', 'content'} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ValueError(f"messages[{i}] must be a dict with 'role' and 'content', got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValueError(f"messages[{i}].role = {role!r}; expected one of {ROLES}")
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}].content must be a string, got {type(content).__name__}")


def _gguf_eos_ids(path: pathlib.Path) -> list[int]:
    """EOS/EOT ids named in the GGUF metadata (llama.cpp's keys), beside the tokenizer's own."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    ids = []
    for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"):
        field = reader.fields.get(key)
        if field is not None and field.data:
            ids.append(int(field.parts[field.data[0]][0]))
    return ids


def _generation_config_eos_ids(path: pathlib.Path) -> list[int]:
    """`eos_token_id` of generation_config.json (Qwen2.5 lists <|im_end|> and <|endoftext|> there)."""
    config = path / "generation_config.json"
    if not config.is_file():
        return []
    eos = json.loads(config.read_text(encoding="utf-8")).get("eos_token_id")
    if eos is None:
        return []
    return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
