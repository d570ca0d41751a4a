"""Chapter 8 (analyses): the lift of a map on an object, written by the student, against the library's
definition (share of the map's non-negative mass on the mask over the mask's share of the pixels)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..synthetic import make_scenes
from .checking import call, check_tensor


def lift(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The reference: (mass of clamp(map, 0) inside the mask / total mass) / (mask pixels / all pixels)."""
    mass = maps.clamp_min(0)
    share = (mass * masks).flatten(1).sum(1) / mass.flatten(1).sum(1)
    return share / masks.float().flatten(1).mean(1)


def lift_cases(n: int = 12, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps [n, 64, 64] with negative values (as a signed map has) and the masks of ShapesWorld objects."""
    gen = torch.Generator().manual_seed(seed)
    masks = torch.stack([torch.from_numpy(s.objects[0].mask) for s in make_scenes(n, seed=seed, n_objects=1, size=64)])
    coarse = torch.randn(n, 1, 8, 8, generator=gen)
    maps = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    return maps + 1.5 * masks.float(), masks


def check_lift(fn: Callable) -> None:
    """``fn(maps [B, H, W], masks [B, H, W] bool) -> [B]`` must equal `lift` on cases of its own."""
    maps, masks = lift_cases()
    got = call(fn, maps, masks.clone())
    mass = maps.clamp_min(0)
    share = (mass * masks).flatten(1).sum(1) / mass.flatten(1).sum(1)
    raw = (maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1) / masks.float().flatten(1).mean(1)
    check_tensor(got, lift(maps, masks), "lift", mistakes={
        "Clamp the map at 0 first: negative values are not mass, and they can make the share exceed 1.": raw,
        "That is the share of the mass; divide it by the mask's share of the pixels, so that 1 means "
        "'no more mass on the object than its size gives it'.": share,
        "Divide by the mask's share of the pixels (a fraction of the image), not by its pixel count.":
            share / masks.float().flatten(1).sum(1),
    })
