"""Shared absl plumbing: the --config flag, --help text, config validation and clean errors."""

from __future__ import annotations

import os
import pathlib
import sys
from types import ModuleType

from absl import app, flags
from ml_collections import config_flags

from w4s_jax.config.help import describe_fields
from w4s_jax.config.loading import CONFIGS_DIR, load_config_file
from w4s_jax.config_errors import ConfigError
from w4s_jax.data_errors import DataError


def shown_path(path: pathlib.Path) -> str:
    """`path` relative to the working directory when it lies below it (a checkout), else absolute."""
    return os.path.relpath(path) if path.is_relative_to(pathlib.Path.cwd()) else str(path)


def run_subcommand(name: str, module: ModuleType, argv: list[str]) -> None:
    """Define --config for `module`, parse `argv` and call `module.main(config)`.

    A `ConfigError` (bad field value, impossible combination, missing file) exits with status 2 and a
    message naming the field, a `DataError` (no benchmark data where the config points, a malformed
    row) with one naming the file; anything else is a bug and keeps its traceback.
    """
    default = CONFIGS_DIR / module.DEFAULT_CONFIG
    try:
        # ml_collections resolves `--config.FIELD` overrides against the config here already.
        config_flag = config_flags.DEFINE_config_file(
            "config", str(default), f"ml_collections config file (default: {shown_path(default)})."
        )
    except (AttributeError, KeyError) as error:
        print(f"w4s-jax {name}: configuration error: unknown config field {error}; "
              f"fix: see `w4s-jax {name} --help` for the fields", file=sys.stderr)
        sys.exit(2)
    if "--help" in argv or "-h" in argv or "--helpfull" in argv:
        print(f"w4s-jax {name}: {module.DOC}\n")
        print(f"  --config=FILE[:ARG]  config file (default: {shown_path(default)}; the shipped ones are in "
              f"{shown_path(CONFIGS_DIR)})")
        print("  --config.FIELD=VALUE override one field; the fields of the default config:\n")
        try:
            print(describe_fields(load_config_file(default)))
        except Exception as error:
            print(f"  (could not load {default}: {error})")
        sys.exit(0)

    try:
        flags.FLAGS(argv)
    except flags.Error as error:
        # A ConfigError raised inside the config file reaches us wrapped in absl's flag error.
        message = str(error)
        marker = f"{ConfigError.__name__}: "
        message = message[message.rindex(marker) + len(marker):].strip() if marker in message else message
        print(f"w4s-jax {name}: configuration error: {message}", file=sys.stderr)
        sys.exit(2)
    try:
        # Flags are parsed above; app.run only sets up absl (logging, signal handling) and calls main.
        app.run(lambda _argv: module.main(config_flag.value), argv=argv[:1])
    except ConfigError as error:
        print(f"w4s-jax {name}: configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    except DataError as error:
        print(f"w4s-jax {name}: data error: {error}", file=sys.stderr)
        sys.exit(2)
    finally:
        flags.FLAGS.unparse_flags()

