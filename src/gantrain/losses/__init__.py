"""Adversarial losses shared by every family."""

from gantrain.losses.adversarial import LOSSES, AdversarialLoss, gradient_penalty, make_loss

__all__ = ["LOSSES", "AdversarialLoss", "gradient_penalty", "make_loss"]
