"""Errors raised while building or loading models; messages name the file and the tensor/field."""


class WeightFormatError(ValueError):
    """A checkpoint or config file is missing, corrupt, truncated, or has an unexpected field/tensor."""


class ConfigMismatchError(WeightFormatError):
    """A preset's shape disagrees with the config found beside the weights."""
