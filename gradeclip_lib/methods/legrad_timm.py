"""LeGrad (`legrad`) on open_clip's timm towers.

SigLIP (the authors' definition, ``LeWrapper.compute_legrad_siglip``): for each block l from ``layer_index``,
the MAP head applied to that block's output tokens (as their code does: without the trunk's final norm),
normalised, dotted with the unit text embedding; the gradient with respect to the head's attention
probabilities at its probe, clamped at 0, averaged over heads. The maps are summed over blocks. Their
correction: the same map for the "empty" prompt "a photo of a", min-maxed; where it exceeds 0.8 the map is
set to 0; then min-max. (Their code encodes the prompt with ViT-B-16-SigLIP's tokenizer for every model;
here the model's own tokenizer, or an embedding given, encodes it.)

EVA-02 (our reading: the authors' code has no Eva): as for CLIP ViT, block l's feature is the tower's own
norm and heads on the mean of its output tokens; the gradient is taken with respect to block l's
self-attention probabilities, averaged over heads and query rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import GradEclipError, TextError, WeightsUnavailableError
from ..explanation import minmax
from ..models.clip import Clip
from ..models.timm_passes import (
    EvaRecorder,
    PoolRecorder,
    eva_blocks,
    run_trunk_blocks,
    tower_embedding,
    trunk_input,
)
from .common import cosine, token_grid
from .legrad import block_relevance
from .registry import MethodOutput, register

EMPTY_PROMPT = "a photo of a"  # the authors' "empty" prompt for the SigLIP correction
CORRECTION_THRESHOLD = 0.8


def empty_embedding(clip: Clip, empty_prompt: str | torch.Tensor) -> torch.Tensor:
    """The unit embedding [1, E] of the correction's prompt (a string, or its embedding)."""
    if isinstance(empty_prompt, torch.Tensor):
        return F.normalize(empty_prompt.float().reshape(1, -1), dim=-1).to(clip.device)
    try:
        return clip.encode_text([empty_prompt])
    except (TextError, WeightsUnavailableError) as err:
        raise GradEclipError(f"LeGrad's SigLIP correction encodes the prompt {empty_prompt!r}, which failed: {err}\n"
                             "Pass empty_prompt=None to skip the correction, or empty_prompt=<its text embedding>."
                             ) from err


def block_outputs(clip: Clip, pixels: torch.Tensor, first: int) -> list[torch.Tensor]:
    """The output tokens of blocks ``first`` .. L-1 [I, N, D] of a timm tower, without a graph."""
    visual = clip.visual
    x, rope = trunk_input(visual, pixels)
    blocks = visual.trunk.blocks
    outputs = []
    with torch.no_grad():
        x = run_trunk_blocks(blocks[:first], x, rope)
        for block in blocks[first:]:
            x = run_trunk_blocks([block], x, rope)
            outputs.append(x)
    return outputs


def probe_relevance(pool, tokens: torch.Tensor, units: list[torch.Tensor]) -> list[torch.Tensor]:
    """For each unit embedding [B, E] in ``units``: the gradient of cos(pool(tokens), t) with respect to the
    pool's attention at its probe, clamped at 0 and averaged over heads [B, N] (dS/dA_h[0, i] = g_h . v_h[i],
    g the gradient at the pooling attention's output before its projection)."""
    with torch.enable_grad(), PoolRecorder(pool, leaf=True) as run:
        feature = F.normalize(pool(tokens).float(), dim=-1)
        maps = []
        for unit in units:
            (grad,) = torch.autograd.grad((feature * unit).sum(), run.o, retain_graph=True)
            g = grad.reshape(*grad.shape[:2], pool.num_heads, -1).transpose(1, 2)  # [B, H, 1, d]
            maps.append(block_relevance(g, run.v))
    return maps


@register("legrad", families=["clip_siglip"], cost="1 fwd + 1 bwd of the MAP head per explained block (twice "
          "with the correction)")
def legrad_siglip(clip: Clip, pixels, targets, index, layer_index: int = -2,
                  empty_prompt: str | torch.Tensor | None = EMPTY_PROMPT) -> MethodOutput:
    """LeGrad maps [B, h, w] in [0, 1] of a SigLIP tower over blocks ``layer_index`` .. L-1, with the authors'
    correction by ``empty_prompt`` (None: without it); the scores are the model's own cosine."""
    visual = clip.visual
    pool = visual.trunk.attn_pool
    first = layer_index % len(visual.trunk.blocks)
    units = [F.normalize(targets.float(), dim=-1)]
    if empty_prompt is not None:
        units.append(empty_embedding(clip, empty_prompt).expand(len(index), -1))
    relevance = [0, 0]
    outputs = block_outputs(clip, pixels, first)
    for tokens in outputs:
        for i, m in enumerate(probe_relevance(pool, tokens[index], units)):
            relevance[i] = relevance[i] + m
    grid = token_grid(clip, pixels)
    maps = relevance[0].reshape(-1, *grid)
    if empty_prompt is not None:
        maps = maps.masked_fill(minmax(relevance[1].reshape(-1, *grid)) > CORRECTION_THRESHOLD, 0.0)
    with torch.no_grad():  # the model's own embedding, from the last block's output already at hand
        score = cosine(tower_embedding(visual, outputs[-1])[index], targets)
    return MethodOutput(minmax(maps).detach(), score)


@register("legrad", families=["clip_eva"], cost="1 fwd + 1 bwd per explained block", quadratic=2)
def legrad_eva(clip: Clip, pixels, targets, index, layer_index: int = -2) -> MethodOutput:
    """LeGrad maps [B, h, w] in [0, 1] of an EVA-02 tower over blocks ``layer_index`` .. L-1; the scores are the
    model's own cosine."""
    visual = clip.visual
    blocks = eva_blocks(visual)
    first = layer_index % len(blocks)
    with torch.no_grad():
        x, rope = trunk_input(visual, pixels)
        x = run_trunk_blocks(blocks[:first], x, rope)[index]
    unit = F.normalize(targets.float(), dim=-1)
    npt = visual.trunk.num_prefix_tokens
    with torch.enable_grad(), EvaRecorder(blocks[first:], leaf=True) as run:
        score = cosine(tower_embedding(visual, run_trunk_blocks(blocks[first:], x, rope)), targets)
        relevance = 0
        for i, (tokens, o) in enumerate(zip(run.outputs, run.o)):
            s = (F.normalize(tower_embedding(visual, tokens.mean(1, keepdim=True)).float(), dim=-1) * unit).sum(-1)
            (grad,) = torch.autograd.grad(s.sum(), o, retain_graph=True)
            v = run.qkv(i)[2]
            g = grad.reshape(*grad.shape[:2], v.shape[1], -1).transpose(1, 2)
            relevance = relevance + block_relevance(g, v)[:, npt:]
    return MethodOutput(minmax(relevance.reshape(-1, *token_grid(clip, pixels))).detach(), score.detach())
