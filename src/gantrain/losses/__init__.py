"""Adversarial losses shared by every family."""

from gantrain.losses.adversarial import LOSSES, AdversarialLoss, clip_weights_, gradient_penalty, make_loss, r1_penalty

__all__ = ["LOSSES", "AdversarialLoss", "clip_weights_", "gradient_penalty", "make_loss", "r1_penalty"]
