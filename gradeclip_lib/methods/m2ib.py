"""M2IB (Wang et al. 2023): a multi-modal information bottleneck on one block's output.

Z = lambda * R + (1 - lambda) * eps with lambda = sigmoid(alpha) per token and channel, eps ~ N(0, var);
alpha is fitted by Adam to minimise beta * KL(Z | R) - cos(f(Z), target); the map is the KL summed over
channels (how much of each token the bottleneck lets through), read as the authors' `IBAInterpreter` reads
it: the capacity of the last training forward, before the last Adam update (with 10 steps, alpha after 9
updates). Their ``var`` never reaches the bottleneck's forward (its noise is always N(0, 1)), so only
``var=1`` reproduces them. The image branch explains the image against the text's embedding, the text
branch the text against the image's."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..models.clip import Clip
from ..models.towers import run_blocks, text_embedding, text_mask, text_tokens, vision_embedding
from .common import cosine, token_grid, vision_trunk
from .registry import MethodOutput, register
from .text_maps import text_weights


def capacity(mu: torch.Tensor, noise_var: torch.Tensor) -> torch.Tensor:
    """KL( N(mu, noise_var) || N(0, 1) ) per element (IBA's `_calc_capacity`)."""
    return -0.5 * (1 + torch.log(noise_var) - mu.pow(2) - noise_var)


def fit_bottleneck(feats: torch.Tensor, finish: Callable[[torch.Tensor], torch.Tensor], targets: torch.Tensor,
                   beta: float, var: float, steps: int, lr: float, samples: int, seed: int) -> torch.Tensor:
    """Fit one bottleneck per row of ``feats`` [B, N, D] (float32); ``finish`` maps bottlenecked features
    [S*B, N, D] to embeddings. Returns the capacity per token [B, N] of the last forward (the authors' map:
    their interpreter keeps the capacity its last forward buffered, before that step's update)."""
    if steps < 1:
        raise ValueError(f"M2IB needs at least one step, got steps={steps}")
    std = var**0.5
    alpha = torch.full_like(feats, 5.0, requires_grad=True)
    opt = torch.optim.Adam([alpha], lr=lr)
    gen = torch.Generator(device=feats.device).manual_seed(seed)
    target = targets.float().repeat(samples, 1)
    for step in range(steps):
        lam = torch.sigmoid(alpha)
        mu, noise_var = feats / std * lam, (1 - lam).pow(2)
        kl = capacity(mu, noise_var)
        if step == steps - 1:  # the map is read here: the rest of this step would not change it
            break
        # one noise draw shared by every row, so a batch gives each row the map it gets alone
        eps = torch.randn((samples, 1, *feats.shape[1:]), generator=gen, device=feats.device)
        z = ((mu + noise_var.sqrt() * eps) * std).flatten(0, 1)
        fit = cosine(finish(z), target).reshape(samples, -1).mean(0)
        loss = (beta * kl.mean(dim=(1, 2)) - fit).sum()  # rows are independent
        opt.zero_grad()
        loss.backward()
        opt.step()
    return kl.detach().sum(-1)


def _layer(layer: int | None, depth: int) -> int:
    """Default: the fourth block from the end (block 9 of 12, as in the paper)."""
    return depth - 3 if layer is None else layer % depth


@register("m2ib", families=["clip_vit"], cost="(steps - 1) x samples x (fwd + bwd) of the blocks after the bottleneck")
def m2ib_image(clip: Clip, pixels, targets, index, layer: int | None = None, beta: float = 0.1, var: float = 1.0,
               steps: int = 10, lr: float = 1.0, samples: int = 10, seed: int = 0) -> MethodOutput:
    """M2IB maps over the patches; ``layer`` is the block whose output passes the bottleneck."""
    blocks = clip.vision_blocks
    layer = _layer(layer, len(blocks))
    rest = blocks[layer + 1 :]

    def finish(z: torch.Tensor) -> torch.Tensor:
        return vision_embedding(clip.visual, run_blocks(rest, z.to(clip.dtype)))

    feats = vision_trunk(clip, pixels, index, layer + 1).float()
    with torch.no_grad():
        score = cosine(finish(feats), targets)
    heat = fit_bottleneck(feats, finish, targets, beta, var, steps, lr, samples, seed)[:, 1:]
    return MethodOutput(heat.reshape(-1, *token_grid(clip, pixels)), score)


@register("m2ib", families=["clip_text"],
          cost="(steps - 1) x samples x (fwd + bwd) of the text blocks after the bottleneck")
def m2ib_text(clip: Clip, ids, targets, layer: int | None = None, beta: float = 0.1, var: float = 1.0,
              steps: int = 10, lr: float = 1.0, samples: int = 10, seed: int = 0) -> MethodOutput:
    """M2IB word weights: the bottleneck on text block ``layer``'s output, fitted against the image."""
    tower = clip.text_tower
    layer = _layer(layer, len(tower.blocks))
    rest = tower.blocks[layer + 1 :]
    x = text_tokens(tower, ids)
    mask = text_mask(tower, ids.shape[1], x.dtype)

    def finish(z: torch.Tensor) -> torch.Tensor:
        repeat = len(z) // len(ids)
        return text_embedding(tower, run_blocks(rest, z.to(x.dtype), mask), ids.repeat(repeat, 1))

    with torch.no_grad():
        feats = run_blocks(tower.blocks[: layer + 1], x, mask).float()
        score = cosine(finish(feats), targets)
    heat = fit_bottleneck(feats, finish, targets, beta, var, steps, lr, samples, seed)
    return MethodOutput(text_weights(heat, ids), score)
