"""Feature nets F for perceptual terms ||F(x) - F(y)||^2: IDInvert's encoder training and inversion.

- `classifier`: the trunk of the dataset's own classifier (nets/classifier.py: trained on the labelled train split,
  cached on first use; the pooled 4 x width features the metrics use), the project's feature space for the digits
  and other small labelled sets.
- `vgg16`: torchvision's ImageNet VGG16 up to conv4_3 + ReLU, the layer IDInvert takes (genforce/idinvert
  perceptual_model.py, layer 13 of Keras' VGG16; idinvert_pytorch's `output_layer_idx=23`), for photos. Its
  weights are downloaded by torchvision on first use, so only when a user asks for them.
- `auto`: the classifier where the data has one (labelled, in memory), otherwise no feature term. It never
  picks VGG16: a download is never implicit.

Each F has its own default weight (`FEATURE_WEIGHTS`), the one place the model and `gantrain-invert` take it from.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.nn as nn

from gantrain.data.base import DataSource, InMemoryImages
from gantrain.errors import GantrainError
from gantrain.nets.classifier import load_or_train

FEATURES = ("auto", "classifier", "vgg16", "none")
# weight of the mean squared feature difference per F (images in [-1, 1]). vgg16: IDInvert's 5e-5 (its
# loss_encoder.py feature_scale and inverter.py perceptual_loss_weight), set for Keras' Caffe-scaled VGG16 (inputs
# 0-255 minus the mean); torchvision's takes normalised inputs and has smaller conv4_3 activations, so the same
# weight pulls less. classifier: on the digits 0.1 lowers hybrid's error a little and keeps more classes than no term
# (BENCHMARKS.md, "In-domain encoder (IDInvert) vs the latent regressor").
FEATURE_WEIGHTS = {"vgg16": 5e-5, "classifier": 0.1}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_CONV4_3 = 23  # torchvision `vgg16().features[:23]` ends with conv4_3's ReLU

FeatureFn = Callable[[torch.Tensor], torch.Tensor]


class VGG16Features(nn.Module):
    """conv4_3 + ReLU features of images in [-1, 1] (grey images repeated to three channels), ImageNet-normalised."""

    def __init__(self, pretrained: bool = True) -> None:
        super().__init__()
        from torchvision.models import vgg

        convs = vgg.make_layers(vgg.cfgs["D"])  # VGG16's conv stack alone (`vgg16().features`), not its 120M-weight head
        if pretrained:
            weights = vgg.VGG16_Weights.IMAGENET1K_V1
            try:  # torchvision's download, cached under ~/.cache/torch/hub/checkpoints
                state = weights.get_state_dict(progress=False)
            except OSError as exc:
                raise GantrainError(f"cannot fetch torchvision's VGG16 weights ({exc}); download {weights.url} into "
                                    "~/.cache/torch/hub/checkpoints or use features=classifier or none") from None
            convs.load_state_dict({k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")})
        self.net = convs[:VGG16_CONV4_3]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return self.net(((x + 1) / 2 - self.mean) / self.std)


def has_classifier(data: DataSource) -> bool:
    """Whether `data` can train its own classifier: labelled, at least two classes, train and test in memory."""
    splits = [data.split("train"), data.split("test")] if data.info.num_classes >= 2 else []
    return bool(splits) and all(isinstance(s, InMemoryImages) and s.labels is not None for s in splits)


def classifier_features(data: DataSource, device: torch.device, cache: str | None) -> FeatureFn:
    """The frozen trunk of `data`'s classifier (trained on its train split and cached in `cache` on first use)."""
    info = data.info
    net, _ = load_or_train(info.name, data.split("train"), data.split("test"), info.channels, info.num_classes, device, cache)
    net.eval().requires_grad_(False)
    return net.trunk


class FeatureNet(NamedTuple):
    """A built feature net: `fn` (None: no feature term), its `kind` (classifier, vgg16 or none) and a line for the log."""

    fn: FeatureFn | None
    kind: str
    description: str

    def weight(self, override: float | None) -> float:
        """`override`, or this F's default weight when None (0 without an F)."""
        if self.fn is None:
            return 0.0
        return FEATURE_WEIGHTS[self.kind] if override is None else float(override)


def build_features(kind: str, data: DataSource | None, device: torch.device, cache: str | None = None) -> FeatureNet:
    """The feature net `kind` (one of FEATURES) for `data`, on `device`; the classifier is cached in `cache`."""
    if kind not in FEATURES:
        raise GantrainError(f"unknown feature net {kind!r}; choose one of: {', '.join(FEATURES)}")
    name = data.info.name if data is not None else "this data"
    if kind == "none":
        return FeatureNet(None, "none", "feature term off (features=none)")
    if kind == "vgg16":
        net = VGG16Features().to(device).eval().requires_grad_(False)
        return FeatureNet(net, "vgg16", "F = torchvision's VGG16 to conv4_3 (ImageNet weights)")
    if data is None or not has_classifier(data):
        if kind == "classifier":
            raise GantrainError(f"features=classifier needs labelled in-memory data; data={name} is not; use features=vgg16 or none")
        return FeatureNet(None, "none", f"feature term off: data={name} has no classifier (labelled, in memory); "
                                        "features=vgg16 uses torchvision's VGG16 (downloaded on first use)")
    return FeatureNet(classifier_features(data, device, cache), "classifier", f"F = the {name} classifier's trunk (nets/classifier.py)")
