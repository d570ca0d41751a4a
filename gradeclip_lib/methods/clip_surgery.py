"""CLIP Surgery (Li et al. 2023), added as a parallel computation on the model's own forward.

Architecture surgery: from the first of the last ``depth`` blocks, a second path accumulates v-v
self-attention outputs (q and k replaced by v, multi-head, through out_proj, no FFN), computed from
the original path's tokens. Feature surgery: each patch feature's cosine with the text minus the
part it shares with redundant features: those of the empty string by default, or of a label set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models.clip import Clip
from .common import cosine, vision_pass
from .registry import MethodOutput, register


def surgery_tokens(run) -> torch.Tensor:
    """The v-v path's tokens after the captured blocks [B, N, D]."""
    tokens = run.records[0].input
    for record in run.records:
        attn, block = record.block.attn, record.block
        v = record.split_heads(record.qkv()[2])
        vv = (v @ v.transpose(-1, -2) / math.sqrt(v.shape[-1])).softmax(dim=-1) @ v
        vv = vv.transpose(1, 2).reshape(tokens.shape).to(tokens.dtype)
        tokens = tokens + block.ls_1(F.linear(vv, attn.out_proj.weight, attn.out_proj.bias))
    return tokens


def feature_surgery(feats: torch.Tensor, cls: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """CLIP Surgery's `clip_feature_surgery` for a set of texts [B, T, E]: similarity [B, N, T]."""
    prob = (2 * torch.einsum("be,bte->bt", cls, texts)).softmax(-1)
    weight = prob / prob.mean(-1, keepdim=True)
    prod = feats.unsqueeze(2) * texts.unsqueeze(1) * weight[:, None, :, None]  # [B, N, T, E]
    return (prod - prod.mean(dim=2, keepdim=True)).sum(-1)


@register("clip_surgery", families=["clip_vit"], cost="1 fwd", quadratic=2)
def clip_surgery_image(clip: Clip, pixels, targets, index, depth: int = 6,
                       labels: Sequence[str] | None = None) -> MethodOutput:
    """CLIP Surgery maps over the patches; ``labels`` (other class names) replace the empty string."""
    depth = min(depth, len(clip.vision_blocks))
    run = vision_pass(clip, pixels, index, first=-depth, grad=False)
    visual = clip.visual
    feats = F.normalize((visual.ln_post(surgery_tokens(run)[:, 1:]) @ visual.proj).float(), dim=-1)
    text = F.normalize(targets.float(), dim=-1)
    if labels is None:
        redundant = clip.encode_text([""])  # [1, E]
        sim = feats @ (text - redundant).unsqueeze(-1)
        sim = sim[..., 0]
    else:
        others = clip.encode_text(list(labels)).expand(len(text), -1, -1)
        texts = torch.cat([text.unsqueeze(1), others], dim=1)
        cls = F.normalize(run.embedding.float(), dim=-1)
        sim = feature_surgery(feats, cls, texts)[..., 0]
    return MethodOutput(sim.reshape(-1, *run.grid), cosine(run.embedding, targets))
