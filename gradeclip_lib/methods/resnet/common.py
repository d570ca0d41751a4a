"""The forward pass the ResNet methods share: the convolutional trunk once per image without a graph,
then the attention pool per pair."""

from __future__ import annotations

import torch

from ...models.clip import Clip
from ...models.resnet_tower import PoolPass, attention_pool, trunk


def features(clip: Clip, pixels: torch.Tensor, index: torch.Tensor, stages: int = 4) -> torch.Tensor:
    """Feature maps [B, C, h, w] after ``stages`` stages, computed once per image, one row per pair."""
    with torch.no_grad():
        return trunk(clip.visual, pixels, stages)[index]


def pool_pass(clip: Clip, pixels: torch.Tensor, index: torch.Tensor, grad: bool = True) -> PoolPass:
    """The attention pool on the pairs' images; with ``grad``, its attention output ``o`` is a leaf."""
    feats = features(clip, pixels, index)
    with torch.set_grad_enabled(grad):
        return attention_pool(clip.visual.attnpool, feats, grad=grad)
