"""The standard Inception-v3 feature network for FID, KID and IS: its weights file, and the resizing in front of it.

The network is torch-fidelity's port of the TensorFlow 2015-12-05 graph (the weights pytorch-fid, StudioGAN and
torchmetrics use), so scores compare with published ones. torchvision's ImageNet Inception gives different
numbers and is never used. The weights are one file, found in this order: `eval.inception_weights=PATH`, then
the torch hub cache that torch-fidelity and torchmetrics share, then a download into that cache (unless
`eval.inception_download=false`). Every file is checked against the hash in its published name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F

from gantrain.errors import GantrainError

log = logging.getLogger(__name__)

WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{WEIGHTS_FILE}"
INPUT_SIZE = 299

# How generated and real images reach 299x299. Both sides always go through the same one, and it is recorded.
RESIZERS = {
    "tf_bilinear": "TF1-compatible bilinear inside torch-fidelity's extractor, uint8 input (pytorch-fid/StudioGAN/torchmetrics numbers)",
    "bilinear_antialias": "torch bilinear with antialias to 299 on uint8 values, then the extractor (no further resize)",
    "bicubic_antialias": "torch bicubic with antialias to 299 on uint8 values, clamped, then the extractor (clean-fid-like, not bit-identical)",
}


def cache_path() -> Path:
    """Where torch-fidelity and torchmetrics keep the file (`torch.hub.get_dir()/checkpoints/`)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_message(configured: str | None, reason: str) -> str:
    where = f"eval.inception_weights={configured} does not exist" if configured else f"{cache_path()} is absent"
    return (
        f"the Inception-v3 weights for FID/KID/IS are missing ({where}) and cannot be downloaded ({reason}): "
        f"get {WEIGHTS_FILE} from {WEIGHTS_URL} and put it at {cache_path()}, or pass eval.inception_weights=PATH"
    )


def _check(path: Path) -> str:
    digest = sha256_file(path)
    if not digest.startswith(WEIGHTS_SHA256_PREFIX):
        raise GantrainError(
            f"{path} is not {WEIGHTS_FILE} (its sha256 starts {digest[:8]}, expected {WEIGHTS_SHA256_PREFIX}); "
            f"other Inception weights give incomparable scores: download {WEIGHTS_URL}"
        )
    return digest


def download(url: str, dest: Path, timeout: float = 60.0) -> None:
    """Fetch `url` to `dest` through a temporary file, so a broken transfer never leaves a partial file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        _check(Path(tmp))
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def resolve_weights(configured: str | None, allow_download: bool = True, url: str | None = None) -> tuple[Path, str]:
    """(path, sha256) of verified Inception weights, or a one-line GantrainError saying how to get them."""
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise GantrainError(missing_message(configured, "an explicit path is never downloaded"))
        return path, _check(path)
    path = cache_path()
    if not path.is_file():
        if not allow_download:
            raise GantrainError(missing_message(None, "eval.inception_download=false"))
        source = url or os.environ.get("GANTRAIN_INCEPTION_URL", WEIGHTS_URL)
        log.info("downloading %s to %s", source, path)
        try:
            download(source, path)
        except GantrainError:
            raise
        except Exception as exc:  # no network, proxy, HTTP error: all mean "fetch it yourself"
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise GantrainError(missing_message(None, reason[:120])) from None
    return path, _check(path)


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float images -> uint8 RGB, as a saved PNG would hold them; grey is repeated to three channels."""
    x = images.float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] != 3:
        raise GantrainError(f"Inception features need 1 or 3 channels, got {x.shape[1]}; use eval.backbone=classifier")
    return x


def resize_for_inception(x: torch.Tensor, resize: str) -> torch.Tensor:
    """Apply the `eval.resize` method to uint8 RGB images; `tf_bilinear` leaves it to the extractor."""
    if resize == "tf_bilinear" or x.shape[-1] == INPUT_SIZE and x.shape[-2] == INPUT_SIZE:
        return x
    mode = {"bilinear_antialias": "bilinear", "bicubic_antialias": "bicubic"}[resize]
    y = F.interpolate(x.float(), size=(INPUT_SIZE, INPUT_SIZE), mode=mode, align_corners=False, antialias=True)
    return y.round_().clamp_(0, 255).to(torch.uint8)


def load_extractor(path: Path, device: torch.device) -> torch.nn.Module:
    """torch-fidelity's Inception-v3 returning (2048-d pool features, unbiased 1008-way logits)."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except ImportError:
        raise GantrainError("FID/KID/IS need torch-fidelity: pip install 'gantrain[metrics]'") from None
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path))
    return net.to(device).eval()
