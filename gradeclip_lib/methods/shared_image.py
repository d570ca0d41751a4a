"""Grad-ECLIP for many texts on one image in one forward pass.

In Grad-ECLIP the text enters only through the channel weights w = dS/do, the gradient of the cosine
at the class token's attention output o. The values v, the spatial weight lambda and the path from o
to the image embedding f (out_proj, residual, MLP, ln_post, proj) depend on the image alone, so

    w_t = (dS_t/df) (df/d out) W_out,    dS_t/df = (t - S_t f/|f|) / |f|

with ``df/d out`` one small Jacobian per image (embedding width x attention width) and ``dS_t/df`` in
closed form. Every map is then ReLU(w_t . (v lambda)): a matrix product per image, whatever the number
of texts. Exact, not an approximation: the tests hold it to the per-text backward pass in fp32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..capture import Capture
from ..models.clip import Clip
from ..models.towers import run_blocks, vision_embedding
from .common import token_grid, vision_trunk
from .registry import MethodOutput
from .single_head import single_head_block
from .spatial_weight import faithful_lambda, minmax, qk_cosine, spatially_weighted_values


def class_token_readout(clip: Clip, x_in: torch.Tensor, tokens: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The image embedding [B, E] as a function of the class token's attention output after out_proj
    [B, D], everything else held at its value: the last block's residual and MLP on the class token
    (``x_in``: the block's input tokens), then the model's own pooling of ``tokens`` (the block's output,
    whose class row is replaced) and projection. Patch tokens do not depend on the class token's output."""
    block, visual = clip.vision_blocks[-1], clip.visual
    x_cls, rest = x_in[:, 0], tokens[:, 1:]
    class_token_only = getattr(visual, "attn_pool", None) is None and getattr(visual, "pool_type", "tok") == "tok"

    def embedding(out_cls: torch.Tensor) -> torch.Tensor:
        y = x_cls + block.ls_1(out_cls)
        y = y + block.ls_2(block.mlp(block.ln_2(y)))
        if class_token_only:  # the usual CLIP: ln_post and proj of the class token alone, not of every token
            y = visual.ln_post(y)
            return y @ visual.proj if visual.proj is not None else y
        return vision_embedding(visual, torch.cat([y[:, None], rest], dim=1))

    return embedding


def readout_jacobian(readout: Callable[[torch.Tensor], torch.Tensor], out_cls: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(df/d out [B, E, D] in float32, the embedding f [B, E]): one batched backward pass per embedding
    dimension, through the class token's path only."""
    point = out_cls.detach().requires_grad_(True)
    with torch.enable_grad():
        f = readout(point)
    dims = f.shape[-1]
    basis = torch.eye(dims, device=f.device, dtype=f.dtype)[:, None, :].expand(dims, *f.shape)
    (jac,) = torch.autograd.grad(f, point, grad_outputs=basis, is_grads_batched=True)  # [E, B, D]
    return jac.float().permute(1, 0, 2), f.detach().float()


def cosine_gradient(f: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(dS/df [P, E], S [P]) for S = cos(f, t), rows of ``f`` against unit rows of ``t``."""
    norm = f.norm(dim=-1, keepdim=True)
    unit = f / norm
    score = (unit * t).sum(-1)
    return (t - score[:, None] * unit) / norm, score


def per_image_matmul(rows: torch.Tensor, mats: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``rows[p] @ mats[index[p]]`` for every p ([P, K] x [B, K, L] -> [P, L]) as one batched product
    over images (rows grouped and zero-padded per image), without a copy of ``mats`` per row."""
    b = mats.shape[0]
    order = torch.argsort(index, stable=True)
    counts = torch.bincount(index, minlength=b)
    starts = torch.cumsum(counts, 0) - counts
    img = index[order]
    pos = torch.arange(len(order), device=index.device) - starts[img]
    padded = rows.new_zeros(b, int(counts.max()), rows.shape[-1])
    padded[img, pos] = rows[order]
    out = torch.bmm(padded, mats)
    result = out.new_empty(len(order), out.shape[-1])
    result[order] = out[img, pos]
    return result


def shared_image_terms(clip: Clip, pixels: torch.Tensor, mode: str, spatial_weight: bool, qk: str):
    """One forward pass over the distinct images: values, spatial weight, heads, the readout's
    Jacobian [B, E, D] with respect to the attention output before out_proj, and the embeddings."""
    blocks = clip.vision_blocks
    attn = blocks[-1].attn
    images = torch.arange(len(pixels), device=pixels.device)
    x = vision_trunk(clip, pixels, images, len(blocks) - 1)
    with torch.no_grad():
        if mode == "faithful":
            with Capture(blocks[-1:], leaf=False) as cap:
                tokens = run_blocks(blocks[-1:], x)
            record = cap.records[0]
            v = record.qkv()[2]
            out_cls = record.out[:, 0]
            cls = torch.zeros(len(pixels), dtype=torch.long, device=pixels.device)
            lam = faithful_lambda(record, cls, slice(1, None), qk) if spatial_weight else None
            heads = record.heads
        else:
            tokens, step = single_head_block(blocks[-1], x)
            v = step.v.float()
            out_cls = F.linear(step.o[:, 0], attn.out_proj.weight, attn.out_proj.bias)
            lam = minmax(qk_cosine(step.q_out[:, 0].float(), step.k_out[:, 1:].float())) if spatial_weight else None
            heads = 1
    jac, f = readout_jacobian(class_token_readout(clip, x, tokens), out_cls)
    jac = jac @ attn.out_proj.weight.float()  # with respect to o, before out_proj
    return spatially_weighted_values(v[:, 1:].float(), lam, heads), jac, f, token_grid(clip, pixels)


def grad_eclip_shared(clip: Clip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                      mode: str = "faithful", spatial_weight: bool = True, qk: str = "head") -> MethodOutput:
    """Grad-ECLIP maps [P, h, w] and scores [P] for pairs (pixels[index[p]], targets[p]) with one forward
    pass per distinct image and one Jacobian per image, however many texts share it."""
    weighted, jac, f, grid = shared_image_terms(clip, pixels, mode, spatial_weight, qk)
    grad_f, scores = cosine_gradient(f[index], targets.float())
    w = per_image_matmul(grad_f, jac, index)  # dS/do [P, D]
    maps = F.relu(per_image_matmul(w, weighted.transpose(1, 2), index))  # [P, N]
    return MethodOutput(maps.reshape(-1, *grid), scores)
