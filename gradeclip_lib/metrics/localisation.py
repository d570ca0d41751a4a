"""Localisation: does an explanation point at the object the text names?

Both take maps already upsampled to the image (``Explanation.upsampled()``) and boolean object masks
of the same size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Maps = torch.Tensor | Sequence[torch.Tensor]


def _pairs(maps: Maps, masks: Maps):
    if len(maps) != len(masks):
        raise ValueError(f"{len(maps)} maps but {len(masks)} masks")
    for emap, mask in zip(maps, masks):
        emap, mask = torch.as_tensor(emap).float(), torch.as_tensor(mask).bool()
        if emap.shape != mask.shape:
            raise ValueError(f"a map of {tuple(emap.shape)} against a mask of {tuple(mask.shape)}: upsample first")
        yield emap, mask


def pointing_game(maps: Maps, masks: Maps, tolerance: float = 15.0) -> torch.Tensor:
    """Hits [B] (bool): the map's maximum lies within ``tolerance`` pixels of the mask (as TorchRay).

    A map with several equal maxima counts as a hit only if all of them lie within the tolerance, so a
    constant map never scores.
    """
    hits = []
    for emap, mask in _pairs(maps, masks):
        peaks = (emap == emap.max()).nonzero().float()  # [P, 2] (y, x)
        inside = mask.nonzero().float()  # [M, 2]
        if len(inside) == 0:
            raise ValueError("an empty mask: the object is not in the image")
        nearest = torch.cdist(peaks, inside).amin(dim=1)  # distance of each peak to the mask
        hits.append(bool((nearest <= tolerance).all()))
    return torch.tensor(hits)


def energy_pointing_game(maps: Maps, masks: Maps) -> torch.Tensor:
    """Share [B] of each map's (non-negative) mass that falls inside the mask (Wang et al., Score-CAM)."""
    shares = []
    for emap, mask in _pairs(maps, masks):
        emap = emap.clamp_min(0)
        total = emap.sum()
        shares.append(float(emap[mask].sum() / total) if total > 0 else 0.0)
    return torch.tensor(shares)
