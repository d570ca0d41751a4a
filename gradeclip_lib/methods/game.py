"""GAME / Bi-Modal (Chefer et al. 2021): gradient-weighted attention propagated through the layers.

R = I; for each block l from ``start_layer``: R += mean_h((dS/dA_l * A_l)^+) R. The target is the logit
(logit_scale.exp() * cos) as in Chefer's ``interpret``; dS/dA_h = g_h v_h^T is recomputed from the
gradient g of the attention output, so no attention probability has to be stored by the model.
"""

from __future__ import annotations

import torch

from ..models.clip import Clip
from .common import Pass, cosine, text_pass, vision_pass
from .registry import MethodOutput, register
from .text_maps import text_weights


def relevance(clip: Clip, run: Pass, score: torch.Tensor) -> torch.Tensor:
    """Chefer's relevance matrix R [B, N, N] over the captured blocks, for the logit of ``score``."""
    logit = clip.model.logit_scale.exp().float() * score
    grads = run.capture.grads(logit)
    rel = None
    for record, grad in zip(run.records, grads):
        attn = record.probs()  # [B, H, N, N]
        v = record.split_heads(record.qkv()[2])
        d_attn = record.split_heads(grad) @ v.transpose(-1, -2)  # dS/dA_h[t, i] = g_h[t] . v_h[i]
        cam = (d_attn * attn).clamp(min=0).mean(dim=1)
        if rel is None:
            rel = torch.eye(cam.shape[-1], device=cam.device).expand_as(cam)
        rel = rel + cam @ rel
    return rel


@register("game", families=["clip_vit"], cost="1 fwd + 1 bwd", quadratic=3)
def game_image(clip: Clip, pixels, targets, index, start_layer: int = -1) -> MethodOutput:
    """GAME maps: row of the class token of R, patch columns (``start_layer=-1``: the last block only)."""
    run = vision_pass(clip, pixels, index, first=start_layer)
    score = cosine(run.embedding, targets)
    rel = relevance(clip, run, score)[:, 0, 1:]
    return MethodOutput(rel.reshape(-1, *run.grid).detach(), score.detach())


@register("game", families=["clip_text"], cost="1 fwd + 1 bwd")
def game_text(clip: Clip, ids, targets, start_layer: int = -1) -> MethodOutput:
    """GAME word relevance: row of the end token of R over the text blocks from ``start_layer``."""
    run = text_pass(clip, ids, first=start_layer)
    score = cosine(run.embedding, targets)
    rows = torch.arange(ids.shape[0], device=ids.device)
    rel = relevance(clip, run, score)[rows, ids.argmax(-1)]
    return MethodOutput(text_weights(rel, ids), score.detach())
