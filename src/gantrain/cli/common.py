"""What every command shares: one-line errors and logging set-up (loading a trained run is `gantrain.runs`)."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any, Callable

from gantrain.errors import GantrainError

def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn GantrainError into `error: ...` on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GantrainError as exc:
            fail(str(exc))

    return wrapper


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
