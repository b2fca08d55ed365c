"""Documented config sections: every leaf field has a one-line doc, keyed by its dotted path.

`tests/test_configs.py` checks that no shipped config has an undocumented field. A field whose doc
starts with "map:" is a free-form mapping whose keys are not documented one by one.
"""

from __future__ import annotations

from collections.abc import Iterator

import ml_collections

from w4s_jax.settings_fields import field_docs

FIELD_DOCS: dict[str, str] = {}


def section(prefix: str, **fields: tuple[object, str]) -> ml_collections.ConfigDict:
    """Builds one config section from `name=(default, one-line doc)` pairs and records the docs."""
    values = {}
    for name, (value, doc) in fields.items():
        FIELD_DOCS[f"{prefix}.{name}" if prefix else name] = doc
        values[name] = value
    return ml_collections.ConfigDict(values)


def iter_leaves(config: ml_collections.ConfigDict, prefix: str = "") -> Iterator[tuple[str, object]]:
    """Yields (dotted path, value) for every leaf, stopping at documented maps."""
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, ml_collections.ConfigDict) and not FIELD_DOCS.get(path, "").startswith("map:"):
            yield from iter_leaves(value, path)
        else:
            yield path, value


def typed_section(prefix: str, settings_class: type) -> ml_collections.ConfigDict:
    """A config section built from a typed settings class: its fields' defaults and docs
    (`settings_fields.setting`), so each is written once, in the package that consumes the section."""
    fields = {}
    for name, (default, doc) in field_docs(settings_class).items():
        if isinstance(default, dict):  # a map field (executor.prices): its keys, model names, hold dots
            default = ml_collections.ConfigDict(default, allow_dotted_keys=True)
        fields[name] = (default, doc)
    return section(prefix, **fields)
