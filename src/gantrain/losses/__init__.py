"""Adversarial losses shared by every family."""

from gantrain.losses.adversarial import LOSSES, AdversarialLoss, clip_weights_, gradient_penalty, make_loss

__all__ = ["LOSSES", "AdversarialLoss", "clip_weights_", "gradient_penalty", "make_loss"]
