"""ChatTokenizer: SmolLM2's template from the GGUF metadata, Qwen2.5 ChatML, RLAO loss masks."""

import pytest
from conftest import requires_torch

from w4s_jax.sampling.chat import CHATML_TEMPLATE, ChatTokenizer

PROMPT = [
    {"role": "system", "content": "You write Python workflows."},
    {"role": "user", "content": "Solve: 2 + 3 * 4"},
]


@pytest.fixture(scope="module")
def smollm_tokenizer(smollm2_gguf_path) -> ChatTokenizer:
    return ChatTokenizer.from_path(smollm2_gguf_path)


@pytest.fixture(scope="module")
def qwen_chatml_dir(smollm_tokenizer, tmp_path_factory):
    """A local HF tokenizer directory: SmolLM2's vocabulary, no template, Qwen-style generation config."""
    out = tmp_path_factory.mktemp("chatml_tok")
    hf = smollm_tokenizer.tokenizer
    hf.save_pretrained(out)
    config = out / "tokenizer_config.json"
    import json

    data = json.loads(config.read_text())
    data.pop("chat_template", None)
    config.write_text(json.dumps(data))
    for name in ("chat_template.jinja", "chat_template.json"):
        (out / name).unlink(missing_ok=True)
    (out / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 0]}))
    return out


def test_gguf_template_and_special_ids(smollm_tokenizer):
    text = smollm_tokenizer.render([{"role": "user", "content": "hi"}])
    assert text == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    ids = smollm_tokenizer.encode_chat([{"role": "user", "content": "hi"}])
    assert ids[0] == 1 and ids[-4:] == smollm_tokenizer.encode("<|im_start|>assistant\n")
    assert smollm_tokenizer.decode(ids) == text
    assert set(smollm_tokenizer.eos_token_ids) == {2, 0}  # <|im_end|>, <|endoftext|>
    assert smollm_tokenizer.pad_id == 2


@pytest.mark.parametrize("reply", ["The answer is 14.", "\n\nleading newlines", "  ```python\nx = 1\n```"])
def test_training_pair_masks_reply_and_end_of_turn(smollm_tokenizer, reply):
    ids, mask = smollm_tokenizer.encode_training_pair(PROMPT, reply)
    prompt_ids = smollm_tokenizer.encode_chat(PROMPT)
    assert len(ids) == len(mask)
    assert ids[: len(prompt_ids)] == prompt_ids
    assert mask[: len(prompt_ids)] == [0] * len(prompt_ids)
    masked = [t for t, m in zip(ids, mask) if m]
    assert masked[-1] == 2 and smollm_tokenizer.decode(masked) == reply + "<|im_end|>"
    # mask is one contiguous run starting right after the prompt
    ones = [i for i, m in enumerate(mask) if m]
    assert ones == list(range(len(prompt_ids), len(prompt_ids) + len(ones)))
    assert smollm_tokenizer.decode(ids[ones[-1] + 1:]) == "\n"  # ChatML's trailing newline: no loss
    if reply[0].isalnum():  # whitespace right after "assistant\n" would merge with it in a retokenization
        full = smollm_tokenizer.render([*PROMPT, {"role": "assistant", "content": reply}], add_generation_prompt=False)
        assert ids == smollm_tokenizer.encode(full)


def test_qwen_chatml_directory(qwen_chatml_dir):
    tok = ChatTokenizer.from_path(qwen_chatml_dir)
    assert tok.tokenizer.chat_template == CHATML_TEMPLATE
    text = tok.render([{"role": "user", "content": "hi"}])
    assert text == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert set(tok.eos_token_ids) == {2, 0}
    ids, mask = tok.encode_training_pair(PROMPT, "ok")
    assert tok.decode([t for t, m in zip(ids, mask) if m]) == "ok<|im_end|>"


def test_bad_input_is_rejected(smollm_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="non-empty list"):
        smollm_tokenizer.encode_chat([])
    with pytest.raises(ValueError, match=r"messages\[0\]\.role"):
        smollm_tokenizer.encode_chat([{"role": "wizard", "content": "x"}])
    with pytest.raises(ValueError, match=r"messages\[1\]\.content"):
        smollm_tokenizer.encode_chat([{"role": "user", "content": "x"}, {"role": "user", "content": 3}])
    with pytest.raises(TypeError, match="reply"):
        smollm_tokenizer.encode_training_pair(PROMPT, None)
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json"):
        ChatTokenizer.from_path(tmp_path)
    with pytest.raises(FileNotFoundError, match="expected a Hugging Face"):
        ChatTokenizer.from_path(tmp_path / "missing.gguf")


@requires_torch
def test_gguf_tokenizer_matches_transformers_own_gguf_loader(smollm_tokenizer, smollm2_gguf_path):
    """Our torch-free GGUF tokenizer equals transformers' (which needs torch to read the metadata)."""
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(smollm2_gguf_path.parent), gguf_file=smollm2_gguf_path.name)
    ours = smollm_tokenizer.tokenizer
    texts = ["Hello, world!", "  leading spaces\tand tabs\n", "def solver(agent, task):\n    return {'answer': 42}",
             "Ünïcödé — 数学 🙂", "<|im_start|>user\nhi<|im_end|>"]
    for text in texts:
        assert ours.encode(text) == reference.encode(text), text
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}]
    assert ours.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True) == \
        reference.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert (ours.eos_token, ours.bos_token, len(ours)) == (reference.eos_token, reference.bos_token, len(reference))
