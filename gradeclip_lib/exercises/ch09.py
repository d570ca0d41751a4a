"""Chapter 9 (fine-tuning): map-weighted pooling of dense features into region embeddings, written by
the student, against the library's `pool_regions` with weights from `map_weights`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..finetune.regions import map_weights, pool_regions
from .checking import call, check_tensor, passed


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
    got = call(fn, dense, maps, names=("dense", "maps"))
    flat = dense.flatten(1, 2)
    signed = maps.flatten(1)
    clamped = signed.clamp_min(0)

    def pooled(weights: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bn,bne->be", weights, flat)

    b, h, w, e = dense.shape
    worst = check_tensor(got, reference(dense, maps), "region embeddings", mistakes={
        "Normalise each map's weights to sum 1 (after clamping), so that a region is an average of patch "
        "features.": pooled(clamped),
        "Clamp the map at 0 before normalising: a negative weight would subtract a patch's feature.":
            pooled(signed / signed.sum(1, keepdim=True)),
        "Clamp the map at 0 (negative evidence gets no weight), do not take its absolute value.":
            pooled(signed.abs() / signed.abs().sum(1, keepdim=True)),
        "Normalise each map's weights to sum 1 (divide by their sum, not their maximum).":
            pooled(clamped / clamped.amax(1, keepdim=True)),
        "The weights are the clamped map divided by its sum, not a softmax of the map.": pooled(signed.softmax(1)),
        "Weight each patch by the map's value: not the plain mean of the patches where the map is positive.":
            pooled((signed > 0).float() / (signed > 0).float().sum(1, keepdim=True)),
        "That is the mean of all patches: weight each patch by the map.": flat.mean(1),
        "Each region pools the patches of its own image: the weights of map b go with dense[b] only.":
            torch.einsum("bn,cne->be", clamped / clamped.sum(1, keepdim=True), flat) / b,
    }, where=lambda i: f"region {i[0]}, feature {i[1]}",
        case=f"(the check's {b} maps on a {h} x {w} grid, features of {e} dimensions)")
    passed(f"your region embeddings equal the library's pool_regions(map_weights(...)) on {b} signed maps on a "
           f"{h} x {w} grid, features of {e} dimensions (largest difference {worst:.1g}).")
