"""SIGINT/SIGTERM during training: recorded by the handler, acted on by the loop at a step boundary, where a
checkpoint can be written safely."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Iterator

from gantrain.trainer.distributed import DistEnv

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the checkpoint is safely on disk."""

    def __init__(self, signum: int, path: Path) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint saved to {path}")
        self.signum, self.path = signum, path


class StopSignals:
    """The stop signal received so far (None: none), and when the ranks agree to act on it."""

    def __init__(self) -> None:
        self.received: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002 - signal handler signature
        self.received = signum

    @contextmanager
    def installed(self) -> Iterator[StopSignals]:
        """Route SIGINT/SIGTERM here for the duration, then restore the previous handlers."""
        previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
        for s in previous:
            signal.signal(s, self.handle)
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def should_stop(self, dist: DistEnv, at_log: bool) -> bool:
        """Under torchrun ranks may get a signal at different steps, so they agree (a collective) only at log
        steps; a single process stops at the next step."""
        if dist.world == 1:
            return self.received is not None
        return at_log and dist.any(self.received is not None)

    def interrupted(self, path: Path) -> TrainingInterrupted:
        """The exception to raise once the checkpoint at `path` is written (SIGTERM for a rank that only
        learned of the signal from another rank)."""
        return TrainingInterrupted(self.received or signal.SIGTERM, path)
