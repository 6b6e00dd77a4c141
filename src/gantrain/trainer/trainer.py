"""The one training loop every family runs through.

It owns devices, precision, seeding, the data position, LR schedules, generator EMA, checkpoints, logging,
periodic samples and evaluation; the family (a `GANModel`) owns only its nets, optimisers and step.
"""

from __future__ import annotations

import logging
import signal
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import gantrain
from gantrain.config.schema import resolve_target
from gantrain.data.base import DataInfo, DataSource
from gantrain.data.loader import make_batch_stream
from gantrain.errors import GantrainError, NonFiniteLossError
from gantrain.models.base import GANModel
from gantrain.trainer import checkpoint as ckpt_io
from gantrain.trainer.distributed import DistEnv
from gantrain.trainer.ema import EMA
from gantrain.trainer.optim import build_optimizer, build_scheduler
from gantrain.trainer.rng import isolated_rng, rng_state, seed_everything, set_rng_state
from gantrain.trainer.run_logger import RunLogger
from gantrain.trainer.runtime import Runtime, apply_backend_settings, resolve_device, resolve_precision

log = logging.getLogger("gantrain")


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the checkpoint is safely on disk."""

    def __init__(self, signum: int, path: Path) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint saved to {path}")
        self.signum, self.path = signum, path


def build_model(cfg: DictConfig, info: DataInfo) -> GANModel:
    cls = resolve_target(cfg.model._target_)
    return cls(cfg.model, info)


def build_data(cfg: DictConfig, device: torch.device | None = None) -> DataSource:
    cls = resolve_target(cfg.data._target_)
    data = cls(cfg.data, seed=cfg.seed)
    return data.on_device(device) if device is not None else data


class Trainer:
    def __init__(self, cfg: DictConfig, run_dir: Path, dist: DistEnv | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.dist = dist or DistEnv.from_env()
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.images_seen = 0
        self.best: dict[str, Any] = {"value": None, "step": None}
        self._signal: int | None = None
        self._last_good: Path | None = None

    # ------------------------------------------------------------------ set-up
    def setup(self, resume_ckpt: dict[str, Any] | None = None) -> None:
        cfg, tcfg = self.cfg, self.cfg.trainer
        seed_everything(cfg.seed + self.dist.rank)
        if tcfg.num_threads:
            torch.set_num_threads(int(tcfg.num_threads))
        if tcfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        device = self.dist.device(resolve_device(tcfg.device))
        apply_backend_settings(device, tcfg.cudnn_benchmark, tcfg.matmul_precision, tcfg.deterministic)
        self.rt = Runtime(device, resolve_precision(tcfg.precision, device), tcfg.channels_last)
        self.data = build_data(cfg, device)
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
        self.model.configure_optimizers(lambda name, params: build_optimizer(name, params, cfg.optim, device))
        self.schedulers = {
            name: build_scheduler(opt, cfg.optim, self.total_steps, self.steps_per_epoch)
            for name, opt in self.model.optimizers.items()
        }
        self.ema = None
        if tcfg.ema.decay is not None:
            gens = {n: self.model.nets[n] for n in self.model.generator_names}
            self.ema = EMA(gens, tcfg.ema.decay, tcfg.ema.start_step, tcfg.ema.every, tcfg.ema.bn_batches)
        if tcfg.sync_batchnorm:  # after the EMA copies: they run on rank 0 alone, so they keep plain BatchNorm
            self.dist.convert_sync_batchnorm(self.model.nets, device)
        if resume_ckpt is not None:
            self.load_state_dict(resume_ckpt)
        self.dist.wrap(self.model)
        if tcfg.compile:
            self._compile_nets()
        gen = torch.Generator().manual_seed(cfg.seed)
        self.fixed = self.model.fixed_inputs(tcfg.num_sample_images, gen)
        from gantrain.metrics.evaluator import Evaluator, metric_names

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
        """Everything needed to continue exactly, in types `torch.load(weights_only=True)` accepts.

        `per_rank` (from `_gather_rank_state`, under torchrun) adds every rank's RNG and family state, so each
        rank resumes its own random stream and image pool; `rng`/`extra` stay rank 0's.
        """
        nets = {name: self.dist.unwrap(net).state_dict() for name, net in self.model.nets.items()}
        return {
            "format": ckpt_io.FORMAT,
            "gantrain_version": gantrain.__version__,
            "model_name": self.cfg.model.name,
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "data_info": self.info.to_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "images_seen": self.images_seen,
            "world_size": self.dist.world,
            "nets": nets,
            "ema": self._ema_state(),
            "optimizers": {n: o.state_dict() for n, o in self.model.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": self.rt.state_dict(),
            "rng": rng_state(),
            "extra": self.model.extra_state(),
            "best": dict(self.best),
            "per_rank": per_rank,
        }

    def _gather_rank_state(self) -> dict[str, list[Any]] | None:
        """Collective: every rank's RNG state and family extra state (None in a single process)."""
        if self.dist.world == 1:
            return None
        states = self.dist.gather_object({"rng": rng_state(), "extra": self.model.extra_state()})
        return {"rng": [s["rng"] for s in states], "extra": [s["extra"] for s in states]}

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        if ckpt["model_name"] != self.cfg.model.name:
            raise GantrainError(
                f"the checkpoint is from model={ckpt['model_name']} but this run is model={self.cfg.model.name}; "
                f"pass model={ckpt['model_name']} or another checkpoint"
            )
        for name, net in self.model.nets.items():
            if name not in ckpt["nets"]:
                raise GantrainError(f"the checkpoint has no network {name!r}; it was written by another model configuration")
            missing, unexpected = net.load_state_dict(ckpt["nets"][name], strict=False)
            if missing or unexpected:
                raise GantrainError(
                    f"network {name} does not match the checkpoint (missing keys: {list(missing)[:3]}, unexpected: "
                    f"{list(unexpected)[:3]}); the architecture settings differ from the run that wrote it"
                )
        for name, opt in self.model.optimizers.items():
            opt.load_state_dict(_keep_kernel_flags(opt, ckpt["optimizers"][name]))
        for name, sched in self.schedulers.items():
            sched.load_state_dict(ckpt["schedulers"][name])
        if self.ema is not None and ckpt.get("ema"):
            self.ema.load_state_dict(ckpt["ema"])
        self.rt.load_state_dict(ckpt.get("scalers", {}))
        same_world = ckpt.get("world_size", 1) == self.dist.world
        per_rank = ckpt.get("per_rank") if same_world else None
        self.model.load_extra_state(per_rank["extra"][self.dist.rank] if per_rank else ckpt.get("extra", {}))
        self.step, self.epoch = ckpt["step"], ckpt["epoch"]
        self.batch_in_epoch, self.images_seen = ckpt["batch_in_epoch"], ckpt.get("images_seen", 0)
        self.best = ckpt.get("best", self.best)
        if same_world:
            set_rng_state(per_rank["rng"][self.dist.rank] if per_rank else ckpt["rng"])
        else:
            log.warning("checkpoint was written with %s ranks, now %s: RNG streams restart", ckpt.get("world_size"), self.dist.world)

    def save(self, also_best: bool = False) -> Path | None:
        """Called on every rank (it gathers per-rank state); rank 0 writes."""
        per_rank = self._gather_rank_state()
        if not self.dist.is_main:
            return None
        state = self.state_dict(per_rank)
        path = self.ckpt_dir / ckpt_io.snapshot_name(self.step)
        ckpt_io.save_atomic(state, path)
        ckpt_io.link_atomic(path, self.ckpt_dir / "last.pt")
        if also_best:
            ckpt_io.link_atomic(path, self.ckpt_dir / "best.pt")
        protect = {(self.ckpt_dir / "best.pt").resolve()} if (self.ckpt_dir / "best.pt").exists() else set()
        ckpt_io.prune(self.ckpt_dir, self.cfg.trainer.keep_last, protect)
        self._last_good = path
        return path

    # ------------------------------------------------------------------ helpers
    def _sample_nets(self):
        if self.ema is None:
            return None
        self._refresh_ema_batch_norm()
        return self.ema.nets

    def _ema_state(self) -> dict | None:
        if self.ema is None:
            return None
        self._refresh_ema_batch_norm()
        return self.ema.state_dict()

    def _refresh_ema_batch_norm(self) -> None:
        """Standing BN statistics for the EMA generators, from batches of the inputs the sample grids use."""
        batch = self.cfg.data.batch_size

        def run_generators(i: int) -> None:
            self.model.sample_grids(self.model.fixed_inputs(batch, torch.Generator().manual_seed(i)), self.ema.nets)

        self.ema.refresh_batch_norm(run_generators)

    def log_samples(self) -> None:
        if not self.dist.is_main:
            return
        self.model.nets.eval()
        try:
            with isolated_rng(self.cfg.seed):
                grids = self.model.sample_grids(self.fixed, self._sample_nets())
        finally:
            self.model.nets.train()
        self.logger.images(self.step, grids, self.model.grid_rows())

    def evaluate(self) -> dict[str, float]:
        if not self.eval_enabled:
            return {}
        metrics: dict[str, float] = {}
        if self.dist.is_main:  # every rank holds the same weights and buffers: compute once, share the result
            self.model.nets.eval()
            try:
                with isolated_rng(self.cfg.eval.seed):
                    metrics = self.evaluator(self._sample_nets(), self.step)
            finally:
                self.model.nets.train()
        metrics = self.dist.broadcast_object(metrics)
        scalars = {f"eval/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
        if self.dist.is_main:
            scalars["time/eval_s"] = self.evaluator.protocol["seconds"]
        self.logger.scalars(self.step, scalars)
        if self.dist.is_main:  # the protocol behind the numbers just logged (feature net, hashes, counts, seed)
            ckpt_io.write_json_atomic({"metrics": metrics, "protocol": self.evaluator.protocol}, self.run_dir / "eval_last.json")
        return metrics

    def _is_better(self, metrics: dict[str, float]) -> bool:
        key = (self.cfg.eval.monitor or "").removeprefix("eval/")
        if not key or not metrics:
            return False
        if key not in metrics:
            raise GantrainError(f"eval.monitor={key} is not among the computed metrics ({', '.join(metrics)}); pick one of them")
        value = float(metrics[key])
        old = self.best.get("value")
        better = old is None or (value < old if self.cfg.eval.mode == "min" else value > old)
        if better:
            self.best = {"value": value, "step": self.step, "metric": key}
        return better

    def _on_signal(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self._signal = signum

    def _check_finite(self, sums: dict[str, torch.Tensor], since: int, losses: dict[str, torch.Tensor]) -> None:
        """Raise on every rank together if any rank saw a non-finite loss since the last log step (a collective
        under torchrun). The running sums carry any inf/nan, so one reduction over them checks every step."""
        finite = not sums or bool(torch.stack(list(sums.values())).sum().isfinite())
        if not self.dist.any(not finite):
            return
        bad = {k: float(v) for k, v in losses.items()}
        where = f"step {self.step}" if since >= self.step - 1 else f"between steps {since + 1} and {self.step}"
        good = self._last_good or "none (no checkpoint was written yet)"
        raise NonFiniteLossError(
            f"non-finite loss {bad} at {where}; last good checkpoint: {good}. Lower optim.lr, use trainer.precision=32, "
            f"or set trainer.stop_on_nonfinite=false to continue"
        )

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        tcfg = self.cfg.trainer
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in handlers:
            signal.signal(s, self._on_signal)
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        # a CPU single process checks every step (no device sync to avoid); ranks agree only at log steps
        check_every_step = self.rt.device.type == "cpu" and self.dist.world == 1
        last_log_time, last_log_step, last_check = time.perf_counter(), self.step, self.step
        metrics: dict[str, float] = {}
        if self.dist.is_main:
            log.info(
                "training %s on %s: %d steps (%d per epoch), device %s, precision %s, run dir %s",
                self.cfg.model.name, self.info.name, self.total_steps, self.steps_per_epoch,
                self.rt.device, self.rt.precision, self.run_dir,
            )
        bar = tqdm(
            total=self.total_steps, initial=self.step, disable=None if tcfg.progress_bar and self.dist.is_main else True,
            dynamic_ncols=True, leave=False,
        )
        try:
            while self.step < self.total_steps:
                self.dist.set_epoch(self.epoch)
                for batch in self.stream.epoch(self.epoch, self.batch_in_epoch):
                    if self.rt.channels_last:
                        batch = {k: self.rt.input(v) for k, v in batch.items()}
                    losses = self.model.train_step(batch, self.step)
                    self.dist.sync_buffers(self.model.nets)
                    self.step += 1
                    self.batch_in_epoch += 1
                    self.images_seen += self.cfg.data.batch_size * self.dist.world
                    with warnings.catch_warnings():  # a G not stepped yet (d_steps > 1) is expected
                        warnings.simplefilter("ignore", UserWarning)
                        for sched in self.schedulers.values():
                            sched.step()
                    if self.ema is not None:
                        self.ema.update(self.model.nets, self.step)
                    _accumulate(sums, counts, losses)
                    if tcfg.stop_on_nonfinite and check_every_step:
                        self._check_finite(sums, last_check, losses)
                        last_check = self.step
                    bar.update(1)
                    done = self.step >= self.total_steps
                    at_log = self.step % tcfg.log_every == 0 or done
                    if at_log:
                        if tcfg.stop_on_nonfinite:
                            self._check_finite(sums, last_check, losses)
                            last_check = self.step
                        now = time.perf_counter()
                        values = self._read_means(sums, counts)
                        rate = (self.step - last_log_step) / max(now - last_log_time, 1e-9)
                        values.update({f"lr/{n}": s.get_last_lr()[0] for n, s in self.schedulers.items()})
                        values["speed/steps_per_s"] = rate
                        values["speed/images_per_s"] = rate * self.cfg.data.batch_size * self.dist.world
                        values["epoch"] = self.epoch
                        self.logger.scalars(self.step, values)
                        bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in values.items() if k.startswith("loss/")})
                        sums, counts = {}, {}
                        last_log_time, last_log_step = now, self.step
                    if tcfg.sample_every and self.step % tcfg.sample_every == 0 and not done:
                        self.log_samples()
                    best = False
                    at_end = self.cfg.eval.at_end and self.eval_enabled
                    if self.cfg.eval.every and self.step % self.cfg.eval.every == 0 and not (done and at_end):
                        metrics = self.evaluate()
                        best = self._is_better(metrics)
                    if (tcfg.ckpt_every and self.step % tcfg.ckpt_every == 0 and not done) or best:
                        if tcfg.stop_on_nonfinite:
                            self._check_finite(sums, last_check, losses)
                        self.save(also_best=best)
                    # under torchrun ranks may get a signal at different steps: they agree at log steps
                    stop = self._signal is not None if self.dist.world == 1 else at_log and self.dist.any(self._signal is not None)
                    if stop:
                        path = self.save()
                        raise TrainingInterrupted(self._signal or signal.SIGTERM, path or self.ckpt_dir)
                    if done:
                        break
                else:
                    self.epoch += 1
                    self.batch_in_epoch = 0
                    continue
                break
            bar.close()
            self.log_samples()
            if self.cfg.eval.at_end and self.eval_enabled:
                metrics = self.evaluate()
            best = self._is_better(metrics)
            self.save(also_best=best)
            if self.dist.is_main:
                self.logger.hparams(OmegaConf.to_container(self.cfg, resolve=True), metrics)
                log.info("finished at step %d; checkpoint %s", self.step, self.ckpt_dir / "last.pt")
            return metrics
        finally:
            bar.close()
            self.logger.close()
            for s, h in handlers.items():
                signal.signal(s, h)

    def _read_means(self, sums: dict[str, torch.Tensor], counts: dict[str, int]) -> dict[str, float]:
        if not sums:
            return {}
        names = list(sums)
        means = torch.stack([sums[k].float() / counts[k] for k in names])
        means = self.dist.all_reduce_mean(means)
        # plain names are losses; names with a slash (e.g. "acc/D_class_real") keep their own section
        return {(k if "/" in k else f"loss/{k}"): v for k, v in zip(names, means.tolist())}


def _accumulate(sums: dict[str, torch.Tensor], counts: dict[str, int], losses: dict[str, torch.Tensor]) -> None:
    """Add this step's losses to the running sums in one multi-tensor kernel (the sums stay on the device)."""
    old = [k for k in losses if k in sums]
    if old:
        torch._foreach_add_([sums[k] for k in old], [losses[k].float() for k in old])
    for k, v in losses.items():
        if k not in sums:
            sums[k] = v.detach().float().clone()
        counts[k] = counts.get(k, 0) + 1


def _keep_kernel_flags(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's optimiser state with this run's kernel choices (fused, foreach, capturable): a CPU
    checkpoint resumed on CUDA keeps fused Adam, and torch then places the step counters to match."""
    flags = ("fused", "foreach", "capturable")
    groups = [{**saved, **{k: live[k] for k in flags if k in live}} for saved, live in zip(state["param_groups"], optimizer.param_groups)]
    return {**state, "param_groups": groups}
