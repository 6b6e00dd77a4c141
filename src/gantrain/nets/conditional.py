"""Class conditioning for the DCGAN nets: label-conditioned generator, conditional batch norm, and the two
ways a discriminator sees the label (input concatenation, projection) plus AC-GAN's auxiliary class head.

The conditional nets wrap `nets.dcgan` rather than re-implementing it, so the architecture (and its
image-size rules) stays in one place.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from gantrain.errors import GantrainError
from gantrain.nets.dcgan import DCGANDiscriminator, DCGANGenerator

G_CONDITIONING = ("concat", "multiply", "cbn")
D_CONDITIONING = ("concat", "projection")


def check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise GantrainError(f"unknown {key} {value!r}; choose one of: {', '.join(choices)}")


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (de Vries et al. 2017; Miyato & Koyama 2018).

    Starts as plain batch norm (scale 1, shift 0 for every class), so conditioning is learned, not imposed.
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gamma = nn.Embedding(num_classes, num_features)
        self.beta = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.bn(x)
        return h * self.gamma(y)[:, :, None, None] + self.beta(y)[:, :, None, None]


class ConditionalGenerator(nn.Module):
    """DCGAN generator G(z | y).

    `concat`: z joined with a learned label embedding (Mirza & Osindero; a one-hot code through G's first linear
    layer is the same family of functions). `multiply`: z times an embedding of size z_dim (the AC-GAN
    reimplementations). `cbn`: every batch norm of G becomes class-conditional.
    """

    def __init__(self, z_dim: int, num_classes: int, channels: int, image_size: int, ngf: int = 64,
                 norm: str = "batch", conditioning: str = "concat", embed_dim: int = 50) -> None:
        super().__init__()
        check_choice("model.g_conditioning", conditioning, G_CONDITIONING)
        if conditioning == "cbn" and norm != "batch":
            raise GantrainError(f"model.g_conditioning=cbn replaces G's batch norms; it needs model.norm_G=batch, not {norm!r}")
        self.conditioning = conditioning
        in_dim = z_dim
        self.embed: nn.Embedding | None = None
        if conditioning == "concat":
            self.embed = nn.Embedding(num_classes, embed_dim)
            in_dim = z_dim + embed_dim
        elif conditioning == "multiply":
            self.embed = nn.Embedding(num_classes, z_dim)
        self.base = DCGANGenerator(in_dim, channels, image_size, ngf, norm)
        if conditioning == "cbn":
            layers = self.base.net
            for i, layer in enumerate(layers):
                if isinstance(layer, nn.BatchNorm2d):
                    layers[i] = ConditionalBatchNorm2d(layer.num_features, num_classes)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.conditioning == "concat":
            h = torch.cat([z, self.embed(y).to(z.dtype)], dim=1)
        elif self.conditioning == "multiply":
            h = z * self.embed(y).to(z.dtype)
        else:
            h = z
        h = h.view(h.shape[0], -1, 1, 1)
        for layer in self.base.net:
            h = layer(h, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h


class ConditionalDiscriminator(nn.Module):
    """DCGAN discriminator D(x | y): one logit per (image, label) pair.

    `concat`: a learned label embedding is broadcast to planes and stacked onto the image channels (the cGAN
    paper's "y into both nets", for conv nets). `projection` (Miyato & Koyama 2018): logit = psi(phi(x)) +
    <embed(y), phi(x)> with phi(x) the sum-pooled last feature map. Projection also gives a free class
    readout (`forward_with_classes`), used to log D's class accuracy.
    """

    def __init__(self, channels: int, num_classes: int, image_size: int, ndf: int = 64, norm: str = "batch",
                 conditioning: str = "concat", embed_dim: int = 50) -> None:
        super().__init__()
        check_choice("model.d_conditioning", conditioning, D_CONDITIONING)
        self.conditioning = conditioning
        in_extra = embed_dim if conditioning == "concat" else 0
        self.base = DCGANDiscriminator(channels, image_size, ndf, norm, in_extra=in_extra)
        width = embed_dim if conditioning == "concat" else self.base.feature_channels
        self.embed = nn.Embedding(num_classes, width)
        if conditioning == "projection":
            nn.init.normal_(self.embed.weight, 0.0, 0.02)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.forward_with_classes(x, y)[0]

    def forward_with_classes(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logit, class readout): the readout is the label term for every class at once (projection only;
        its argmax is the class D finds most compatible), None for `concat`."""
        if self.conditioning == "concat":
            planes = self.embed(y).to(x.dtype)[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
            return self.base(torch.cat([x, planes], dim=1)), None
        feats = self.base.features(x)
        pooled = feats.sum(dim=(2, 3))
        classes = pooled @ self.embed.weight.to(pooled.dtype).T
        logit = self.base.head(feats).flatten() + classes.gather(1, y[:, None]).squeeze(1)
        return logit, classes


class AuxClassifierDiscriminator(nn.Module):
    """AC-GAN discriminator: a shared DCGAN trunk with a real/fake head (1 logit) and a class head (K raw logits,
    meant for `cross_entropy` directly: no softmax here)."""

    def __init__(self, channels: int, num_classes: int, image_size: int, ndf: int = 64, norm: str = "batch") -> None:
        super().__init__()
        self.base = DCGANDiscriminator(channels, image_size, ndf, norm)
        self.class_head = nn.Conv2d(self.base.feature_channels, num_classes, 4, 1, 0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.base.features(x)
        return self.base.head(feats).flatten(), self.class_head(feats).flatten(1)
