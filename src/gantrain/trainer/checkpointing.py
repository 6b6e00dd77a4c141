"""A run's checkpoint folder: numbered snapshots, `last.pt` and `best.pt` pointing at them, old snapshots pruned,
and the best value of the monitored metric that decides `best.pt`. The file format is `gantrain/runs.py`'s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gantrain.errors import GantrainError
from gantrain.io import link_atomic, save_atomic
from gantrain.runs import prune, snapshot_name


class KeepBest:
    """The best value of `eval.monitor` so far (saved in every checkpoint, so a resumed run keeps comparing
    against it); without a monitor nothing is ever better."""

    def __init__(self, monitor: str | None, mode: str) -> None:
        self.key, self.mode = (monitor or "").removeprefix("eval/"), mode
        self.best: dict[str, Any] = {"value": None, "step": None}

    def update(self, metrics: dict[str, float], step: int) -> bool:
        """Record `metrics` of `step` if the monitored one beats the best so far; True if it did."""
        if not self.key or not metrics:
            return False
        if self.key not in metrics:
            raise GantrainError(
                f"eval.monitor={self.key} is not among the computed metrics ({', '.join(metrics)}); pick one of them"
            )
        value = float(metrics[self.key])
        old = self.best.get("value")
        better = old is None or (value < old if self.mode == "min" else value > old)
        if better:
            self.best = {"value": value, "step": step, "metric": self.key}
        return better


class Checkpointer:
    """Writes snapshots into `folder`, keeping the newest `keep_last` plus whatever `best.pt` points at."""

    def __init__(self, folder: Path, keep_last: int) -> None:
        self.folder, self.keep_last = folder, keep_last
        self.last_good: Path | None = None  # the newest snapshot written by this process, for error messages

    def write(self, state: dict[str, Any], step: int, also_best: bool = False) -> Path:
        """Save `state` as the snapshot of `step`, point `last.pt` (and `best.pt`) at it, prune older ones."""
        path = self.folder / snapshot_name(step)
        save_atomic(state, path)
        link_atomic(path, self.folder / "last.pt")
        best = self.folder / "best.pt"
        if also_best:
            link_atomic(path, best)
        prune(self.folder, self.keep_last, {best.resolve()} if best.exists() else set())
        self.last_good = path
        return path
