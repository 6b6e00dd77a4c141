"""The history of generated images that CycleGAN's discriminators learn from (Shrivastava et al. 2017).

Until `size` fakes are stored, each new fake is stored and returned. Then, for each new fake, with
probability 1/2 a random stored fake is returned (and the new one takes its slot), else the new one is
returned. Draws come from the pool's own CPU generator, saved with the contents, so resume is exact.
"""

from __future__ import annotations

from typing import Any

import torch


class ImagePool:
    def __init__(self, size: int = 50, seed: int = 0) -> None:
        self.size = size
        self.gen = torch.Generator().manual_seed(seed)
        self.images: torch.Tensor | None = None  # (size, C, H, W), allocated on first use
        self.count = 0

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Detached images for the discriminator: the new fakes, some swapped for older ones."""
        images = images.detach()
        if self.size <= 0:
            return images
        if self.images is None or self.images.shape[1:] != images.shape[1:] or self.images.device != images.device:
            self.images = images.new_empty((self.size, *images.shape[1:]))
            self.count = 0
        out = images.clone()
        for i in range(images.shape[0]):
            if self.count < self.size:
                self.images[self.count] = images[i]
                self.count += 1
            elif float(torch.rand((), generator=self.gen)) > 0.5:
                slot = int(torch.randint(0, self.size, (), generator=self.gen))
                out[i] = self.images[slot]
                self.images[slot] = images[i]
        return out

    def state_dict(self) -> dict[str, Any]:
        """Tensors and ints only, so checkpoints load with weights_only=True."""
        stored = None if self.images is None else self.images[: self.count].detach().cpu().clone()
        return {"size": self.size, "count": self.count, "images": stored, "rng": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any], device: torch.device | None = None) -> None:
        self.size = int(state["size"])
        self.count = int(state["count"])
        self.gen.set_state(state["rng"])
        stored = state.get("images")
        if stored is None or self.count == 0:
            self.images, self.count = None, 0
            return
        device = device or stored.device
        self.images = stored.new_empty((self.size, *stored.shape[1:])).to(device)
        self.images[: self.count] = stored.to(device)
