"""The one exception for a config value or combination that cannot work."""


class ConfigError(ValueError):
    """A config value or combination that cannot work; the message names the field and the fix."""
