"""A sample's attached file, read by the parent and handed to the workflow as text.

The workflow's worker never opens a path outside its private directory: `agent.read_attachment()`
asks the parent, which reads the one file the sample carries (SampleContext.attachment), bounded in
size, and sends its text over the channel. Only text-like files are read; any other type, a missing
file or one over the size bound is an AttachmentError the workflow can catch.
"""

from __future__ import annotations

import pathlib

TEXT_SUFFIXES = frozenset({".txt", ".csv", ".json", ".jsonl", ".md", ".py", ".xml", ".html"})
MAX_ATTACHMENT_BYTES = 256 * 1024  # under sandbox.max_call_bytes' default: the reply frame stays small


class AttachmentError(ValueError):
    """No attachment, an unreadable type, or a file over the size bound (the workflow may catch it)."""


def read_attachment_text(path: str, max_bytes: int = MAX_ATTACHMENT_BYTES) -> str:
    """The text of the sample's attached file (UTF-8, undecodable bytes replaced)."""
    if not path:
        raise AttachmentError("this sample has no attached file")
    file = pathlib.Path(path)
    if file.suffix.lower() not in TEXT_SUFFIXES:
        raise AttachmentError(f"attached file {file.name!r} is not a text file read_attachment() can return; "
                              f"it reads {', '.join(sorted(TEXT_SUFFIXES))}")
    try:
        size = file.stat().st_size
        if size > max_bytes:
            raise AttachmentError(f"attached file {file.name!r} is {size} bytes, over the {max_bytes}-byte limit")
        with open(file, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise AttachmentError(f"attached file {file.name!r} cannot be read: {error.strerror}") from None
    if len(data) > max_bytes:  # it grew after stat()
        raise AttachmentError(f"attached file {file.name!r} is over the {max_bytes}-byte limit")
    return data.decode("utf-8", errors="replace")
