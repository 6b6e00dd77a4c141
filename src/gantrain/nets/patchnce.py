"""PatchNCE (Park et al. 2020): a contrastive loss between patches of a translation and of its input.

`PatchSampleMLP` picks the same random positions in the query (output) and key (input) feature maps of each
tapped encoder layer, projects each patch with that layer's 2-layer MLP (Linear-ReLU-Linear) and L2-normalises
it. The heads are built up front from the tapped layers' channel counts (the official code builds them lazily
on the first batch), so they sit in `model.nets` from the start: checkpoints, optimisers and exact resume
treat them like any other net.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class PatchSampleMLP(nn.Module):
    def __init__(self, channels: list[int], nc: int = 256) -> None:
        super().__init__()
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) for c in channels)

    def forward(self, feats: list[torch.Tensor], num_patches: int, patch_ids: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per layer (B*P, nc) normalised projections and the P positions used (shared across the batch)."""
        out, ids = [], []
        for i, (feat, mlp) in enumerate(zip(feats, self.mlps)):
            flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (B, H*W, C)
            if patch_ids is not None:
                pid = patch_ids[i]
            elif num_patches > 0:
                pid = torch.randperm(flat.shape[1], generator=generator)[: min(num_patches, flat.shape[1])].to(feat.device)
            else:  # every position
                pid = torch.arange(flat.shape[1], device=feat.device)
            sample = flat[:, pid, :].flatten(0, 1)
            out.append(F.normalize(mlp(sample), dim=1, eps=1e-7))
            ids.append(pid)
        return out, ids


def patch_nce_loss(q: torch.Tensor, k: torch.Tensor, batch: int, temperature: float = 0.07,
                   all_negatives_from_minibatch: bool = False) -> torch.Tensor:
    """Per-patch InfoNCE: each query patch against its own key (positive) and the other keys (negatives).

    q, k: (B*P, C), normalised, image-major. Negatives come from the same image unless
    `all_negatives_from_minibatch` (the official `nce_includes_all_negatives_from_minibatch`, off by default).
    Keys carry no gradient. Returns the per-patch losses (B*P,).
    """
    k = k.detach()
    dim = q.shape[1]
    pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
    groups = 1 if all_negatives_from_minibatch else batch
    qg, kg = q.reshape(groups, -1, dim), k.reshape(groups, -1, dim)
    n = qg.shape[1]
    neg = torch.bmm(qg, kg.transpose(1, 2))  # (groups, n, n); the diagonal is the positive
    eye = torch.eye(n, device=q.device, dtype=torch.bool)[None]
    neg = neg.masked_fill(eye, -10.0).reshape(-1, n)
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=q.device), reduction="none")
