"""The authors' recomputed attention (`clip_encode_dense` in `generate_emap.py`): one head over the full
width, scale 1/sqrt(D), used by Grad-ECLIP's paper mode. It changes the model's forward on purpose."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock


@dataclass
class SingleHeadStep:
    """One recomputed block: raw q, k, v [B, N, D], the attention output o (in the graph) and the
    authors' q_out, k_out (q and k passed through out_proj, bias included)."""

    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    o: torch.Tensor
    q_out: torch.Tensor
    k_out: torch.Tensor


def single_head_block(
    block: ResidualAttentionBlock, x: torch.Tensor, attn_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, SingleHeadStep]:
    """The block's forward with its attention recomputed as one full-width head; returns (y, step)."""
    attn = block.attn
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    # softmax(q k^T / sqrt(D) + mask) v, through the kernels that never hold the tokens x tokens weights
    mask = None if attn_mask is None else attn_mask.to(q.dtype)
    o = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], attn_mask=mask,
                                       scale=1 / math.sqrt(q.shape[-1]))[:, 0]
    y = x + block.ls_1(F.linear(o, attn.out_proj.weight, attn.out_proj.bias))
    y = y + block.ls_2(block.mlp(block.ln_2(y)))
    with torch.no_grad():
        q_out = F.linear(q, attn.out_proj.weight, attn.out_proj.bias)
        k_out = F.linear(k, attn.out_proj.weight, attn.out_proj.bias)
    return y, SingleHeadStep(q.detach(), k.detach(), v.detach(), o, q_out, k_out)
