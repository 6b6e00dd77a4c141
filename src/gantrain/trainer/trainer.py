"""The one training loop every family runs through.

The `Trainer` wires the pieces and owns the loop: devices and precision (`runtime`), seeding (`rng`), the data
position (one cross-epoch batch iterator), LR schedules, generator EMA, the checkpointed state (`state`), the
checkpoint folder (`checkpointing`), loss metering (`metering`), stop signals (`signals`), periodic samples and
evaluation. The family (a `GANModel`) owns only its nets, optimisers and step.
"""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import closing
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from gantrain.data.listing import LISTING_FILE, FolderListing
from gantrain.data.loader import make_batch_stream
from gantrain.io import write_json_atomic
from gantrain.rng import isolated_rng, seed_everything
from gantrain.runs import build_data, build_model
from gantrain.runtime import Runtime, apply_backend_settings, resolve_device, resolve_precision
from gantrain.trainer.checkpointing import Checkpointer, KeepBest
from gantrain.trainer.distributed import DistEnv
from gantrain.trainer.ema import EMA
from gantrain.trainer.metering import LossMeter
from gantrain.trainer.optim import build_optimizer, build_scheduler
from gantrain.trainer.run_logger import RunLogger
from gantrain.trainer.signals import StopSignals
from gantrain.trainer.state import Progress, TrainingState

log = logging.getLogger("gantrain")


def _every(period: int | None, step: int) -> bool:
    """True at the multiples of `period` (never for 0/None: the action is off)."""
    return bool(period) and step % period == 0


class Trainer:
    """`Trainer(cfg, run_dir).setup(ckpt)` builds (or resumes) a run; `fit()` trains it to the end."""

    def __init__(self, cfg: DictConfig, run_dir: Path, dist: DistEnv | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = dist or DistEnv.from_env()
        self.progress = Progress()
        self.best = KeepBest(cfg.eval.monitor, cfg.eval.mode)
        self.checkpoints = Checkpointer(self.run_dir / "checkpoints", cfg.trainer.keep_last)
        self.signals = StopSignals()
        self.metrics: dict[str, float] = {}  # the latest evaluation's, returned by `fit`

    # ------------------------------------------------------------------ set-up
    def setup(self, resume_ckpt: dict[str, Any] | None = None) -> None:
        """Build everything, resuming `resume_ckpt` if given. The order is part of reproducibility: seeding
        first, then anything that draws from the training RNG, and side work under `isolated_rng`."""
        device = self._init_runtime()
        self._build_data_and_model(device)
        self._build_optimisation(device)
        tcfg = self.cfg.trainer
        if tcfg.sync_batchnorm:  # after the EMA copies: they run on rank 0 alone, so they keep plain BatchNorm
            self.dist.convert_sync_batchnorm(self.model.nets, device)
        self.state = TrainingState(
            self.cfg, self.info, self.model, self.schedulers, self.ema, self.rt, self.dist, self.best, self.progress
        )
        if resume_ckpt is not None:
            self.state.load_state_dict(resume_ckpt)
        self.dist.wrap(self.model)
        if tcfg.compile:
            self._compile_nets()
        # a CPU single process checks every step (no device sync to avoid); ranks agree only at log steps
        every_step = device.type == "cpu" and self.dist.world == 1
        self.meter = LossMeter(self.dist, tcfg.stop_on_nonfinite, every_step, self.progress.step)
        self.fixed = self.model.fixed_inputs(tcfg.num_sample_images, torch.Generator().manual_seed(self.cfg.seed))
        self._build_evaluation_and_logging(device)

    def _init_runtime(self) -> torch.device:
        """Seeds, threads, determinism and backend flags; the device and precision this rank trains with."""
        tcfg = self.cfg.trainer
        seed_everything(self.cfg.seed + self.dist.rank)
        if tcfg.num_threads:
            torch.set_num_threads(int(tcfg.num_threads))
        if tcfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        device = self.dist.device(resolve_device(tcfg.device))
        apply_backend_settings(device, tcfg.cudnn_benchmark, tcfg.matmul_precision, tcfg.deterministic)
        self.rt = Runtime(device, resolve_precision(tcfg.precision, device), tcfg.channels_last)
        return device

    def _build_data_and_model(self, device: torch.device) -> None:
        cfg = self.cfg
        # the file lists are stored with the run, so a resume sees the same files whatever was added since
        listing = FolderListing(self.run_dir / LISTING_FILE, write=self.dist.is_main)
        self.data = build_data(cfg, device, listing)
        self.info = self.data.info
        self.model = build_model(cfg, self.info)
        self.model.attach(self.rt)
        with isolated_rng():  # pretraining a frozen text encoder etc. must not move the training streams
            self.model.prepare(self.data, self.run_dir)
        self.stream = make_batch_stream(
            self.data.split("train"),
            batch_size=cfg.data.batch_size,
            seed=cfg.seed,
            device=device,
            num_workers=cfg.data.num_workers,
            cache=self.data.cache_mode,
            drop_last=True,
            rank=self.dist.rank,
            world=self.dist.world,
        )
        self.steps_per_epoch = len(self.stream)
        self.model.steps_per_epoch = self.steps_per_epoch
        self.total_steps = self._total_steps()

    def _build_optimisation(self, device: torch.device) -> None:
        """The family's optimisers, one LR schedule each, and the generators' EMA (if `trainer.ema.decay`)."""
        cfg, ema = self.cfg, self.cfg.trainer.ema
        self.model.configure_optimizers(lambda name, params: build_optimizer(name, params, cfg.optim, device))
        self.schedulers = {
            name: build_scheduler(opt, cfg.optim, self.total_steps, self.steps_per_epoch)
            for name, opt in self.model.optimizers.items()
        }
        self.ema = None
        if ema.decay is not None:
            gens = {n: self.model.nets[n] for n in self.model.generator_names}
            self.ema = EMA(gens, ema.decay, ema.start_step, ema.every, ema.bn_batches)

    def _build_evaluation_and_logging(self, device: torch.device) -> None:
        from gantrain.metrics.evaluator import Evaluator, metric_names

        cfg = self.cfg
        self.eval_enabled = bool(metric_names(cfg, self.model))
        # rank 0 computes the metrics and broadcasts them: the other ranks need no feature nets or references
        with isolated_rng():  # building metric nets (or training them on first use) leaves training untouched
            self.evaluator = Evaluator(cfg, self.data, self.model, device) if self.eval_enabled and self.dist.is_main else None
        self.logger = RunLogger(
            self.run_dir, cfg.logger.tensorboard, cfg.logger.jsonl, enabled=self.dist.is_main, hparams=cfg.logger.hparams
        )

    def _compile_nets(self) -> None:
        """`torch.compile` every net, except critics under a gradient penalty: compiled graphs have no double
        backward, so those run eagerly (the generators, where most of the work is, are still compiled)."""
        penalty = self.model.loss is not None and self.model.loss.kind == "wgan-gp"
        eager = [name for name in self.model.nets if penalty and name.startswith("D")]
        if eager:
            log.info("trainer.compile: %s stay eager (the gradient penalty needs double backward)", ", ".join(eager))
        for name, net in self.model.nets.items():
            if name not in eager:
                net.compile()

    def _total_steps(self) -> int:
        t = self.cfg.trainer
        limits = []
        if t.max_steps is not None:
            limits.append(int(t.max_steps))
        if t.max_epochs is not None:
            limits.append(int(t.max_epochs) * self.steps_per_epoch)
        return min(limits)

    # ------------------------------------------------------------------ state
    def state_dict(self, per_rank: dict[str, list[Any]] | None = None) -> dict[str, Any]:
        """What a checkpoint of the run holds now (reads only; see `TrainingState.state_dict`)."""
        return self.state.state_dict(per_rank)

    def save(self, also_best: bool = False) -> Path | None:
        """Called on every rank (it gathers per-rank state); rank 0 refreshes the EMA statistics and writes."""
        per_rank = self.state.gather_rank_state()
        if not self.dist.is_main:
            return None
        self.refresh_ema()
        return self.checkpoints.write(self.state.state_dict(per_rank), self.progress.step, also_best)

    # ------------------------------------------------------------------ EMA, samples, evaluation
    def refresh_ema(self) -> None:
        """Standing BN statistics for the EMA generators, from batches of the inputs the sample grids use. Done
        before the EMA nets are sampled, evaluated or saved; a no-op while they are current."""
        if self.ema is None:
            return
        batch = self.cfg.data.batch_size

        def run_generators(i: int) -> None:
            self.model.sample_grids(self.model.fixed_inputs(batch, torch.Generator().manual_seed(i)), self.ema.nets)

        self.ema.refresh_batch_norm(run_generators)

    def _sample_nets(self) -> nn.ModuleDict | None:
        """The nets samples and metrics use: the refreshed EMA generators, or None for the live ones."""
        self.refresh_ema()
        return self.ema.nets if self.ema is not None else None

    def log_samples(self) -> None:
        if not self.dist.is_main:
            return
        self.model.nets.eval()
        try:
            with isolated_rng(self.cfg.seed):
                grids = self.model.sample_grids(self.fixed, self._sample_nets())
        finally:
            self.model.nets.train()
        self.logger.images(self.progress.step, grids, self.model.grid_rows())

    def evaluate(self) -> dict[str, float]:
        if not self.eval_enabled:
            return {}
        step, metrics = self.progress.step, {}
        if self.dist.is_main:  # every rank holds the same weights and buffers: compute once, share the result
            self.model.nets.eval()
            try:
                with isolated_rng(self.cfg.eval.seed):
                    metrics = self.evaluator(self._sample_nets(), step)
            finally:
                self.model.nets.train()
        metrics = self.dist.broadcast_object(metrics)
        scalars = {f"eval/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
        if self.dist.is_main:
            scalars["time/eval_s"] = self.evaluator.protocol["seconds"]
        self.logger.scalars(step, scalars)
        if self.dist.is_main:  # the protocol behind the numbers just logged (feature net, hashes, counts, seed)
            write_json_atomic({"metrics": metrics, "protocol": self.evaluator.protocol}, self.run_dir / "eval_last.json")
        return metrics

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        """Train from where `setup` left the run to `total_steps`, then sample, evaluate and save once more.

        SIGINT/SIGTERM save a checkpoint at the next step boundary and raise `TrainingInterrupted`."""
        with self.signals.installed():
            self._announce()
            self.bar = tqdm(
                total=self.total_steps, initial=self.progress.step, dynamic_ncols=True, leave=False,
                disable=None if self.cfg.trainer.progress_bar and self.dist.is_main else True,
            )
            try:
                self._run_steps()
                self.bar.close()
                return self._finish()
            finally:
                self.bar.close()
                self.logger.close()

    def _announce(self) -> None:
        self._last_log = (time.perf_counter(), self.progress.step)
        if self.dist.is_main:
            log.info(
                "training %s on %s: %d steps (%d per epoch), device %s, precision %s, run dir %s",
                self.cfg.model.name, self.info.name, self.total_steps, self.steps_per_epoch,
                self.rt.device, self.rt.precision, self.run_dir,
            )

    def _run_steps(self) -> None:
        """One pass over the run's batches from the saved position on; closed (stopping any stream workers) as
        soon as the last step is done."""
        p = self.progress
        with closing(self.stream.batches(p.epoch, p.batch_in_epoch)) as batches:
            while p.step < self.total_steps:
                self._train_step(*next(batches))
                self._after_step()

    def _train_step(self, epoch: int, index: int, batch: dict[str, torch.Tensor]) -> None:
        """The family's step on batch `index` of `epoch`, then what follows every step: buffers synced across
        ranks, counters, LR schedules, the EMA and the loss meter."""
        if self.rt.channels_last:
            batch = {k: self.rt.input(v) for k, v in batch.items()}
        losses = self.model.train_step(batch, self.progress.step)
        self.dist.sync_buffers(self.model.nets)
        self.progress.advance(epoch, index, self.cfg.data.batch_size * self.dist.world)
        step = self.progress.step
        with warnings.catch_warnings():  # a G not stepped yet (d_steps > 1) is expected
            warnings.simplefilter("ignore", UserWarning)
            for sched in self.schedulers.values():
                sched.step()
        if self.ema is not None:
            self.ema.update(self.model.nets, step)
        self.meter.add(losses, step, self.checkpoints.last_good)
        self.bar.update(1)

    def _after_step(self) -> None:
        """The periodic actions after a step, in a fixed order: log, sample, evaluate, checkpoint, stop."""
        step, tcfg = self.progress.step, self.cfg.trainer
        done = step >= self.total_steps
        at_log = _every(tcfg.log_every, step) or done
        if at_log:
            self._log_scalars()
        if _every(tcfg.sample_every, step) and not done:
            self.log_samples()
        best = self._periodic_eval(done)
        if (_every(tcfg.ckpt_every, step) and not done) or best:
            self.meter.check(step, self.checkpoints.last_good, advance=False)
            self.save(also_best=best)
        if self.signals.should_stop(self.dist, at_log):
            raise self.signals.interrupted(self.save() or self.checkpoints.folder)

    def _log_scalars(self) -> None:
        """Loss means since the last log step, learning rates, speed and epoch (after the non-finite check)."""
        step = self.progress.step
        self.meter.check(step, self.checkpoints.last_good)
        now = time.perf_counter()
        values = self.meter.means()
        rate = (step - self._last_log[1]) / max(now - self._last_log[0], 1e-9)
        values.update({f"lr/{n}": s.get_last_lr()[0] for n, s in self.schedulers.items()})
        values["speed/steps_per_s"] = rate
        values["speed/images_per_s"] = rate * self.cfg.data.batch_size * self.dist.world
        values["epoch"] = self.progress.epoch
        self.logger.scalars(step, values)
        self.bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in values.items() if k.startswith("loss/")})
        self._last_log = (now, step)

    def _periodic_eval(self, done: bool) -> bool:
        """Evaluate at `eval.every` steps (the last step's evaluation is left to `eval.at_end`); True if the
        monitored metric reached a new best."""
        at_end = self.cfg.eval.at_end and self.eval_enabled
        if not _every(self.cfg.eval.every, self.progress.step) or (done and at_end):
            return False
        self.metrics = self.evaluate()
        return self.best.update(self.metrics, self.progress.step)

    def _finish(self) -> dict[str, float]:
        """The end of the run: last samples, the end-of-run evaluation, the final checkpoint, hparams."""
        self.log_samples()
        if self.cfg.eval.at_end and self.eval_enabled:
            self.metrics = self.evaluate()
        self.save(also_best=self.best.update(self.metrics, self.progress.step))
        if self.dist.is_main:
            self.logger.hparams(OmegaConf.to_container(self.cfg, resolve=True), self.metrics)
            log.info("finished at step %d; checkpoint %s", self.progress.step, self.checkpoints.folder / "last.pt")
        return self.metrics
