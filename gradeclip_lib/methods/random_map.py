"""The floor every method must beat: a uniform random map on the token grid.

Each pair's map is a function of its own seed alone (a counter-based hash of the seed and the token's
position), so a batch gives every pair the map it gets alone, on any device. Any model family."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..adapters import adapter_for
from .registry import MethodOutput, pair_seeds, register

_MASK = 0xFFFFFFFF


def pcg_hash(x: torch.Tensor) -> torch.Tensor:
    """The PCG hash of 32-bit integers held in int64 (Jarzynski and Olano, JCGT 2020): no overflow,
    the same numbers on every device."""
    state = (x * 747796405 + 2891336453) & _MASK
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & _MASK
    return (word >> 22) ^ word


def hashed_uniform(seeds: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Uniform numbers in [0, 1) of shape [len(seeds), *shape]; row i depends on ``seeds[i]`` only."""
    count = 1
    for side in shape:
        count *= int(side)
    position = torch.arange(count, device=seeds.device)
    key = pcg_hash(seeds.long()[:, None] & _MASK)
    return (pcg_hash((key + position) & _MASK).float() / 2**32).reshape(len(seeds), *shape)


@register("random", cost="none for the map (1 fwd for the reported score)", pair_seeds=True)
def random_image(model, pixels, targets, index, seed: int | Sequence[int] = 0, **target_options) -> MethodOutput:
    """Uniform maps; ``seed`` is one integer per pair, or ``s`` for the seeds ``s + p`` (see `pair_seeds`)."""
    adapter = adapter_for(model)
    seeds = torch.tensor(pair_seeds(seed, len(index)), device=pixels.device)
    maps = hashed_uniform(seeds, adapter.grid(pixels))
    score = adapter.target(targets, **target_options)(adapter.features(pixels)[index])
    return MethodOutput(maps, score)
