"""The generic training loop and what it owns: runtime (device, precision), checkpoints, EMA, schedules, logging."""
