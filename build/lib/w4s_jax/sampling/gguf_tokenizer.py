"""A transformers tokenizer from a GGUF file's metadata, without torch.

transformers' own GGUF path (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`) imports torch
only to read the file's metadata. We read the same keys with the `gguf` package and hand them to
transformers' converter, so the package's runtime path never needs torch.
`tests/test_sampling_chat.py` checks the result against transformers' own GGUF loading.
"""

from __future__ import annotations

import importlib
import pathlib
from typing import Any


def _converter() -> Any:
    # The module that maps llama.cpp's tokenizer keys and builds the tokenizer; it imports no torch.
    return importlib.import_module("transformers.integrations.gguf.gguf_tokenizer_mapping")


def read_tokenizer_metadata(path: str | pathlib.Path) -> dict[str, Any]:
    """`general.architecture` and every `tokenizer.*` key of the file, as Python values."""
    from gguf import GGUFReader

    try:
        reader = GGUFReader(str(path))
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: not a readable GGUF file ({error})") from error
    metadata = {key: field.contents() for key, field in reader.fields.items()
                if key == "general.architecture" or key.startswith("tokenizer.")}
    if "tokenizer.ggml.tokens" not in metadata:
        raise ValueError(f"{path}: GGUF metadata has no field 'tokenizer.ggml.tokens'; the file carries no tokenizer")
    return metadata


def load_gguf_tokenizer(path: str | pathlib.Path) -> Any:
    """A `PreTrainedTokenizerFast` with the file's vocabulary, merges, special tokens and chat template."""
    from transformers import PreTrainedTokenizerFast

    converter = _converter()
    metadata = read_tokenizer_metadata(path)
    grouped = {
        group: {name: metadata[f"tokenizer.{key}"] for key, name in renames.items() if f"tokenizer.{key}" in metadata}
        for group, renames in converter.GGUF_TOKENIZER_MAPPING.items()
    }
    tokenizer_dict, tokenizer_config = grouped["tokenizer"], grouped["tokenizer_config"]
    if tokenizer_dict.get("tokenizer_type") == "llama":
        tokenizer_config.setdefault("add_bos_token", True)  # llama.cpp's default for sentencepiece vocabularies
    for name, key in converter._SPECIAL_TOKENS.items():
        token_id = metadata.get(f"tokenizer.ggml.{key}")
        tokenizer_config[name] = tokenizer_dict["tokens"][token_id] if token_id is not None else None
    backend, extra = converter.convert_gguf_tokenizer(metadata["general.architecture"], tokenizer_dict)
    return PreTrainedTokenizerFast(tokenizer_object=backend, **tokenizer_config, **extra)
