"""The generic trainer: exact resume, atomic checkpoints, fallbacks, signals, non-finite losses."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from conftest import TINY, compose_cfg
from gantrain import runs
from gantrain.config.schema import validate_config
from gantrain.data.base import InMemoryImages
from gantrain.data.loader import make_batch_stream
from gantrain.errors import GantrainError, NonFiniteLossError
from gantrain.trainer.signals import TrainingInterrupted
from gantrain.trainer.trainer import Trainer


def train(cfg, run_dir: Path, resume: Path | None = None) -> Trainer:
    cfg = validate_config(cfg)
    trainer = Trainer(cfg, run_dir)
    ckpt = runs.load_newest_valid(resume)[1] if resume else None
    trainer.setup(ckpt)
    trainer.fit()
    return trainer


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for name in a.model.nets:
        sa, sb = a.model.nets[name].state_dict(), b.model.nets[name].state_dict()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{name}.{key} differs"
    for name in a.model.optimizers:
        oa, ob = a.model.optimizers[name].state_dict()["state"], b.model.optimizers[name].state_dict()["state"]
        for idx in oa:
            for key, value in oa[idx].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(ob[idx][key]))


@pytest.mark.parametrize("loss,augment", [("bce", ""), ("wgan-gp", ""), ("bce", "color,translation,cutout")])
def test_resume_gives_bitwise_identical_weights(tiny_cfg, tmp_path, loss, augment):
    extra = [f"model.loss={loss}", f"model.augment='{augment}'", "model.norm_D=none", "model.d_steps=2", "trainer.ema.decay=0.9"]
    full = train(tiny_cfg(extra + ["trainer.max_steps=8"]), tmp_path / "full")
    half = train(tiny_cfg(extra + ["trainer.max_steps=4"]), tmp_path / "half")
    assert half.progress.step == 4
    resumed = train(tiny_cfg(extra + ["trainer.max_steps=8"]), tmp_path / "half", resume=tmp_path / "half")
    assert resumed.progress.step == 8
    assert_same_state(full, resumed)
    for name in full.ema.nets:
        for k, v in full.ema.nets[name].state_dict().items():
            assert torch.equal(v, resumed.ema.nets[name].state_dict()[k])


def test_resume_across_epoch_boundary(tiny_cfg, tmp_path):
    # digits train split: 1437 images -> 89 batches of 16; stop mid-epoch 2
    full = train(tiny_cfg(["trainer.max_steps=100", "trainer.ckpt_every=0", "model.ngf=4", "model.ndf=4"]), tmp_path / "a")
    train(tiny_cfg(["trainer.max_steps=93", "trainer.ckpt_every=0", "model.ngf=4", "model.ndf=4"]), tmp_path / "b")
    resumed = train(tiny_cfg(["trainer.max_steps=100", "model.ngf=4", "model.ndf=4"]), tmp_path / "b", resume=tmp_path / "b")
    assert resumed.progress.epoch == full.progress.epoch == 1
    assert_same_state(full, resumed)


def test_checkpoint_holds_everything(tiny_cfg, tmp_path):
    train(tiny_cfg(["trainer.keep_last=2", "trainer.max_steps=8"]), tmp_path)
    folder = tmp_path / "checkpoints"
    assert [p.name for p in runs.snapshots(folder)] == ["step_0000008.pt", "step_0000006.pt"]
    ckpt = runs.load_checkpoint(folder / "last.pt")
    assert ckpt["step"] == 8 and ckpt["model_name"] == "dcgan"
    for key in ("nets", "optimizers", "schedulers", "rng", "config", "data_info", "batch_in_epoch", "gantrain_version"):
        assert key in ckpt
    assert set(ckpt["nets"]) == {"G", "D"}
    assert not list(folder.glob("*.tmp"))


def test_truncated_checkpoint_falls_back_to_older_snapshot(tiny_cfg, tmp_path, caplog):
    train(tiny_cfg(["trainer.max_steps=6"]), tmp_path)
    folder = tmp_path / "checkpoints"
    newest = folder / "step_0000006.pt"
    data = newest.read_bytes()
    (folder / "last.pt").unlink()
    newest.write_bytes(data[: len(data) // 2])
    path, ckpt = runs.load_newest_valid(tmp_path)
    assert path.name == "step_0000004.pt" and ckpt["step"] == 4
    with pytest.raises(GantrainError, match="cannot be read"):
        runs.load_newest_valid(newest)


def test_checkpoint_from_another_model_is_refused(tiny_cfg, tmp_path):
    train(tiny_cfg(), tmp_path / "dcgan")
    cfg = validate_config(compose_cfg([o for o in TINY if not o.startswith("model.")] + ["model=gan"]))
    trainer = Trainer(cfg, tmp_path / "gan")
    with pytest.raises(GantrainError, match="model=dcgan"):
        trainer.setup(runs.load_newest_valid(tmp_path / "dcgan")[1])


def test_checkpoint_cannot_run_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": runs.FORMAT, "x": Evil()}))
    with pytest.raises(GantrainError, match="cannot be read"):
        runs.load_checkpoint(path)


def test_sigterm_saves_and_reports(tiny_cfg, tmp_path):
    cfg = validate_config(tiny_cfg(["trainer.max_steps=50", "trainer.ckpt_every=0"]))
    trainer = Trainer(cfg, tmp_path)
    trainer.setup()
    step = trainer.model.train_step

    def step_then_signal(batch, i):
        if i == 2:
            trainer.signals.handle(signal.SIGTERM, None)
        return step(batch, i)

    trainer.model.train_step = step_then_signal
    with pytest.raises(TrainingInterrupted) as info:
        trainer.fit()
    assert info.value.signum == signal.SIGTERM
    assert runs.load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 3


def test_nonfinite_loss_stops_with_step_and_checkpoint(tiny_cfg, tmp_path):
    cfg = validate_config(tiny_cfg(["trainer.max_steps=10"]))
    trainer = Trainer(cfg, tmp_path)
    trainer.setup()
    step = trainer.model.train_step

    def poisoned(batch, i):
        out = step(batch, i)
        if i == 4:
            out["D"] = torch.tensor(float("nan"))
        return out

    trainer.model.train_step = poisoned
    with pytest.raises(NonFiniteLossError, match=r"step 5.*step_0000004\.pt"):
        trainer.fit()


def test_linear_decay_schedule_reaches_zero(tiny_cfg, tmp_path):
    t = train(tiny_cfg(["optim.schedule=linear_decay", "optim.decay_steps=2"]), tmp_path)
    assert t.schedulers["G"].get_last_lr()[0] == pytest.approx(0.0)


def test_cross_epoch_batches_resume_mid_epoch():
    """The loop's one iterator: (epoch, index, batch) across epochs, the per-epoch batches in order, from any position."""
    data = InMemoryImages(torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1).expand(12, 1, 2, 2).contiguous(),
                          torch.arange(12))
    stream = make_batch_stream(data, batch_size=4, seed=3, device=torch.device("cpu"))
    per_epoch = [(e, i, b["label"].tolist()) for e in range(3) for i, b in enumerate(stream.epoch(e))]
    batches = stream.batches()
    assert [(e, i, b["label"].tolist()) for e, i, b in (next(batches) for _ in range(9))] == per_epoch
    resumed = stream.batches(1, 3)  # an epoch's end (3 of 3 batches done): the next batch opens epoch 2
    assert [(e, i, b["label"].tolist()) for e, i, b in (next(resumed) for _ in range(2))] == per_epoch[6:8]
    mid = stream.batches(0, 2)
    assert [(e, i) for e, i, _ in (next(mid) for _ in range(2))] == [(0, 2), (1, 0)]


def test_state_dict_only_reads(tiny_cfg, tmp_path):
    """`state_dict()` runs no generator: stale EMA batch-norm statistics stay as they are until `refresh_ema`."""
    trainer = Trainer(validate_config(tiny_cfg(["trainer.ema.decay=0.9", "trainer.ema.bn_batches=2"])), tmp_path)
    trainer.setup()
    trainer.ema.update(trainer.model.nets, 1)
    before = {k: v.clone() for k, v in trainer.ema.nets["G"].state_dict().items()}
    calls = []
    trainer.model.sample_grids = lambda *args: calls.append(args)
    state = trainer.state_dict()
    assert not calls and trainer.ema.stale
    assert all(torch.equal(v, state["ema"]["G"][k]) for k, v in before.items())
    trainer.refresh_ema()
    assert len(calls) == 2 and not trainer.ema.stale
