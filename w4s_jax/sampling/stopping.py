"""Stop handling after the compiled loop: stop tokens end rows inside it; stop strings are cut here.

Stop strings can span token boundaries and start mid-token, so they are matched on the decoded
text. The text is cut right before the earliest match (OpenAI semantics); the tokens (and their
logprobs) are cut to the longest prefix whose decoded text lies entirely before the match, so that
`decode(token_ids)` is always a prefix of `text`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def earliest_stop(text: str, stop_strings: Sequence[str]) -> int | None:
    """Index of the first character of the earliest stop-string match in `text`, or None."""
    hits = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return min(hits) if hits else None


def cut_at_stop_string(
    token_ids: list[int],
    logprobs: list[float],
    text: str,
    stop_strings: Sequence[str],
    decode: Callable[[list[int]], str],
) -> tuple[list[int], list[float], str, bool]:
    """(token_ids, logprobs, text, matched) with everything from the earliest stop string removed."""
    cut = earliest_stop(text, stop_strings)
    if cut is None:
        return token_ids, logprobs, text, False
    kept_text = text[:cut]
    # Largest k with decode(ids[:k]) a prefix of kept_text; decoded prefixes grow with k, so bisect.
    low, high = 0, len(token_ids)
    while low < high:
        mid = (low + high + 1) // 2
        if kept_text.startswith(decode(token_ids[:mid])):
            low = mid
        else:
            high = mid - 1
    return token_ids[:low], logprobs[:low], kept_text, True


def trim_stop_token(token_ids: list[int], logprobs: list[float], stop_ids: set[int]) -> tuple[list[int], list[float], bool]:
    """Drops a final stop token (the loop records it, the reply does not include it)."""
    if token_ids and token_ids[-1] in stop_ids:
        return token_ids[:-1], logprobs[:-1], True
    return token_ids, logprobs, False
