"""What a CPU can show of the GPU path: every precision, compile, channels-last, syncs per step, one-rank BatchNorm,
precision selection, optimiser kernel flags on resume, and the acceptance script itself."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from gantrain import runs
from gantrain.errors import GantrainError
from gantrain.models.base import GANModel
from gantrain import runtime
from gantrain.trainer.distributed import DistEnv
from gantrain.trainer.state import keep_kernel_flags
from gantrain.trainer.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("acceptance", ROOT / "scripts" / "acceptance.py")
acceptance = importlib.util.module_from_spec(_spec)
sys.modules["acceptance"] = acceptance
_spec.loader.exec_module(acceptance)

RUN = ["trainer.device=cpu", "trainer.num_threads=1", "trainer.log_every=2", "trainer.sample_every=0",
       "trainer.ckpt_every=0", "eval.metrics=[]", "eval.at_end=false", *acceptance.COMMON]


def cfg_for(family: str, extra: list[str] = ()):
    return acceptance.compose(acceptance.FAMILIES[family] + acceptance.QUICK[family] + RUN + list(extra))


def fit(cfg, run_dir: Path, resume: Path | None = None) -> Trainer:
    trainer = Trainer(cfg, run_dir)
    trainer.setup(runs.load_checkpoint(resume) if resume else None)
    trainer.fit()
    return trainer


def logged_losses(run_dir: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        out.update({k: v for k, v in json.loads(line).items() if k.startswith("loss/")})
    return out


@pytest.fixture(scope="module")
def generator_run(tmp_path_factory) -> Path:
    """A 2-step DCGAN for latent_encoder to encode."""
    run = tmp_path_factory.mktemp("generator")
    fit(cfg_for("dcgan", ["trainer.max_steps=2"]), run)
    return run


@pytest.mark.parametrize("precision", acceptance.PRECISIONS)
@pytest.mark.parametrize("family", list(acceptance.FAMILIES))
def test_every_family_trains_at_every_precision(family, precision, tmp_path, generator_run):
    extra = [f"trainer.precision={precision}", "trainer.max_steps=2"]
    if family == "latent_encoder":
        extra.append(f"model.generator={generator_run}")
    trainer = fit(cfg_for(family, extra), tmp_path)
    assert trainer.rt.precision == precision
    losses = logged_losses(tmp_path)
    assert losses and all(math.isfinite(v) for v in losses.values()), losses


def test_fp16_resume_is_exact_with_the_scaler_state(tmp_path):
    extra = ["trainer.precision=16", "trainer.ema.decay=0.9"]
    full = fit(cfg_for("dcgan", extra + ["trainer.max_steps=4"]), tmp_path / "full")
    fit(cfg_for("dcgan", extra + ["trainer.max_steps=2", "trainer.ckpt_every=2"]), tmp_path / "half")
    ckpt = tmp_path / "half" / "checkpoints" / "last.pt"
    assert set(runs.load_checkpoint(ckpt)["scalers"]) == {"G", "D"}
    resumed = fit(cfg_for("dcgan", extra + ["trainer.max_steps=4"]), tmp_path / "half", resume=ckpt)
    assert acceptance.state_equal(full, resumed)
    assert full.rt.scalers["D"].get_scale() == resumed.rt.scalers["D"].get_scale()


@pytest.mark.parametrize("family", ["gan", "dcgan", "cgan", "acgan"])
def test_wgangp_alias_keeps_the_gradient_penalty(family, tmp_path, monkeypatch):
    calls = []
    original = GANModel.gradient_penalty

    def counted(self, *args):
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(GANModel, "gradient_penalty", counted)
    fit(cfg_for(family, ["model.loss=wgangp", "trainer.max_steps=1", "trainer.log_every=1"]
                + (["model.norm_D=none"] if family != "gan" else [])), tmp_path)
    assert calls == [1]


def test_fp16_wgan_gp_trains_with_finite_losses(tmp_path):
    fit(cfg_for("dcgan", ["model.loss=wgan-gp", "model.norm_D=none", "trainer.precision=16", "trainer.max_steps=4"]), tmp_path)
    losses = logged_losses(tmp_path)
    assert all(math.isfinite(v) for v in losses.values()) and "loss/D" in losses


def test_compile_with_a_gradient_penalty_keeps_the_critic_eager(tmp_path):
    trainer = fit(cfg_for("dcgan", ["trainer.compile=true", "model.loss=wgan-gp", "model.norm_D=none",
                                    "trainer.max_steps=3"]), tmp_path)
    assert trainer.model.nets["G"]._compiled_call_impl is not None
    assert trainer.model.nets["D"]._compiled_call_impl is None
    assert all(math.isfinite(v) for v in logged_losses(tmp_path).values())


def test_compile_trains_a_translation_family(tmp_path, monkeypatch):
    """Graph capture and AOT autograd of pix2pix (inductor's CPU code generation would take minutes on this
    machine, so the backend is aot_eager here; the acceptance run compiles with inductor)."""
    compile_module = nn.Module.compile
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: compile_module(self, backend="aot_eager"))
    fit(cfg_for("pix2pix", ["trainer.compile=true", "trainer.max_steps=3"]), tmp_path)
    assert all(math.isfinite(v) for v in logged_losses(tmp_path).values())


@pytest.mark.parametrize("family", ["dcgan", "cyclegan"])
def test_channels_last_trains(family, tmp_path):
    trainer = fit(cfg_for(family, ["trainer.channels_last=true", "trainer.max_steps=2"]), tmp_path)
    conv = next(m for m in trainer.model.nets.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(math.isfinite(v) for v in logged_losses(tmp_path).values())


@pytest.mark.parametrize("family,precision", [("dcgan", "32"), ("dcgan", "bf16"), ("cyclegan", "32"), ("pix2pix", "32"),
                                              ("acgan", "32")])
def test_no_host_reads_in_steps_outside_log_steps(family, precision, tmp_path):
    """`.item()`, `.tolist()`, `bool()`, `float()` on tensors sync a GPU: none may run between log steps."""
    trainer = Trainer(cfg_for(family, [f"trainer.precision={precision}", "trainer.max_steps=6", "trainer.log_every=6"]), tmp_path)
    trainer.setup()
    counter = acceptance.SyncCounter(torch.device("cpu"))
    plain = acceptance.count_step_syncs(trainer, counter)
    with counter.installed():
        trainer.fit()
    assert len(plain) == 5 and sum(plain) == 0, plain


def test_sync_counter_counts_host_reads():
    counter = acceptance.SyncCounter(torch.device("cpu"))
    with counter.installed():
        counter.on = True
        x = torch.ones(2)
        x.sum().item(), bool(x.all()), x.tolist()
    assert counter.count == 3


class ConvertingDist(DistEnv):
    """A single process that converts BatchNorm as a torchrun job with trainer.sync_batchnorm=true would."""

    def convert_sync_batchnorm(self, nets, device):
        nn.SyncBatchNorm.convert_sync_batchnorm(nets)


def test_single_rank_nets_keep_plain_batch_norm(tmp_path):
    def has_sync(module):
        return any(isinstance(m, nn.SyncBatchNorm) for m in module.modules())

    trainer = Trainer(cfg_for("dcgan", ["trainer.sync_batchnorm=true", "trainer.ema.decay=0.9", "trainer.max_steps=1"]),
                      tmp_path / "dcgan", ConvertingDist())
    trainer.setup()
    assert has_sync(trainer.model.nets) and not has_sync(trainer.ema.nets)
    trainer.refresh_ema()  # SyncBatchNorm has no CPU kernel: this would raise on a SyncBatchNorm
    pix = Trainer(cfg_for("pix2pix", ["trainer.sync_batchnorm=true", "trainer.max_steps=1"]), tmp_path / "pix", ConvertingDist())
    pix.setup()
    assert has_sync(pix.model.nets["G"])
    grids = pix.model.sample_grids(pix.fixed)  # the paper's train-mode inference, on plain BatchNorm
    assert torch.isfinite(grids["output"]).all()


def test_precision_auto_and_fp16_on_cpu(monkeypatch):
    cpu = torch.device("cpu")
    assert runtime.resolve_precision("16", cpu) == "16"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.resolve_precision("auto", cpu) == "32"


def test_backend_settings_are_recorded_and_checked(tmp_path):
    fit(cfg_for("dcgan", ["trainer.max_steps=1", "trainer.ckpt_every=1"]), tmp_path)
    config = runs.load_checkpoint(tmp_path / "checkpoints" / "last.pt")["config"]["trainer"]
    assert config["matmul_precision"] == "high" and config["cudnn_benchmark"] is True
    with pytest.raises(GantrainError, match="matmul_precision"):
        runtime.apply_backend_settings(torch.device("cpu"), True, "fastest", False)


def test_resume_keeps_this_runs_fused_adam():
    p = nn.Parameter(torch.randn(3))
    plain = torch.optim.Adam([p])
    p.grad = torch.ones(3)
    plain.step()
    fused = torch.optim.Adam([p], fused=True)
    fused.load_state_dict(keep_kernel_flags(fused, plain.state_dict()))
    assert fused.param_groups[0]["fused"] is True
    fused.step()


def test_acceptance_script_quick_on_cpu(tmp_path):
    out = tmp_path / "acceptance.json"
    code = acceptance.main(["--device", "cpu", "--quick", "--families", "gan,pix2pix", "--precisions", "32",
                            "--no-benchmark", "--out", str(out), "--workdir", str(tmp_path / "runs")])
    result = json.loads(out.read_text())
    assert code == 0, [c.get("error") for c in result["cells"]]
    assert [(c["family"], c["precision"], c["status"]) for c in result["cells"]] == [("gan", "32", "ok"), ("pix2pix", "32", "ok")]
    gan = result["cells"][0]
    assert gan["eval"] and gan["clis"] == ["sample", "eval"] and gan["resume_exact"] and gan["syncs_per_step"] == 0
    assert result["cells"][1]["clis"] == ["translate"]
