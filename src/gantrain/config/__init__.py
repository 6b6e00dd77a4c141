"""Locating the shipped configs and validating composed configs against typed schemas."""

from gantrain.config.paths import config_dir
from gantrain.config.schema import validate_config

__all__ = ["config_dir", "validate_config"]
