"""The generic training loop and what it owns: EMA, schedules, distributed set-up, logging.

The checkpoint format it writes is `gantrain.runs`; the device and precision runtime is `gantrain.runtime`."""
