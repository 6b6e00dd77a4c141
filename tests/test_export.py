"""gantrain-export: every family's generator matches PyTorch in onnxruntime and TorchScript (1e-4, fp32), fp16
exports stay within fp16's rounding of the fp32 generator, and the CLI's errors are one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import TINY, compose_cfg, run_cli
from gantrain.cli.export import export, export_spec
from gantrain.config.paths import config_dir
from gantrain.config.schema import validate_config
from gantrain.errors import GantrainError
from gantrain.runs import load_trained
from gantrain.trainer.trainer import Trainer

ort = pytest.importorskip("onnxruntime")
BASE = [o for o in TINY if not o.startswith(("model.", "data.batch_size", "trainer.max_steps"))] + ["trainer.max_steps=1"]
TWO = ["data=digits2negative", "data.batch_size=2", "model.ngf=4", "model.ndf=4"]
CUT = ["model.netG=resnet_2blocks", "model.nce_layers=[0,4,8]", "model.num_patches=8", "model.netF_nc=8"]
# in run order: "{name}" is the run directory of an earlier family, "{root}" the folder of all runs
FAMILIES = {
    "gan": ["model=gan", "data.image_size=16", "data.batch_size=8"],
    "dcgan": ["model=dcgan", "data.image_size=16", "model.ngf=4", "model.ndf=4", "model.z_dim=6", "data.batch_size=8",
              "trainer.ema.decay=0.9", "trainer.ema.bn_batches=2"],
    "cgan": ["model=cgan", "data.image_size=16", "model.ngf=4", "model.ndf=4", "data.batch_size=8"],
    "acgan": ["model=acgan", "data.image_size=16", "model.ngf=4", "model.ndf=4", "data.batch_size=8"],
    "gan_cls": ["model=gan_cls", "data=shapes", "data.root={root}/shapes", "data.num_train=48", "data.num_test=16",
                "data.image_size=16", "data.batch_size=8", "model.ngf=4", "model.ndf=4", "model.z_dim=8",
                "model.pretrain_steps=1", "model.pretrain_batch=16", "model.text_dim=16", "model.proj_dim=8",
                "model.word_dim=8", "model.bank_size=16"],
    "bigan": ["model=bigan", "data.image_size=16", "model.g_hidden=[32]", "model.e_hidden=[32]", "model.d_x_hidden=[32]",
              "model.d_z_hidden=[16]", "model.d_joint_hidden=[32]", "model.z_dim=8", "data.batch_size=8"],
    "latent_encoder": ["model=latent_encoder", "model.generator={dcgan}", "data.image_size=16", "model.ndf=4",
                       "data.batch_size=8", "trainer.ema.decay=0.9", "trainer.ema.bn_batches=0"],
    "cogan": ["model=cogan", "data=digits2negative", "data.image_size=16", "model.z_dim=8", "data.batch_size=8"],
    "cyclegan": ["model=cyclegan", *TWO, "model.netG=resnet_2blocks"],
    "dualgan": ["model=dualgan", *TWO, "model.netG=unet_32"],
    "discogan": ["model=discogan", *TWO],
    "unit": ["model=unit", *TWO, "model.n_res=1", "model.netD=basic"],
    "pix2pix": ["model=pix2pix", "data=edges2digits", "data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.netG=unet_32"],
    "cut": ["model=cut", *TWO, *CUT],
    "fastcut": ["model=fastcut", *TWO, *CUT],
}


def test_every_family_is_covered():
    assert set(FAMILIES) == {p.stem for p in (config_dir() / "model").glob("*.yaml")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One-step runs of every family (tiny nets), shared by the parity tests."""
    root = tmp_path_factory.mktemp("export_runs")
    out = {}
    for name, overrides in FAMILIES.items():
        cfg = validate_config(compose_cfg([o.format(root=root, **out) for o in [*overrides, *BASE]]))
        trainer = Trainer(cfg, root / name)
        trainer.setup()
        trainer.fit()
        out[name] = root / name
    return out


def _inputs(spec, batch: int, hw: tuple[int, int] | None, seed: int, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """Random inputs like the spec's example ones (images at `hw`), floats exactly representable in `dtype`."""
    g = torch.Generator().manual_seed(seed)
    made = {}
    for k, v in spec.inputs.items():
        shape = [batch, *v.shape[1:]]
        if hw is not None and v.dim() == 4:
            shape[2:] = hw
        if v.is_floating_point():
            made[k] = (torch.rand(shape, generator=g) * 2 - 1).to(dtype).float()
        else:
            made[k] = torch.randint(0, int(v.max()) + 1, shape, generator=g)
    return made


def _sizes(spec) -> list[tuple[int, int] | None]:
    """The example size and a second, non-square one (both multiples of the side multiple) for image inputs."""
    mult = spec.side_multiple
    if mult is None:
        return [None]
    side = max(mult, 4) * 4
    return [(side, side), (side + mult * 2, side + mult)]


def _outputs(fmt: str, path: Path, x: dict[str, torch.Tensor], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """The exported file's outputs on `x` (floats given in `dtype`), as torch tensors."""
    feed = {k: v.to(dtype) if v.is_floating_point() else v for k, v in x.items()}
    if fmt == "torchscript":
        with torch.no_grad():
            got = torch.jit.load(str(path))(*feed.values())
        return got if isinstance(got, tuple) else (got,)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return tuple(torch.from_numpy(o) for o in session.run(None, {k: v.numpy() for k, v in feed.items()}))


def _reference(family: str, runs) -> tuple:
    """(model, the PyTorch generator call export traces, whether the run kept EMA weights)."""
    model, nets, _, _ = load_trained(str(runs[family]), "cpu")
    return model, export_spec(model, nets if nets is not None else model.nets, None), nets is not None


@pytest.mark.parametrize("family", list(FAMILIES))
def test_onnx_and_torchscript_match_pytorch(family, runs, tmp_path):
    model, spec, ema = _reference(family, runs)
    metas = {fmt: export(str(runs[family]), fmt, tmp_path / f"g.{fmt}") for fmt in ("onnx", "torchscript")}
    for i, hw in enumerate(_sizes(spec)):
        x = _inputs(spec, 3, hw, i)
        with torch.no_grad():
            want = spec.fn(*x.values())
        want = want if isinstance(want, tuple) else (want,)
        for fmt in ("onnx", "torchscript"):
            got = _outputs(fmt, tmp_path / f"g.{fmt}", x, torch.float32)
            assert len(got) == len(want), (family, fmt)
            for w, o in zip(want, got):
                assert o.dtype == torch.float32 and (o - w).abs().max() < 1e-4, (family, fmt, hw)
    held = {name.split(".")[1] for name, _ in torch.jit.load(str(tmp_path / "g.torchscript")).named_parameters()}
    assert held and held <= {*model.generator_names, "G"}, held  # no discriminator, no CUT MLP heads
    meta = json.loads((tmp_path / "g.onnx.json").read_text())
    assert meta == metas["onnx"] and meta["family"] == family and meta["value_range"] == [-1, 1]
    assert meta["checkpoint_step"] == 1 and meta["side_multiple"] == spec.side_multiple
    assert meta["ema"] == ema and (ema or family not in ("dcgan", "latent_encoder"))


# fp16 keeps 11 significant bits: weights, inputs and every stored activation are rounded to a relative 2^-11
# (4.9e-4; an output near 1 is on a grid of 2^-10 = 9.8e-4). A few such roundings per layer over these nets'
# 3-12 layers, partly cancelling, give at most a few 1e-3 (measured: 3.1e-3 for unit in TorchScript, 1.9e-3 for
# cyclegan, 3e-4 or less for the others); 1e-2 (about ten fp16 steps at 1) holds that with margin, while a
# wrong graph (a missed layer, unconverted weights, a wrong input) is off by 0.1 to 1 on [-1, 1].
FP16_TOL = 1e-2


@pytest.mark.parametrize("family", list(FAMILIES))
def test_fp16_export_stays_within_fp16_rounding_of_fp32(family, runs, tmp_path):
    """Both formats run fp16 on the CPU (onnxruntime casts ops it has no fp16 kernel for to fp32 and back)."""
    _, spec, _ = _reference(family, runs)
    for fmt in ("onnx", "torchscript"):
        meta = export(str(runs[family]), fmt, tmp_path / f"h.{fmt}", fp16=True)
        assert meta["dtype"] == "float16" and {o["dtype"] for o in meta["outputs"]} == {"float16"}
        assert {i["dtype"] for i in meta["inputs"]} <= {"float16", "int64"}
    for i, hw in enumerate(_sizes(spec)):
        x = _inputs(spec, 3, hw, i, torch.float16)  # the same input values reach both
        with torch.no_grad():
            want = spec.fn(*x.values())
        want = want if isinstance(want, tuple) else (want,)
        for fmt in ("onnx", "torchscript"):
            for w, o in zip(want, _outputs(fmt, tmp_path / f"h.{fmt}", x, torch.float16), strict=True):
                assert o.dtype == torch.float16 and torch.isfinite(o).all(), (family, fmt)
                assert (o.float() - w).abs().max() < FP16_TOL, (family, fmt, hw, (o.float() - w).abs().max())
    weights = {t.dtype for t in torch.jit.load(str(tmp_path / "h.torchscript")).parameters()}
    assert weights == {torch.float16}


def test_errors_are_one_line(runs, tmp_path):
    with pytest.raises(GantrainError, match="one-directional"):
        export(str(runs["cut"]), "onnx", tmp_path / "g", direction="BtoA")
    with pytest.raises(GantrainError, match="--direction is for the two-domain"):
        export(str(runs["gan"]), "onnx", tmp_path / "g", direction="AtoB")
    with pytest.raises(GantrainError, match="this pix2pix run learnt AtoB only"):
        export(str(runs["pix2pix"]), "onnx", tmp_path / "g", direction="BtoA")


def _plugin_checkpoint(runs, tmp_path: Path, target: str) -> Path:
    """The gan run's checkpoint, its config naming `target` (a family defined by the test's plugin script)."""
    ckpt = torch.load(runs["gan"] / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    ckpt["config"]["model"]["_target_"] = target
    path = tmp_path / f"{target.rpartition('.')[2]}.pt"
    torch.save(ckpt, path)
    return path


PLUGIN = """
import sys
import torch
import gantrain.models.gan as gan
from gantrain.cli.export import main

class NoGenerator(gan.GAN):  # a family whose runs train no generator (e.g. only a discriminator)
    def __init__(self, cfg, info):
        super().__init__(cfg, info)
        del self.nets["G"]

class Styled(gan.GAN):  # a generator with an input gantrain-export cannot describe
    def fixed_inputs(self, n, generator):
        return {**super().fixed_inputs(n, generator), "style": torch.zeros(n, 2)}

gan.NoGenerator, gan.Styled = NoGenerator, Styled
main(sys.argv[1:])
"""


def test_cli_errors_are_one_line(runs, tmp_path):
    """Through the real command: an unknown format, a run with no checkpoint yet, a run without a generator, a
    family export cannot describe (the last two from families a plugin script adds: every built-in one exports)."""
    (tmp_path / "plugin.py").write_text(PLUGIN)
    (tmp_path / "fresh" / "checkpoints").mkdir(parents=True)
    out = ["--format", "onnx", "--out", str(tmp_path / "x.onnx")]
    no_g, styled = (str(_plugin_checkpoint(runs, tmp_path, f"gantrain.models.gan.{c}")) for c in ("NoGenerator", "Styled"))
    cases = {
        "unknown --format 'tflite'; choose one of: onnx, torchscript":
            ["gantrain.cli.export", str(runs["gan"]), *out, "--format", "tflite"],
        "no checkpoints in": ["gantrain.cli.export", str(tmp_path / "fresh"), *out],
        "holds no generator G: nothing to export": ["plugin", no_g, *out],
        "generator takes style, z, which gantrain-export cannot describe": ["plugin", styled, *out],
    }
    for message, args in cases.items():
        res = run_cli(args, cwd=tmp_path)  # `-m plugin` runs tmp_path/plugin.py
        errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
        assert res.returncode == 2 and len(errors) == 1 and message in errors[0], (message, res.stderr[-2000:])
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_direction_and_fp16(runs, tmp_path):
    meta = export(str(runs["cyclegan"]), "torchscript", tmp_path / "ba.pt", direction="BtoA", fp16=True)
    assert (meta["direction"], meta["dtype"]) == ("BtoA", "float16")
    net = torch.jit.load(str(tmp_path / "ba.pt"))
    assert next(net.parameters()).dtype == torch.float16
