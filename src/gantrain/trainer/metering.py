"""Loss metering between log steps: running sums kept on the device (a step reads nothing back to the host),
means averaged over ranks at log steps, and the non-finite check that stops a diverged run."""

from __future__ import annotations

from pathlib import Path

import torch

from gantrain.errors import NonFiniteLossError
from gantrain.trainer.distributed import DistEnv


class LossMeter:
    """The family's losses summed since the last log step.

    With `check_every_step` (a CPU single process: no device sync to avoid) every step is checked for a
    non-finite loss; otherwise the ranks check together at log steps, so the error can name a step range.
    """

    def __init__(self, dist: DistEnv, stop_on_nonfinite: bool, check_every_step: bool, step: int) -> None:
        self.dist, self.stop_on_nonfinite, self.check_every_step = dist, stop_on_nonfinite, check_every_step
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.latest: dict[str, torch.Tensor] = {}
        self.checked_at = step

    def add(self, losses: dict[str, torch.Tensor], step: int, last_good: Path | None) -> None:
        """Add one step's losses (one multi-tensor kernel; the sums stay on the device)."""
        old = [k for k in losses if k in self.sums]
        if old:
            torch._foreach_add_([self.sums[k] for k in old], [losses[k].float() for k in old])
        for k, v in losses.items():
            if k not in self.sums:
                self.sums[k] = v.detach().float().clone()
            self.counts[k] = self.counts.get(k, 0) + 1
        self.latest = losses
        if self.check_every_step:
            self.check(step, last_good)

    def check(self, step: int, last_good: Path | None, advance: bool = True) -> None:
        """Raise on every rank together if any rank saw a non-finite loss since the last check (a collective
        under torchrun). The running sums carry any inf/nan, so one reduction over them checks every step.
        `advance=False` keeps the range the next check reports (the check before a checkpoint)."""
        if not self.stop_on_nonfinite:
            return
        since = self.checked_at
        finite = not self.sums or bool(torch.stack(list(self.sums.values())).sum().isfinite())
        if advance:
            self.checked_at = step
        if not self.dist.any(not finite):
            return
        bad = {k: float(v) for k, v in self.latest.items()}
        where = f"step {step}" if since >= step - 1 else f"between steps {since + 1} and {step}"
        good = last_good or "none (no checkpoint was written yet)"
        raise NonFiniteLossError(
            f"non-finite loss {bad} at {where}; last good checkpoint: {good}. Lower optim.lr, use trainer.precision=32, "
            f"or set trainer.stop_on_nonfinite=false to continue"
        )

    def means(self) -> dict[str, float]:
        """The means since the last call, averaged over ranks (a collective), and a fresh start."""
        if not self.sums:
            return {}
        names = list(self.sums)
        means = torch.stack([self.sums[k].float() / self.counts[k] for k in names])
        means = self.dist.all_reduce_mean(means)
        self.sums, self.counts = {}, {}
        # plain names are losses; names with a slash (e.g. "acc/D_class_real") keep their own section
        return {(k if "/" in k else f"loss/{k}"): v for k, v in zip(names, means.tolist())}
