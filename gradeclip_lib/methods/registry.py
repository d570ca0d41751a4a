"""One interface for every explanation method, and the registry that maps names to methods.

An image method is ``f(clip, pixels, targets, index, **options) -> MethodOutput`` where ``pixels``
[I, 3, H, W] holds images of one size, ``targets`` [B, E] the unit text embeddings of B pairs and
``index`` [B] the image of each pair; ``maps`` is [B, H/patch, W/patch]. A text method is
``f(clip, ids, targets, **options)`` with token ids [B, L] and image embeddings [B, E]; its ``maps`` is
[B, L], one weight per token position.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class MethodOutput:
    maps: torch.Tensor
    scores: torch.Tensor  # [B] the cosine similarity each map explains


@dataclass(frozen=True)
class MethodInfo:
    name: str
    fn: Callable[..., MethodOutput]
    cost: str
    pair_seeds: bool = False  # ``seed`` is one integer per pair (see `explain`), not one per call


IMAGE_METHODS: dict[str, MethodInfo] = {}  # for ViT image towers
RESNET_METHODS: dict[str, MethodInfo] = {}  # for ResNet image towers (same interface, maps on the stride-32 grid)
TEXT_METHODS: dict[str, MethodInfo] = {}


def _register(table: dict[str, MethodInfo], name: str, cost: str, pair_seeds: bool = False):
    def wrap(fn: Callable[..., MethodOutput]) -> Callable[..., MethodOutput]:
        table[name] = MethodInfo(name, fn, cost, pair_seeds)
        return fn

    return wrap


def register_image(name: str, cost: str = "", pair_seeds: bool = False):
    """Decorator: make ``fn`` available as ``gl.explain(..., method=name)``. With ``pair_seeds`` the
    method receives ``seed`` as a list, one integer per pair, so that a pair's map does not depend on
    the batch it runs in."""
    return _register(IMAGE_METHODS, name, cost, pair_seeds)


def register_resnet(name: str, cost: str = "", pair_seeds: bool = False):
    """Decorator: make ``fn`` available as ``gl.explain(resnet_clip, ..., method=name)``."""
    return _register(RESNET_METHODS, name, cost, pair_seeds)


def register_text(name: str, cost: str = ""):
    """Decorator: make ``fn`` available as ``gl.explain_text(..., method=name)``."""
    return _register(TEXT_METHODS, name, cost)


def pair_seeds(seed: int | Sequence[int] | torch.Tensor, n_pairs: int) -> list[int]:
    """One seed per pair for methods registered with ``pair_seeds``: ``seed + p`` for an integer, else
    the given ones (as many as pairs)."""
    if isinstance(seed, int):
        return [seed + p for p in range(n_pairs)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n_pairs:
        raise ValueError(f"got {len(seeds)} seeds for {n_pairs} (image, text) pairs: give one per pair, or one int")
    return seeds


def lookup(table: dict[str, MethodInfo], name: str, kind: str) -> MethodInfo:
    try:
        return table[name]
    except KeyError:
        raise ValueError(f"unknown {kind} method {name!r}; available: {', '.join(sorted(table))}") from None
