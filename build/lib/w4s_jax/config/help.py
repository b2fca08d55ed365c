"""What `w4s-jax SUBCOMMAND --help` prints about a config: every field with its default and doc."""

from __future__ import annotations

import ml_collections

from w4s_jax.config.fields import FIELD_DOCS, iter_leaves


def describe_fields(config: ml_collections.ConfigDict) -> str:
    """One line per field: path, default and doc."""
    lines = []
    for path, value in iter_leaves(config):
        doc = FIELD_DOCS.get(path, "(undocumented)")
        shown = repr(value.to_dict() if isinstance(value, ml_collections.ConfigDict) else value)
        lines.append(f"  --config.{path}={shown}\n      {doc}")
    return "\n".join(lines)
