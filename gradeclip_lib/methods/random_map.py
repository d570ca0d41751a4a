"""The floor every method must beat: a uniform random map on the token grid (seeded)."""

from __future__ import annotations

import torch

from ..models.clip import Clip
from .common import cosine, image_embeddings, token_grid
from .registry import MethodOutput, register_image


@register_image("random", cost="none for the map (1 fwd for the reported score)")
def random_image(clip: Clip, pixels, targets, index, seed: int = 0) -> MethodOutput:
    grid = token_grid(clip, pixels)
    gen = torch.Generator().manual_seed(seed)
    maps = torch.rand(len(index), *grid, generator=gen)
    score = cosine(image_embeddings(clip, pixels)[index], targets)
    return MethodOutput(maps.to(pixels.device), score)
