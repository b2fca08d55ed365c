"""Loading config files: `FILE.py[:ARG]` -> `get_config([ARG])`, and where the shipped files are.

The config files in the top-level `configs/` ship as the package `w4s_jax.configs` (setup.py's
`package_dir`), so a wheel install finds them exactly as a checkout does: `CONFIGS_DIR` is that folder
wherever it is installed.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import pathlib

import ml_collections

from w4s_jax.config_errors import ConfigError

CONFIGS_DIR = pathlib.Path(str(importlib.resources.files("w4s_jax.configs")))


def load_config_file(spec: str | pathlib.Path) -> ml_collections.ConfigDict:
    """Loads `get_config()` from a config file, with a clear error naming the file.

    `FILE.py:ARG` calls `get_config(ARG)`, as `--config=FILE.py:ARG` does on the command line.
    """
    path, separator, arg = str(spec).partition(".py:")
    path = pathlib.Path(path + ".py" if separator else path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    module_spec = importlib.util.spec_from_file_location(f"w4s_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise ConfigError(f"{path}: defines no get_config()")
    return module.get_config(arg) if separator else module.get_config()


def config_arg(arg: str | None, *names: str) -> tuple[str, ...]:
    """The `ARG` of `--config=FILE.py:ARG` as its comma-separated parts, one per name ('' when left out).

    `config_arg("v5p-8,7b", "hardware", "size") == ("v5p-8", "7b")`; more parts than names is an error.
    """
    parts = [part.strip() for part in arg.split(",")] if arg else []
    if len(parts) > len(names):
        raise ConfigError(f"config argument {arg!r}: expected at most {len(names)} comma-separated values "
                          f"({','.join(name.upper() for name in names)})")
    return tuple(parts + [""] * (len(names) - len(parts)))
