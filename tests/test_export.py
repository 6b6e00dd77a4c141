"""gantrain-export: every family's generator matches PyTorch in onnxruntime and TorchScript (1e-4, fp32)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY, compose_cfg, run_cli
from gantrain.cli.export import export, export_spec
from gantrain.config.schema import validate_config
from gantrain.errors import GantrainError
from gantrain.runs import load_trained
from gantrain.trainer.trainer import Trainer

ort = pytest.importorskip("onnxruntime")
BASE = [o for o in TINY if not o.startswith(("model.", "data.batch_size", "trainer.max_steps"))] + ["trainer.max_steps=1"]
TWO = ["data=digits2negative", "data.batch_size=2", "model.ngf=4", "model.ndf=4"]
FAMILIES = {
    "gan": ["model=gan", "data.image_size=16", "data.batch_size=8"],
    "dcgan": ["model=dcgan", "data.image_size=16", "model.ngf=4", "model.ndf=4", "model.z_dim=6", "data.batch_size=8"],
    "cgan": ["model=cgan", "data.image_size=16", "model.ngf=4", "model.ndf=4", "data.batch_size=8"],
    "acgan": ["model=acgan", "data.image_size=16", "model.ngf=4", "model.ndf=4", "data.batch_size=8"],
    "bigan": ["model=bigan", "data.image_size=16", "model.g_hidden=[32]", "model.e_hidden=[32]", "model.d_x_hidden=[32]",
              "model.d_z_hidden=[16]", "model.d_joint_hidden=[32]", "model.z_dim=8", "data.batch_size=8"],
    "cogan": ["model=cogan", "data=digits2negative", "data.image_size=16", "model.z_dim=8", "data.batch_size=8"],
    "cyclegan": ["model=cyclegan", *TWO, "model.netG=resnet_2blocks"],
    "dualgan": ["model=dualgan", *TWO, "model.netG=unet_32"],
    "discogan": ["model=discogan", *TWO],
    "unit": ["model=unit", *TWO, "model.n_res=1", "model.netD=basic"],
    "pix2pix": ["model=pix2pix", "data=edges2digits", "data.batch_size=2", "model.ngf=4", "model.ndf=4", "model.netG=unet_32"],
    "cut": ["model=cut", *TWO, "model.netG=resnet_2blocks", "model.nce_layers=[0,4,8]", "model.num_patches=8",
            "model.netF_nc=8"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One-step runs of every family (tiny nets), shared by the parity tests."""
    root = tmp_path_factory.mktemp("export_runs")
    out = {}
    for name, overrides in FAMILIES.items():
        cfg = validate_config(compose_cfg([*overrides, *BASE]))
        trainer = Trainer(cfg, root / name)
        trainer.setup()
        trainer.fit()
        out[name] = root / name
    return out


def _inputs(spec, batch: int, side: int | None, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    made = {}
    for k, v in spec.inputs.items():
        shape = [batch, *v.shape[1:]]
        if side is not None and v.dim() == 4:
            shape[2:] = [side, side]
        if v.is_floating_point():
            made[k] = torch.rand(shape, generator=g) * 2 - 1
        else:
            made[k] = torch.randint(0, int(v.max()) + 1, shape, generator=g)
    return made


@pytest.mark.parametrize("family", list(FAMILIES))
def test_onnx_and_torchscript_match_pytorch(family, runs, tmp_path):
    model, nets, _, _ = load_trained(str(runs[family]), "cpu")
    spec = export_spec(model, nets if nets is not None else model.nets, None)
    metas = {fmt: export(str(runs[family]), fmt, tmp_path / f"g.{fmt}") for fmt in ("onnx", "torchscript")}
    scripted = torch.jit.load(str(tmp_path / "g.torchscript"))
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    mult = spec.side_multiple
    sizes = [None] if mult is None else [max(mult, 4) * 4, max(mult, 4) * 4 + mult * 2]  # two spatial sizes
    for i, side in enumerate(sizes):
        x = _inputs(spec, 3, side, i)
        with torch.no_grad():
            want = spec.fn(*x.values())
            got_ts = scripted(*x.values())
        want = want if isinstance(want, tuple) else (want,)
        got_ts = got_ts if isinstance(got_ts, tuple) else (got_ts,)
        got_ort = session.run(None, {k: v.numpy() for k, v in x.items()})
        assert len(want) == len(got_ts) == len(got_ort)
        for w, t, o in zip(want, got_ts, got_ort):
            assert (t - w).abs().max() < 1e-4 and np.abs(o - w.numpy()).max() < 1e-4, (family, side)
    meta = json.loads((tmp_path / "g.onnx.json").read_text())
    assert meta == metas["onnx"] and meta["family"] == family and meta["value_range"] == [-1, 1]
    assert meta["checkpoint_step"] == 1 and meta["side_multiple"] == mult


def test_errors_are_one_line(runs, tmp_path):
    with pytest.raises(GantrainError, match="unknown --format 'tflite'"):
        export(str(runs["gan"]), "tflite", tmp_path / "g")
    with pytest.raises(GantrainError, match="one-directional"):
        export(str(runs["cut"]), "onnx", tmp_path / "g", direction="BtoA")
    with pytest.raises(GantrainError, match="--direction is for the two-domain"):
        export(str(runs["gan"]), "onnx", tmp_path / "g", direction="AtoB")
    model, _, _, _ = load_trained(str(runs["gan"]), "cpu")
    del model.nets["G"]
    with pytest.raises(GantrainError, match="holds no generator G"):
        export_spec(model, model.nets, None)
    res = run_cli(["gantrain.cli.export", str(tmp_path / "nothing"), "--format", "onnx", "--out", str(tmp_path / "x")],
                  cwd=tmp_path)
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert res.returncode == 2 and len(errors) == 1 and "Traceback" not in res.stderr


def test_direction_and_fp16(runs, tmp_path):
    meta = export(str(runs["cyclegan"]), "torchscript", tmp_path / "ba.pt", direction="BtoA", fp16=True)
    assert (meta["direction"], meta["dtype"]) == ("BtoA", "float16")
    net = torch.jit.load(str(tmp_path / "ba.pt"))
    assert next(net.parameters()).dtype == torch.float16
