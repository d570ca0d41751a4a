"""One differentiable vision pass that gives both the image embedding and dense patch features from the
last block's value path (the features MaskCLIP reads out and the authors' ``clip_encode_dense`` uses)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer

from ..models.towers import run_blocks, vision_embedding, vision_tokens


def encode_with_dense(visual: VisionTransformer, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(image embeddings [B, E], dense patch features [B, N, E]) from one pass of ``visual``.

    The first blocks run once; the last block runs as the model does for the embedding, and along its
    value path for the dense features: v' = x + out_proj(v), v' + MLP(ln_2 v'), then ln_post and proj per
    patch token (no attention mixing, so each feature stays at its patch)."""
    blocks = visual.transformer.resblocks
    x = run_blocks(blocks[:-1], vision_tokens(visual, pixels))
    last = blocks[-1]
    embedding = vision_embedding(visual, run_blocks([last], x))
    attn = last.attn
    width = x.shape[-1]
    v = F.linear(last.ln_1(x), attn.in_proj_weight[2 * width :], attn.in_proj_bias[2 * width :])
    dense = x + last.ls_1(F.linear(v, attn.out_proj.weight, attn.out_proj.bias))
    dense = dense + last.ls_2(last.mlp(last.ln_2(dense)))
    return embedding, visual.ln_post(dense[:, 1:]) @ visual.proj
