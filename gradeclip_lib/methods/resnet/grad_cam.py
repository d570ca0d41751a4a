"""Grad-CAM (Selvaraju et al. 2017) on the last residual stage of a ResNet CLIP, as it was defined for
CNNs: alpha_c = mean over cells of dS/dA_c, map = ReLU(sum_c alpha_c A_c), A the stage's feature map."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ...models.clip import Clip
from ...models.passes import resnet_features as features
from ...models.resnet_tower import attention_pool
from ..common import cosine
from ..registry import MethodOutput, register


@register("grad_cam", families=["clip_resnet"], cost="1 fwd + 1 bwd (through the attention pool)")
def grad_cam_resnet(clip: Clip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor) -> MethodOutput:
    feats = features(clip, pixels, index).requires_grad_(True)
    score = cosine(attention_pool(clip.visual.attnpool, feats).embedding, targets)
    (grad,) = torch.autograd.grad(score.sum(), feats)
    alpha = grad.float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * feats.detach().float()).sum(1))
    return MethodOutput(cam, score.detach())
