"""User-facing errors: one line that names the problem and the fix, never a deep traceback."""


class GantrainError(Exception):
    """Bad input or state the user can fix; the CLI prints `error: <message>` and exits with status 2."""


class NonFiniteLossError(GantrainError):
    """A loss became NaN or infinite."""
