"""Reusable network blocks shared by every family."""
