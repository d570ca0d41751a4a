"""MaskCLIP (Zhou et al. 2022): the last block's value path as dense features. v' = out_proj(v) + x,
v' += MLP(ln_2 v'), then ln_post and proj per token; the map is each patch's cosine with the text."""

from __future__ import annotations

import torch.nn.functional as F

from ..models.clip import Clip
from .common import cosine, vision_pass
from .registry import MethodOutput, register


@register("mask_clip", families=["clip_vit"], cost="1 fwd")
def mask_clip_image(clip: Clip, pixels, targets, index) -> MethodOutput:
    run = vision_pass(clip, pixels, index, first=-1, grad=False)
    record = run.records[0]
    block, x = record.block, record.input
    v = record.qkv()[2].to(x.dtype)
    dense = x + block.ls_1(F.linear(v, block.attn.out_proj.weight, block.attn.out_proj.bias))
    dense = dense + block.ls_2(block.mlp(block.ln_2(dense)))
    feats = clip.visual.ln_post(dense[:, 1:]) @ clip.visual.proj
    sim = F.cosine_similarity(feats.float(), targets.float().unsqueeze(1), dim=-1)
    return MethodOutput(sim.reshape(-1, *run.grid), cosine(run.embedding, targets))
