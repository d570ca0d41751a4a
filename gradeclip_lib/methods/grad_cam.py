"""Grad-CAM on the last block's input tokens, as in the Grad-ECLIP authors' comparison:
alpha_c = mean over tokens of dS/dx[:, c]; map = ReLU(sum_c alpha_c x[i, c])."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..models.clip import Clip
from ..models.timm_passes import run_trunk_blocks, tower_embedding, trunk_input
from .common import cosine, token_grid, vision_pass
from .registry import MethodOutput, register


@register("grad_cam", families=["clip_vit"], cost="1 fwd + 1 bwd (to the last block)")
def grad_cam_image(clip: Clip, pixels, targets, index) -> MethodOutput:
    run = vision_pass(clip, pixels, index, first=-1)
    score = cosine(run.embedding, targets)
    x = run.records[0].input
    (grad,) = torch.autograd.grad(score.sum(), x)
    alpha = grad.float().mean(dim=1, keepdim=True)
    cam = F.relu((alpha * x.detach().float()[:, 1:]).sum(-1))
    return MethodOutput(cam.reshape(-1, *run.grid), score.detach())


@register("grad_cam", families=["clip_siglip", "clip_eva"], cost="1 fwd + 1 bwd (to the last block)")
def grad_cam_timm(clip: Clip, pixels, targets, index) -> MethodOutput:
    """The same on open_clip's timm towers (SigLIP, EVA-02): the tokens entering the trunk's last block."""
    visual = clip.visual
    blocks = visual.trunk.blocks
    with torch.no_grad():
        x, rope = trunk_input(visual, pixels)
        x = run_trunk_blocks(blocks[:-1], x, rope)[index]
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = cosine(tower_embedding(visual, run_trunk_blocks(blocks[-1:], x, rope)), targets)
        (grad,) = torch.autograd.grad(score.sum(), x)
    alpha = grad.float().mean(dim=1, keepdim=True)
    cam = F.relu((alpha * x.detach().float()[:, visual.trunk.num_prefix_tokens:]).sum(-1))
    return MethodOutput(cam.reshape(-1, *token_grid(clip, pixels)), score.detach())
