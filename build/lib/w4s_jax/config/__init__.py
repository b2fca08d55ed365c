"""Configuration: schemas, loading, help, hardware presets and up-front checks.

The top layer below the CLI: it imports the settings classes from the packages that own them, and
only `configs/`, `cli/` and tests import it (docs/interfaces.md, "Layers"). `ConfigError`, the one
exception for a bad config value (the CLI exits 2 with its message), is in `w4s_jax/config_errors.py`,
a leaf every layer may import.

- `fields`: `section()` builds a ConfigDict section and records a one-line doc per field (`FIELD_DOCS`).
- `sections`: the section schemas config files compose; defaults come from the typed dataclasses
  that use them (e.g. `rlao.optimizer.OptimizerConfig`), so each default is written once.
- `loading`: `load_config_file("FILE.py[:ARG]")`, `config_arg` (the one parser of `ARG`), and
  `CONFIGS_DIR`, the config files (`configs/`, shipped in the wheel as the package `w4s_jax.configs`).
- `help`: `describe_fields`, what `w4s-jax SUBCOMMAND --help` prints.
- `presets`: hardware presets and model sizes.
- `config_checks`: `validate(config)`, run first thing by every subcommand.
"""
