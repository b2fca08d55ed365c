"""Package names that load on first use (PEP 562), for packages whose settings module is read when a
config file loads: importing `w4s_jax.models.settings` runs `w4s_jax/models/__init__.py`, which must
not import JAX (or grain, or the HTTP stack) to say what it exports."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, homes: Mapping[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` that imports `homes[name]` (a module path) on first access of `name`."""

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(homes[name]), name)

    return __getattr__
