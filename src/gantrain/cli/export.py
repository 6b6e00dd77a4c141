"""`gantrain-export RUN_DIR_OR_CHECKPOINT --format onnx|torchscript --out FILE`: ship a trained generator.

Exports the generator gantrain-sample / gantrain-translate would use (the EMA copy when the run kept one;
`--no-ema` for the raw weights; `--direction` for the two-domain families), traced with a dynamic batch and,
for image-to-image generators, dynamic height and width. Conditional families take `label` (int64 class
indices), gan_cls a text embedding `emb`; CoGAN returns its two images; a latent_encoder run exports the
generator it inverts (z -> image). fp32 by default, `--fp16` on request (weights, inputs and outputs in
float16). Only the nets the call runs are exported (no discriminators, no CUT MLP heads). A JSON beside FILE
(`FILE.json`) records what a caller needs: family, inputs and outputs with their shapes and dtypes, value
range, channels, the side multiple, the gantrain version and the checkpoint step. pix2pix is exported in eval
mode (no dropout, batch-norm running statistics), not its default `test_mode: train`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn as nn

from gantrain import __version__
from gantrain.cli.common import one_line_errors, setup_logging
from gantrain.errors import GantrainError
from gantrain.runs import load_trained

if TYPE_CHECKING:
    from gantrain.models.base import GANModel

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 17


@dataclass
class ExportSpec:
    """What to trace: a function of named example inputs, and how to describe it."""

    fn: Callable[..., Any]
    inputs: dict[str, torch.Tensor]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]]  # input name -> {axis: symbolic name}
    channels: int
    side_multiple: int | None  # None: the input is not an image


class Exported(nn.Module):
    """The nets the family's call runs, as submodules (so tracing sees their weights), around that call.

    Outputs are cast to `dtype`: the families' calls return float32, which would undo `--fp16` at the end."""

    def __init__(self, nets: nn.ModuleDict, fn: Callable[..., Any], dtype: torch.dtype) -> None:
        super().__init__()
        self.nets = nets
        self.fn = fn
        self.dtype = dtype

    def forward(self, *xs: torch.Tensor):
        out = self.fn(*xs)
        if isinstance(out, tuple):
            return tuple(o.to(self.dtype) for o in out)
        return out.to(self.dtype)


def called_nets(fn: Callable[..., Any], inputs: tuple[torch.Tensor, ...], *pools: nn.ModuleDict) -> nn.ModuleDict:
    """The nets of `pools` that `fn(*inputs)` runs, by name: the export holds their weights and no others.

    Several pools because a family may call its own copy of a frozen net (latent_encoder's G) beside the
    sampling (EMA) copies of the trained ones."""
    called: dict[str, nn.Module] = {}

    def seen(name: str, net: nn.Module) -> Callable[..., None]:
        def hook(*_: Any) -> None:  # returns None: the inputs stay as they are
            called.setdefault(name, net)

        return hook

    hooks = [m.register_forward_pre_hook(seen(name, net)) for pool in pools for name, net in pool.items()
             for m in net.modules()]
    try:
        with torch.no_grad():
            fn(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return nn.ModuleDict(called)


def export_spec(model: GANModel, nets: nn.ModuleDict, direction: str | None) -> ExportSpec:
    """The family's generator call and example inputs; a GantrainError for what cannot be exported."""
    from gantrain.models.conditional import ConditionalGANModel
    from gantrain.models.gan_cls import GANCLS
    from gantrain.models.pix2pix import Pix2Pix

    name = model.cfg.name
    missing = [g for g in model.generator_names if g not in nets]
    if missing:
        raise GantrainError(f"the run (model={name}) holds no generator {missing[0]}: nothing to export")
    info = model.info
    if hasattr(model, "translate"):  # image -> image
        if isinstance(model, Pix2Pix):
            direction = direction or model.direction
            if direction != model.direction:
                model.translate(torch.zeros(0), direction, nets)  # the family's one-line error
            G = nets["G"]
            (c_in, c_out), mult = G_channels(G), model.size_multiple(direction)
            fn = G.__call__  # eval mode: no dropout, running statistics
        else:
            direction = direction or "AtoB"
            model.check_direction(direction)
            mult = model.size_multiple(direction)
            c_in, c_out = ((model.channels_A, model.channels_B) if direction == "AtoB" else (model.channels_B, model.channels_A))
            fn = lambda x: model.translate(x, direction, nets)  # noqa: E731
        side = max(mult, 4) * 4
        return ExportSpec(fn, {"image": torch.rand(2, c_in, side, side) * 2 - 1}, ["output"],
                          {"image": {0: "batch", 2: "height", 3: "width"}}, c_out, mult)
    if direction is not None:
        raise GantrainError(f"--direction is for the two-domain translation families; model={name} has one generator")
    if isinstance(model, GANCLS):  # its fixed inputs come from the caption bank; any embedding will do here
        z = model.sample_z(2, torch.Generator().manual_seed(0), torch.device("cpu"))
        emb = torch.randn(2, model.cfg.text_dim)
        return ExportSpec(lambda z, e: model.generate({"z": z, "emb": e}, nets), {"z": z, "emb": emb}, ["image"],
                          {"z": {0: "batch"}, "emb": {0: "batch"}}, info.channels, None)
    fixed = model.fixed_inputs(2, torch.Generator().manual_seed(0))
    if isinstance(model, ConditionalGANModel):
        label = torch.tensor([0, max(model.num_classes - 1, 0)])
        return ExportSpec(lambda z, y: model.generate({"z": z, "label": y}, nets), {"z": fixed["z"], "label": label},
                          ["image"], {"z": {0: "batch"}, "label": {0: "batch"}}, info.channels, None)
    if set(fixed) != {"z"}:
        raise GantrainError(f"model={name}'s generator takes {', '.join(sorted(fixed))}, which gantrain-export cannot "
                            f"describe; it exports generators of z, z + label, z + emb (gan_cls) or an image")
    if hasattr(model, "sample_outputs"):  # CoGAN: one z, one image per domain
        return ExportSpec(lambda z: tuple(model.sample_outputs({"z": z}, nets).values()), {"z": fixed["z"]},
                          ["image_A", "image_B"], {"z": {0: "batch"}}, info.channels, None)
    return ExportSpec(lambda z: model.generate({"z": z}, nets), {"z": fixed["z"]}, ["image"], {"z": {0: "batch"}},
                      info.channels, None)


def G_channels(G: nn.Module) -> tuple[int, int]:
    """(input, output) channels of an image-to-image generator, from its first and last convolutions."""
    convs = [m for m in G.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    return convs[0].in_channels, convs[-1].out_channels


def export(target: str, fmt: str, out: Path, *, direction: str | None = None, no_ema: bool = False,
           fp16: bool = False) -> dict[str, Any]:
    """Write the generator to `out` and its description to `out` + `.json`; returns the description."""
    if fmt not in FORMATS:
        raise GantrainError(f"unknown --format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    model, ema_nets, ckpt, path = load_trained(target, "cpu", prefer_ema=not no_ema)
    nets = ema_nets if ema_nets is not None else model.nets
    nets.eval()
    spec = export_spec(model, nets, direction)
    dtype = torch.float16 if fp16 else torch.float32
    used = called_nets(spec.fn, tuple(spec.inputs.values()), nets, model.nets)
    module = Exported(used, spec.fn, dtype).to(dtype).eval()
    inputs = {k: v.to(dtype) if v.is_floating_point() else v for k, v in spec.inputs.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save(fmt, module, inputs, spec, out)
    meta = describe(model, spec, inputs, fmt, fp16)
    meta |= {"direction": direction or getattr(model, "direction", None) or ("AtoB" if spec.side_multiple else None),
             "ema": ema_nets is not None, "gantrain_version": __version__, "checkpoint": str(path),
             "checkpoint_step": int(ckpt["step"])}
    Path(str(out) + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def save(fmt: str, module: Exported, inputs: dict[str, torch.Tensor], spec: ExportSpec, out: Path) -> None:
    """Trace `module` on `inputs` into `out` as a TorchScript module or an ONNX graph with dynamic axes."""
    args = tuple(inputs.values())
    if fmt == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(module, args, check_trace=False)
        traced.save(str(out))
        return
    try:
        import onnx  # noqa: F401 - the exporter needs it
    except ImportError:
        raise GantrainError("--format onnx needs onnx; install it with: pip install 'gantrain[export]'") from None
    dynamic = {**spec.dynamic, **{o: {0: "batch"} | ({2: "height", 3: "width"} if spec.side_multiple else {})
                                   for o in spec.outputs}}
    with torch.no_grad():
        torch.onnx.export(module, args, str(out), input_names=list(inputs), output_names=spec.outputs,
                          dynamic_axes=dynamic, opset_version=ONNX_OPSET, dynamo=False)


def describe(model: GANModel, spec: ExportSpec, inputs: dict[str, torch.Tensor], fmt: str, fp16: bool) -> dict[str, Any]:
    """The JSON's description of the graph: inputs and outputs with shapes (N, H, W where dynamic) and dtypes."""
    dims = {0: "N", 2: "H", 3: "W"}

    def shape(t: torch.Tensor, dyn: dict[int, str]) -> list[int | str]:
        return [dims.get(i, str(s)) if i in dyn else int(s) for i, s in enumerate(t.shape)]

    side = model.info.image_size
    image_shape = ["N", spec.channels, "H", "W"] if spec.side_multiple else ["N", spec.channels, side, side]
    dtype = "float16" if fp16 else "float32"
    meta = {
        "family": model.cfg.name,
        "format": fmt,
        "dtype": dtype,
        "inputs": [{"name": k, "shape": shape(v, spec.dynamic[k]), "dtype": str(v.dtype).removeprefix("torch.")}
                   for k, v in inputs.items()],
        "outputs": [{"name": o, "shape": image_shape, "dtype": dtype} for o in spec.outputs],
        "value_range": [-1, 1],
        "channels": spec.channels,
        "side_multiple": spec.side_multiple,
    }
    if "label" in inputs:
        meta["class_names"] = list(model.class_names)
    return meta


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="gantrain-export", description=__doc__.splitlines()[0])
    p.add_argument("run", help="run directory (its newest valid checkpoint) or a checkpoint file")
    p.add_argument("--format", required=True, help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("--out", required=True, help="output file (.onnx or .pt); the JSON goes beside it as FILE.json")
    p.add_argument("--direction", default=None, help="two-domain families: AtoB (default) or BtoA")
    p.add_argument("--no-ema", action="store_true", help="export the raw generator even if an EMA copy exists")
    p.add_argument("--fp16", action="store_true", help="half-precision weights and inputs")
    return p.parse_args(argv)


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging()
    meta = export(args.run, args.format, Path(args.out), direction=args.direction, no_ema=args.no_ema, fp16=args.fp16)
    print(f"exported {meta['family']} ({meta['format']}, {meta['dtype']}) to {args.out} and {args.out}.json")


if __name__ == "__main__":
    main()
