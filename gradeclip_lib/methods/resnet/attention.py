"""The attention pool's own attention: how much the mean-token query attends to each cell of the last
feature map, averaged over heads (the ResNet counterpart of the class token's self-attention)."""

from __future__ import annotations

import torch

from ...models.clip import Clip
from ..common import cosine
from ..registry import MethodOutput, register_resnet
from .common import pool_pass


@register_resnet("self_attention", cost="1 fwd")
def pool_attention_resnet(clip: Clip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor
                          ) -> MethodOutput:
    """Mean over heads of the pool's attention probabilities on the cells [B, H/32, W/32] (text-blind)."""
    with torch.no_grad():
        run = pool_pass(clip, pixels, index, grad=False)
        maps = run.probs()[:, :, 1:].float().mean(1)
        return MethodOutput(maps.reshape(-1, *run.grid), cosine(run.embedding, targets))
