"""Grad-ECLIP word weights for one text against many images in one pass of the text.

The image enters the text explanation only through dS/df_T = (i - S f_T/|f_T|) / |f_T|, the gradient of
the cosine at the text embedding. Everything else depends on the text alone: the values and spatial
weights of the last n blocks, and how the end token's attention output at each of those blocks reaches
f_T. In a causal text tower that path runs along the end token's row only (earlier tokens never attend
to it), so its Jacobian comes from the end token's row re-run through the later blocks, the other
tokens' keys and values held at their values. Then, for every image, the word weights are
ReLU(g M) with M = sum_l J_l W_out,l (v_l lambda_l)^T: one [E, L] matrix per text.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..adapters import canonical_mode
from ..adapters.targets import cosine_gradient
from ..models.clip import Clip
from ..models.single_head import single_head_block
from ..models.towers import run_blocks, text_embedding, text_mask, text_tokens
from .common import text_keep, text_pass
from .registry import MethodOutput
from .shared_image import per_image_matmul
from .spatial_weight import forward_lambda, minmax, qk_cosine, spatially_weighted_values


def _row_attention(block, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, visible: torch.Tensor,
                   heads: int) -> torch.Tensor:
    """The end token's attention output after out_proj [B, D]: its query against the fixed ``keys`` and
    ``values`` [B, L, D] of the other tokens (``visible`` [B, L]: those it may attend to) and its own."""
    attn = block.attn
    q, k, v = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    b, n, d = keys.shape
    hd = d // heads
    qh = q.reshape(b, heads, 1, hd)
    kh = keys.reshape(b, n, heads, hd).transpose(1, 2)  # fixed: kept apart from the row's own key, so that
    vh = values.reshape(b, n, heads, hd).transpose(1, 2)  # the backward pass never forms their gradients
    logits = (qh @ kh.transpose(-1, -2)).squeeze(2) / math.sqrt(hd)  # [B, heads, L]
    logits = logits.masked_fill(~visible[:, None, :], float("-inf"))
    own = (q * k).reshape(b, heads, 1, hd).sum(-1) / math.sqrt(hd)  # [B, heads, 1]
    p = torch.cat([logits, own], dim=-1).softmax(-1)
    o = (p[:, :, None, :n] @ vh).squeeze(2) + p[:, :, n:] * v.reshape(b, heads, hd)
    o = o.reshape(b, d)
    return F.linear(o, attn.out_proj.weight, attn.out_proj.bias)


def end_token_jacobians(clip: Clip, blocks, x_first: torch.Tensor, qkv: list, eos: torch.Tensor,
                        heads: int) -> list[torch.Tensor]:
    """d f_T / d a_l [B, E, D] for the end token's attention output a_l (after out_proj) of each block:
    the end token's row run through ``blocks`` from its input ``x_first`` [B, D], the other tokens' keys
    and values ``qkv[l]`` ([B, L, D] each) held fixed. One batched backward pass over the embedding."""
    tower = clip.text_tower
    positions = torch.arange(qkv[0][1].shape[1], device=eos.device)
    before = positions[None, :] < eos[:, None]  # the earlier tokens the end token sees
    with torch.enable_grad():
        x, outs = x_first.detach().requires_grad_(True), []  # a leaf, so that the row is in the graph
        for block, (_, k, v) in zip(blocks, qkv):
            a = _row_attention(block, x, k.to(x.dtype), v.to(x.dtype), before, heads)
            outs.append(a)
            x = x + block.ls_1(a)
            x = x + block.ls_2(block.mlp(block.ln_2(x)))
        f = tower.project(tower.ln_final(x))
        dims = f.shape[-1]
        basis = torch.eye(dims, device=f.device, dtype=f.dtype)[:, None, :].expand(dims, *f.shape)
        jacs = torch.autograd.grad(f, outs, grad_outputs=basis, is_grads_batched=True)
    return [j.float().permute(1, 0, 2) for j in jacs]


def shared_text_terms(clip: Clip, ids: torch.Tensor, mode: str, spatial_weight: bool, qk: str, n_layers: int):
    """For distinct texts ``ids`` [B, L]: M [B, E, L] (word weights before the ReLU are g M for an image's
    cosine gradient g) and the text embeddings [B, E]."""
    mode = canonical_mode(mode)
    tower = clip.text_tower
    n = min(n_layers, len(tower.blocks))
    blocks = tower.blocks[-n:]
    eos = ids.argmax(dim=-1)
    rows = torch.arange(len(ids), device=ids.device)
    with torch.no_grad():
        if mode == "forward":
            run = text_pass(clip, ids, first=-n, grad=False)
            f = run.embedding.float()
            positions = torch.arange(ids.shape[1], device=ids.device)
            visible = positions[None, :] <= eos[:, None]
            qkv = [r.qkv() for r in run.records]
            lams = [forward_lambda(r, eos, visible, qk) if spatial_weight else None for r in run.records]
            heads = run.records[0].heads
            x_first = run.records[0].input[rows, eos]
        else:
            x = text_tokens(tower, ids)
            mask = text_mask(tower, ids.shape[1], x.dtype)
            x = run_blocks(tower.blocks[:-n], x, mask)
            x_first = x[rows, eos]
            qkv, lams = [], []
            for block in blocks:
                x, step = single_head_block(block, x, mask)
                qkv.append((step.q.float(), step.k.float(), step.v.float()))
                lams.append(minmax(qk_cosine(step.q_out[rows, eos].float(), step.k_out.float()))
                            if spatial_weight else None)
            f = text_embedding(tower, x, ids).float()
            heads = 1
    jacs = end_token_jacobians(clip, blocks, x_first, qkv, eos, heads)
    m = 0
    for block, jac, (_, _, v), lam in zip(blocks, jacs, qkv, lams):
        weighted = spatially_weighted_values(v.float(), lam, heads)  # [B, L, D]
        m = m + (jac @ block.attn.out_proj.weight.float()) @ weighted.transpose(1, 2)  # [B, E, L]
    return m, f


def grad_eclip_text_shared(clip: Clip, ids: torch.Tensor, targets: torch.Tensor, mode: str = "forward",
                           spatial_weight: bool = True, qk: str = "head", n_layers: int = 8) -> MethodOutput:
    """Grad-ECLIP word weights [P, L] and scores [P] for pairs (ids[p], targets[p]) with one pass per
    distinct text, however many images (image embeddings ``targets``) it is explained against."""
    mode = canonical_mode(mode)
    distinct, text_of = torch.unique(ids, dim=0, return_inverse=True)
    m, f = shared_text_terms(clip, distinct, mode, spatial_weight, qk, n_layers)
    grad_f, scores = cosine_gradient(f[text_of], targets.float())
    weights = F.relu(per_image_matmul(grad_f, m, text_of)) * text_keep(ids)
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    return MethodOutput(weights, scores)
