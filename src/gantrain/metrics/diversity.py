"""Within-caption diversity of text-to-image samples (`eval.metrics=[caption_diversity]`).

A GAN-CLS generator tends to ignore z: for one caption every sample looks alike, which attribute accuracy does
not see. For CAPTIONS test captions of distinct content (those with the most real images), SAMPLES images are
generated (z drawn from `eval.seed`) and their mean pairwise distance is set against that of up to REAL real
images of the same content: the same class in the test split on class-split data; on data with attributes
(shapes: the same attribute combination, which means the same in both splits) the train split adds its images.
Distance: root-mean-square pixel difference in [-1, 1] (a pixel measure: it sees shifts and sizes, which is what
varies between real shapes images with one caption). Reported: `diversity_fake`,
`diversity_real` (means over the captions) and `diversity_ratio` = fake / real (1.0: as varied as the real images
of those captions; near 0: G ignores z).
"""

from __future__ import annotations

import math

import torch

from gantrain.data.captions import CaptionedImages
from gantrain.errors import GantrainError
from gantrain.metrics.base import EvalContext, EvalSetup, Metric, register

CAPTIONS, SAMPLES, REAL = 16, 16, 32
Z_OFFSET = 101  # the z stream's offset from eval.seed, apart from the shared generated batch's


def mean_pairwise(images: torch.Tensor) -> float:
    """Mean RMS pixel distance over the distinct pairs of (n, ...) images."""
    flat = images.flatten(1).double()
    n = len(flat)
    return float(torch.cdist(flat, flat).sum() / (n * (n - 1)) / math.sqrt(flat.shape[1]))


def pick_captions(content: torch.Tensor, bank_content: torch.Tensor, k: int) -> list[tuple[int, torch.Tensor]]:
    """Up to k (bank row, real image indices) pairs: distinct contents of the bank's captions with at least two
    real images in `content`, most images first (ties: the lowest image index), each with its first bank row
    and up to REAL of its images."""
    ids, counts = torch.unique(content, return_counts=True)
    first_image = torch.stack([(content == c).nonzero()[0, 0] for c in ids])
    chosen = []
    for i in sorted(range(len(ids)), key=lambda i: (-int(counts[i]), int(first_image[i]))):
        rows = (bank_content == ids[i]).nonzero()
        if counts[i] >= 2 and len(rows):
            chosen.append((int(rows[0, 0]), (content == ids[i]).nonzero()[:REAL, 0]))
        if len(chosen) == k:
            break
    return chosen


def _images(pools: list[CaptionedImages], members: torch.Tensor) -> torch.Tensor:
    """The images of indices into the concatenation of `pools`, in [-1, 1] on the CPU."""
    out, start = [], 0
    for pool in pools:
        local = members[(members >= start) & (members < start + len(pool))] - start
        if len(local):
            out.append(pool.batch(local)["image"].cpu())
        start += len(pool)
    return torch.cat(out)


@register("caption_diversity")
class CaptionDiversity(Metric):
    """Mean pairwise distance of samples for one caption over that of the real images with that caption."""

    @classmethod
    def check(cls, setup: EvalSetup) -> None:
        if not hasattr(setup.model, "caption_bank"):
            raise cls.incompatible(setup, "needs a text-to-image model (samples per caption)", "train model=gan_cls")

    def __init__(self, setup: EvalSetup) -> None:
        """Chooses the captions and measures their real images once (the caption bank exists by now: it is built
        before training and kept in checkpoints)."""
        super().__init__(setup)
        split, bank = self.data.split("test"), setup.model.caption_bank()  # the bank holds test captions
        if not isinstance(split, CaptionedImages):
            raise GantrainError(f"eval.metrics=[caption_diversity] needs a captioned dataset; data={self.info.name} is not")
        if "index" not in bank:
            raise GantrainError("eval.metrics=[caption_diversity]: this run's caption bank predates the metric (no "
                                "test-image index); evaluate a run trained with this gantrain version")
        # attribute combinations mean the same in both splits (shapes): the train split adds real images per caption
        pools = [split, self.data.split("train")] if self.info.attributes else [split]
        content = torch.cat([p.content.cpu() for p in pools])
        chosen = pick_captions(content, split.content.cpu()[bank["index"]], CAPTIONS)
        if not chosen:
            raise GantrainError(f"eval.metrics=[caption_diversity]: no caption of data={self.info.name}'s "
                                "test split has two real images; use other metrics")
        self.rows = [row for row, _ in chosen]
        self.real = [mean_pairwise(_images(pools, members)) for _, members in chosen]
        self.protocol = {"captions": len(chosen), "samples_per_caption": SAMPLES, "distance": "rms pixel, [-1, 1]",
                         "real_per_caption": [len(m) for _, m in chosen], "real_splits": len(pools),
                         "z_seed": self.cfg.eval.seed + Z_OFFSET}

    @torch.no_grad()
    def __call__(self, ctx: EvalContext) -> dict[str, float]:
        model, gen = ctx.model, ctx.generator(Z_OFFSET)
        emb_bank, fake = model.caption_bank()["emb"], []
        for row in self.rows:
            z = model.sample_z(SAMPLES, gen)
            emb = emb_bank[row : row + 1].to(z.device).expand(SAMPLES, -1)
            fake.append(mean_pairwise(model.generate({"z": z, "emb": emb}, ctx.nets).float().cpu()))
        f, r = sum(fake) / len(fake), sum(self.real) / len(self.real)
        return {"diversity_fake": f, "diversity_real": r, "diversity_ratio": f / r}
