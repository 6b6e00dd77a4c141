"""GAN families: each module holds one family class (networks, optimisers, training step) named by `model._target_`."""

from gantrain.models.base import GANModel

__all__ = ["GANModel"]
