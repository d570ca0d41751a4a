"""Grad-ECLIP for many targets on one image in one forward pass, on any model family.

In Grad-ECLIP the target enters only through the channel weights w = dS/do, the gradient of the score at
the readout token's attention output o. The values v, the spatial weight lambda and the path from o to
the features f (output projection, residual, MLP, norms, projection or head) depend on the image alone, so

    w_t = (dS_t/df) (df/do)

with ``df/do`` one small Jacobian per image (feature width x attention width, `ExplainedLayer.readout_features`)
and ``dS_t/df`` from the target (in closed form for a cosine). Every map is then ReLU(w_t . (v lambda)): a
matrix product per image, whatever the number of targets. Exact, not an approximation: the tests hold it
to the per-target backward pass in fp32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..adapters import adapter_for, canonical_mode
from .registry import MethodOutput
from .spatial_weight import readout_spatial_weight, spatially_weighted_values


def readout_jacobian(readout: Callable[[torch.Tensor], torch.Tensor], out_cls: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(df/d out [B, E, D] in float32, the features f [B, E]): one batched backward pass per feature
    dimension, through the readout token's path only."""
    point = out_cls.detach().requires_grad_(True)
    with torch.enable_grad():
        f = readout(point)
    dims = f.shape[-1]
    basis = torch.eye(dims, device=f.device, dtype=f.dtype)[:, None, :].expand(dims, *f.shape)
    (jac,) = torch.autograd.grad(f, point, grad_outputs=basis, is_grads_batched=True)  # [E, B, D]
    return jac.float().permute(1, 0, 2), f.detach().float()


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


def shared_image_terms(model, pixels: torch.Tensor, mode: str, spatial_weight: bool, qk: str):
    """One forward pass over the distinct images: the spatially weighted values [B, P, D], the Jacobian
    [B, E, D] of the features with respect to the readout's attention output before the output projection,
    the features [B, E] and the grid."""
    adapter = adapter_for(model)
    images = torch.arange(len(pixels), device=pixels.device)
    with torch.no_grad():
        layer = adapter.explained_layer(pixels, images, mode=mode, grad=False)
    lam = readout_spatial_weight(layer, qk) if spatial_weight else None
    jac, f = readout_jacobian(layer.readout_features, layer.readout_output())
    weighted = spatially_weighted_values(layer.patch_values(), lam, layer.heads)
    return weighted, layer.to_o(jac), f, layer.grid


def grad_eclip_shared(model, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                      mode: str = "forward", spatial_weight: bool = True, qk: str = "head",
                      **target_options) -> MethodOutput:
    """Grad-ECLIP maps [P, h, w] and scores [P] for pairs (pixels[index[p]], targets[p]) with one forward
    pass per distinct image and one Jacobian per image, however many targets share it."""
    mode = canonical_mode(mode)
    target = adapter_for(model).target(targets, **target_options)
    weighted, jac, f, grid = shared_image_terms(model, pixels, mode, spatial_weight, qk)
    grad_f, scores = target.gradient(f[index])
    w = per_image_matmul(grad_f, jac, index)  # dS/do [P, D]
    maps = F.relu(per_image_matmul(w, weighted.transpose(1, 2), index))  # [P, N]
    return MethodOutput(maps.reshape(-1, *grid), scores)
