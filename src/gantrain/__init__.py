"""gantrain: a config-driven GAN training CLI."""

__version__ = "0.1.0"
