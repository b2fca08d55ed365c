"""Typed settings: one frozen dataclass per config section, each field with its default, its doc line
and its range check, written once.

The package that consumes a section owns its dataclass (in a standard-library-only `settings.py`);
`config/sections.py` builds the ConfigDict sections from them (defaults and `--help` docs) and a
command turns its checked config into settings once, at its entry. Below the CLI code reads typed
fields, never the ConfigDict. A bad value raises `ConfigError("<section>.<field>: <problem>, got
<value>; fix: ...")` when the settings are built, wherever they are built.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from w4s_jax.config_errors import ConfigError

# A range check: the problem with a value ("must be >= 0"), or "" when it is fine.
Check = Callable[[Any], str]


def setting(default: Any, doc: str, check: Check | None = None) -> Any:
    """A dataclass field carrying the default, the one-line doc `--help` prints and the range check."""
    return dataclasses.field(default=default, metadata={"doc": doc, "check": check})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def at_least(minimum: float, *, integer: bool = False) -> Check:
    """>= minimum (an integer when `integer`)."""
    kind = "an integer " if integer else ""

    def check(value: Any) -> str:
        ok = _number(value) and value >= minimum and (not integer or isinstance(value, int))
        return "" if ok else f"must be {kind}>= {minimum:g}"

    return check


def above(minimum: float) -> Check:
    """> minimum."""
    return lambda value: "" if _number(value) and value > minimum else f"must be > {minimum:g}"


def between(low: float, high: float, *, open_low: bool = False) -> Check:
    """In [low, high] ((low, high] when `open_low`)."""
    bracket = "(" if open_low else "["

    def check(value: Any) -> str:
        ok = _number(value) and (value > low if open_low else value >= low) and value <= high
        return "" if ok else f"must be in {bracket}{low:g}, {high:g}]"

    return check


def one_of(choices: Sequence[str], noun: str = "") -> Check:
    """A member of `choices`; `noun` names what an unknown value is ("unknown dtype")."""
    problem = f"unknown {noun} (use one of {tuple(choices)})" if noun else f"must be one of {tuple(choices)}"
    return lambda value: "" if value in choices else problem


def check_fields(settings: Any, section: str) -> None:
    """Runs every field's range check; the first failure raises a ConfigError naming the field."""
    for field in dataclasses.fields(settings):
        check = field.metadata.get("check")
        value = getattr(settings, field.name)
        problem = check(value) if check else ""
        if problem:
            path = f"{section}.{field.name}" if section else field.name
            raise ConfigError(f"{path}: {problem}, got {value!r}; fix: pass a valid --config.{path}")


def field_docs(cls: type) -> dict[str, tuple[Any, str]]:
    """name -> (default, doc) of a settings class: what `config/sections.py` builds a section from."""
    return {field.name: (_default(field), field.metadata["doc"]) for field in dataclasses.fields(cls)
            if "doc" in field.metadata}


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _coerce(value: Any, annotation: Any) -> Any:
    """A config value in the field's declared type: ints widen to float, a map becomes a dict."""
    if hasattr(value, "to_dict"):
        value = value.to_dict()
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return dict(value) if annotation is dict else value


def from_section(cls: type, values: Mapping) -> Any:
    """The settings of one config section (fields the class does not declare are ignored)."""
    hints = typing.get_type_hints(cls)
    names = {field.name for field in dataclasses.fields(cls) if field.init}
    return cls(**{name: _coerce(value, hints[name]) for name, value in dict(values).items() if name in names})

