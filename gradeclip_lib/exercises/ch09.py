"""Chapter 9 (fine-tuning): map-weighted pooling of dense features into region embeddings, written by
the student, against the library's `pool_regions` with weights from `map_weights`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..finetune.regions import map_weights, pool_regions
from .checking import call, check_tensor


def pooling_cases(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense features [B, h, w, E] on a 4 x 6 grid (not square) and signed maps [B, h, w]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(5, 4, 6, 16, generator=gen), torch.randn(5, 4, 6, generator=gen) + 0.3


def reference(dense: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """One region embedding [B, E] per map: its clamped, sum-1 weights over the same image's patches."""
    flat = dense.flatten(1, 2)
    return pool_regions(flat, map_weights(maps), torch.arange(len(maps)))


def check_region_pooling(fn: Callable) -> None:
    """``fn(dense [B, h, w, E], maps [B, h, w]) -> [B, E]`` must equal `reference` on cases of its own."""
    dense, maps = pooling_cases()
    got = call(fn, dense, maps)
    flat = dense.flatten(1, 2)
    clamped = maps.clamp_min(0).flatten(1)
    check_tensor(got, reference(dense, maps), "region embeddings", mistakes={
        "Normalise each map's weights to sum 1 (after clamping), so that a region is an average of patch "
        "features.": torch.einsum("bn,bne->be", clamped, flat),
        "Clamp the map at 0 before normalising: a negative weight would subtract a patch's feature.":
            torch.einsum("bn,bne->be", maps.flatten(1) / maps.flatten(1).sum(1, keepdim=True), flat),
        "That is the mean of all patches: weight each patch by the map.": flat.mean(1),
    })
