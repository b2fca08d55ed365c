"""The config files that ship with w4s-jax (`--config=w4s_jax/configs/<name>.py[:ARG]`); see README.md here."""
