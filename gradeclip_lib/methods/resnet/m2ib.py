"""M2IB on a ResNet CLIP: the information bottleneck on the cells of a residual stage's output (stage 3
by default, stride 16, as IBA places it in CNNs), fitted as on a ViT; its maps are twice as fine as the
attention pool's grid."""

from __future__ import annotations

import torch

from ...models.clip import Clip
from ...models.passes import resnet_features as features
from ...models.resnet_tower import attention_pool, finish_trunk
from ..common import cosine
from ..m2ib import fit_bottleneck
from ..registry import MethodOutput, register


@register("m2ib", families=["clip_resnet"],
          cost="(steps - 1) x samples x (fwd + bwd) of the stages after the bottleneck")
def m2ib_resnet(clip: Clip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor, stage: int = 3,
                beta: float = 0.1, var: float = 1.0, steps: int = 10, lr: float = 1.0, samples: int = 10,
                seed: int = 0) -> MethodOutput:
    """M2IB maps [B, h, w] on the grid of stage ``stage`` (1-4) of the ResNet."""
    if stage not in (1, 2, 3, 4):
        raise ValueError(f"stage is a residual stage, 1 to 4; got {stage}")
    visual = clip.visual
    feats = features(clip, pixels, index, stages=stage).float()
    b, c, h, w = feats.shape

    def finish(z: torch.Tensor) -> torch.Tensor:
        x = z.transpose(1, 2).reshape(-1, c, h, w).to(clip.dtype)
        return attention_pool(visual.attnpool, finish_trunk(visual, x, stage)).embedding

    tokens = feats.flatten(2).transpose(1, 2)  # [B, N, C]
    with torch.no_grad():
        score = cosine(finish(tokens), targets)
    heat = fit_bottleneck(tokens, finish, targets, beta, var, steps, lr, samples, seed)
    return MethodOutput(heat.reshape(b, h, w), score)
