"""M2IB (Wang et al. 2023): a multi-modal information bottleneck on one block's output.

Z = lambda * R + (1 - lambda) * eps with lambda = sigmoid(alpha) per token and channel, eps ~ N(0, var);
alpha is fitted by Adam to minimise beta * KL(Z | R) - cos(f(Z), f_T); the map is the KL summed over
channels (how much of each token the bottleneck lets through)."""

from __future__ import annotations

import torch

from ..models.clip import Clip
from ..models.towers import run_blocks, vision_embedding, vision_tokens
from .common import cosine
from .registry import MethodOutput, register_image


def capacity(mu: torch.Tensor, noise_var: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, noise_var) || N(0, 1) ) per element (IBA's `_calc_capacity`)."""
    return -0.5 * (1 + torch.log(noise_var) - mu.pow(2) - noise_var)


@register_image("m2ib", cost="steps x samples x (fwd + bwd) of the blocks after the bottleneck")
def m2ib_image(clip: Clip, pixels, targets, index, layer: int | None = None, beta: float = 0.1, var: float = 1.0,
               steps: int = 10, lr: float = 1.0, samples: int = 10, seed: int = 0) -> MethodOutput:
    """M2IB maps; ``layer`` is the block whose output passes the bottleneck (default: the fourth from
    the end, block 9 of ViT-B/16's 12 as in the paper)."""
    blocks = clip.vision_blocks
    layer = len(blocks) - 3 if layer is None else layer % len(blocks)
    grid = (pixels.shape[-2] // clip.patch_size, pixels.shape[-1] // clip.patch_size)
    rest = blocks[layer + 1 :]
    with torch.no_grad():
        feats = run_blocks(blocks[: layer + 1], vision_tokens(clip.visual, pixels))[index].float()
        score = cosine(vision_embedding(clip.visual, run_blocks(rest, feats.to(clip.dtype))), targets)
    std = var**0.5
    alpha = torch.full_like(feats, 5.0, requires_grad=True)
    opt = torch.optim.Adam([alpha], lr=lr)
    gen = torch.Generator(device=feats.device).manual_seed(seed)
    text = targets.float().repeat(samples, 1)
    for _ in range(steps):
        lam = torch.sigmoid(alpha)
        mu, noise_var = feats / std * lam, (1 - lam).pow(2)
        eps = torch.randn((samples, *feats.shape), generator=gen, device=feats.device)
        z = ((mu + noise_var.sqrt() * eps) * std).flatten(0, 1)
        f = vision_embedding(clip.visual, run_blocks(rest, z.to(clip.dtype)))
        fit = cosine(f, text).reshape(samples, -1).mean(0)
        loss = (beta * capacity(mu, noise_var).mean(dim=(1, 2)) - fit).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        lam = torch.sigmoid(alpha)
        heat = capacity(feats / std * lam, (1 - lam).pow(2)).sum(-1)[:, 1:]
    return MethodOutput(heat.reshape(-1, *grid), score)
