"""Where each phrase's region lies on the patch grid, as weights summing to 1 over patches, from one of
four sources: a Grad-ECLIP map of a frozen model (the method), the frozen model's raw attention (a saliency
that does not read the phrase), the true object mask (the upper bound), or all patches alike (the lower
bound); and region embeddings pooled with those weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

REGION_SOURCES = ("grad_eclip", "attention", "masks", "uniform")


def mask_weights(masks: torch.Tensor, patch: int) -> torch.Tensor:
    """Boolean masks [O, H, W] -> each patch's share of the object's pixels [O, N] (N = (H/p)(W/p))."""
    cover = F.avg_pool2d(masks.float().unsqueeze(1), patch).flatten(1)
    return cover / cover.sum(1, keepdim=True).clamp_min(1e-12)


def uniform_weights(count: int, patches: int) -> torch.Tensor:
    """Every patch alike [O, N]: the region is the whole image."""
    return torch.full((count, patches), 1.0 / patches)


def map_weights(maps: torch.Tensor) -> torch.Tensor:
    """Non-negative explanation maps [O, h, w] -> weights [O, N] summing to 1 (uniform where a map is 0)."""
    flat = maps.float().flatten(1).clamp_min(0)
    total = flat.sum(1, keepdim=True)
    return torch.where(total > 0, flat / total.clamp_min(1e-12), torch.full_like(flat, 1 / flat.shape[1]))


def pool_regions(dense: torch.Tensor, weights: torch.Tensor, image_of: torch.Tensor) -> torch.Tensor:
    """Region embeddings [O, E]: object o's weights over the patches of image ``image_of[o]``'s dense
    features [B, N, E]."""
    return torch.einsum("on,one->oe", weights.to(dense.dtype), dense[image_of])
