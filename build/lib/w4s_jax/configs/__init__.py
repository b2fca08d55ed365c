"""The config files that ship with w4s-jax (`--config=configs/<name>.py[:ARG]`); see README.md here."""
