"""LeGrad (Bousselham et al., ICCV 2025; the authors' package ``legrad-torch`` 1.1, ``LeWrapper``).

For each block l from ``layer_index`` (default -2: the last two) to the last, the image feature of that
block's output tokens x_l, f_l = normalize(ln_post(mean over all tokens of x_l) proj), is scored against the
unit text embedding t: s_l = f_l . t. The block's map is the gradient of s_l with respect to its attention
probabilities A_l, clamped at 0, averaged over heads and over every query row, at the patch columns; the
maps are summed over the blocks and min-maxed. dS/dA_h[t, i] = g_h[t] . v_h[i] from the gradient g at the
attention output before out_proj (as in GAME), so no probability has to be stored by the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..capture import Capture
from ..explanation import minmax
from ..models.clip import Clip
from ..models.towers import run_blocks, vision_embedding
from .common import cosine, token_grid, vision_trunk
from .registry import MethodOutput, register


def block_feature(clip: Clip, tokens: torch.Tensor) -> torch.Tensor:
    """LeGrad's image feature of one block's output tokens [B, N, D]: ln_post of the mean over every token
    (the class token included), projected, L2-normalised [B, E]."""
    visual = clip.visual
    pooled = visual.ln_post(tokens.mean(dim=1))
    return F.normalize(pooled @ visual.proj if visual.proj is not None else pooled, dim=-1)


@register("legrad", families=["clip_vit"], cost="1 fwd + 1 bwd per explained block", quadratic=2)
def legrad_image(clip: Clip, pixels, targets, index, layer_index: int = -2) -> MethodOutput:
    """LeGrad maps [B, h, w] in [0, 1] over blocks ``layer_index`` .. L-1; the scores are the model's own
    cosine S (LeGrad explains each block's s_l, of which the last block's feature is not the model's)."""
    blocks = clip.vision_blocks
    first = layer_index % len(blocks)
    x = vision_trunk(clip, pixels, index, first)
    outputs = []
    with torch.enable_grad(), Capture(blocks[first:], leaf=True) as cap:
        for block in blocks[first:]:
            x = run_blocks([block], x)
            outputs.append(x)
        score = cosine(vision_embedding(clip.visual, x), targets)
        unit = F.normalize(targets.float(), dim=-1)
        relevance = 0
        for record, tokens in zip(cap.records, outputs):
            s = (block_feature(clip, tokens).float() * unit).sum(-1)
            (grad,) = torch.autograd.grad(s.sum(), record.out, retain_graph=True)
            g = record.split_heads(record.grad_to_o(grad))
            v = record.split_heads(record.qkv()[2])
            d_attn = (g @ v.transpose(-1, -2)).clamp(min=0)  # [B, H, N, N]: dS/dA_h[t, i] = g_h[t] . v_h[i]
            relevance = relevance + d_attn.mean(dim=1).mean(dim=1)[:, 1:]
    grid = token_grid(clip, pixels)
    return MethodOutput(minmax(relevance.reshape(-1, *grid)).detach(), score.detach())
