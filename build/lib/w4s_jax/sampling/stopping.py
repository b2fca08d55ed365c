"""Stop handling on the host: stop tokens end rows inside the compiled loop; stop strings are cut here.

Stop strings can span token boundaries and start mid-token, so they are matched on the decoded
text. The text is cut right before the earliest match (OpenAI semantics); the tokens (and their
logprobs) are cut to the longest prefix whose decoded text lies entirely before the match, so that
`decode(token_ids)` is always a prefix of `text`. While a reply is still being generated,
`settled_text` says how much of it is final (safe to stream) and whether a stop string has ended it:
the same cut as on the finished text, decided as early as the tokens allow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def earliest_stop(text: str, stop_strings: Sequence[str]) -> int | None:
    """Index of the first character of the earliest stop-string match in `text`, or None."""
    hits = [i for i in (text.find(s) for s in stop_strings) if i >= 0]
    return min(hits) if hits else None


def pending_stop_start(text: str, stop_strings: Sequence[str]) -> int:
    """The earliest index where more text could still complete a stop string: the first j with
    text[j:] a proper prefix of one (len(text) if there is none)."""
    longest = max(len(s) for s in stop_strings)
    for j in range(max(0, len(text) - longest + 1), len(text)):
        tail = text[j:]
        if any(len(s) > len(tail) and s.startswith(tail) for s in stop_strings):
            return j
    return len(text)


def settled_text(text: str, stop_strings: Sequence[str]) -> tuple[int, bool]:
    """(how many leading characters of a growing reply's `text` no later token can change, whether a
    stop string has ended the reply).

    A trailing U+FFFD (an incomplete UTF-8 sequence) may still change, and so may a tail that could
    grow into a stop string. A complete match ends the reply once no earlier match is still possible,
    so the cut equals the one `cut_at_stop_string` makes on the finished text.
    """
    stable = text.rstrip("\ufffd")
    if not stop_strings:
        return len(stable), False
    pending = pending_stop_start(stable, stop_strings)
    cut = earliest_stop(stable, stop_strings)
    if cut is not None and cut <= pending:
        return cut, True
    return pending, False


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
