"""The one exception for a config value or combination that cannot work.

A leaf module, beside `data_errors.py`: the settings of every layer raise it, and the CLI catches it
(exit code 2 with its message), so it must not live in `config/`, the top layer that imports them.
"""


class ConfigError(ValueError):
    """A config value or combination that cannot work; the message names the field and the fix."""
