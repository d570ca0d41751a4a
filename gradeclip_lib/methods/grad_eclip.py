"""Grad-ECLIP (Zhao et al. 2024): channel weights from the gradient of the cosine at the attention
output, times values, times a loosened attention (min-maxed q-k cosine), ReLU.

Two modes:
- ``"paper"``: exactly the authors' `generate_emap.py`: the last block(s) recomputed with one head over
  the full width, q and k passed through out_proj for the spatial weight. Note that this changes the
  score being explained.
- ``"faithful"``: the same formula on the model's own multi-head forward (captured by hooks). The spatial
  weight is the q-k cosine **per head** (``qk="head"``, default): channel c of the attention output belongs
  to one head, whose attention is a softmax of that head's q-k products, so each channel's value is
  weighted by its own head's loosened attention. ``qk="width"`` uses one cosine over the full width of the
  raw q and k instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..capture import Record
from ..models.clip import Clip
from ..models.towers import (
    run_blocks,
    text_embedding,
    text_mask,
    text_tokens,
    vision_embedding,
)
from .common import cosine, text_keep, text_pass, token_grid, vision_pass, vision_trunk
from .registry import MethodOutput, register_image, register_text
from .single_head import single_head_block

MODES = ("faithful", "paper")
QK_SCOPES = ("head", "width")


def minmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Min-max to [0, 1] along ``dim``."""
    lo, hi = x.amin(dim=dim, keepdim=True), x.amax(dim=dim, keepdim=True)
    return (x - lo) / (hi - lo).clamp_min(1e-12)


def qk_cosine(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """cos(q, k_i) for one query [..., d] against keys [..., N, d] -> [..., N]."""
    return (F.normalize(q, dim=-1).unsqueeze(-2) * F.normalize(k, dim=-1)).sum(-1)


def _check(mode: str, qk: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if qk not in QK_SCOPES:
        raise ValueError(f"qk must be one of {QK_SCOPES}, got {qk!r}")


def weighted_values(w: torch.Tensor, v: torch.Tensor, lam: torch.Tensor | None, heads: int) -> torch.Tensor:
    """sum_c w_c v[i, c] lambda_i -> [B, N].

    w [B, D]; v [B, N, D]; lam None (no spatial weight), [B, N] (one per token) or [B, H, N] (per head).
    """
    wv = w.unsqueeze(1) * v  # [B, N, D]
    if lam is None:
        return wv.sum(-1)
    if lam.ndim == 2:
        return (wv * lam.unsqueeze(-1)).sum(-1)
    b, n, d = wv.shape
    per_head = wv.reshape(b, n, heads, d // heads).sum(-1)  # [B, N, H]
    return (per_head * lam.transpose(1, 2)).sum(-1)


def faithful_lambda(record: Record, query: torch.Tensor, keys: slice | torch.Tensor, qk: str) -> torch.Tensor:
    """Spatial weight of the faithful mode, min-maxed over the chosen key positions.

    ``query`` indexes one row per batch item ([B] long tensor); ``keys`` selects key positions (a slice,
    or a [B, N] boolean mask of valid keys whose other positions get weight 0).
    """
    q, k, _ = record.qkv()
    rows = torch.arange(q.shape[0], device=q.device)
    if qk == "width":
        cos = qk_cosine(q[rows, query], k)  # [B, N]
    else:
        cos = qk_cosine(record.split_heads(q)[rows, :, query], record.split_heads(k))  # [B, H, N]
    if isinstance(keys, slice):
        return minmax(cos[..., keys])
    mask = keys if cos.ndim == 2 else keys.unsqueeze(1)
    lo = cos.masked_fill(~mask, float("inf")).amin(-1, keepdim=True)
    hi = cos.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)
    return ((cos - lo) / (hi - lo).clamp_min(1e-12)).masked_fill(~mask, 0.0)


# ---------------------------------------------------------------------------------------------- image
@dataclass
class ImageTerms:
    """The factors of Grad-ECLIP for B pairs: channel weights ``w`` [B, D] (dS/do at the class token),
    values ``v`` [B, N, D] of the N patches, spatial weight ``lam`` ([B, N], [B, H, N] per head, or None),
    the explained ``score`` [B] and the token ``grid`` (h, w)."""

    w: torch.Tensor
    v: torch.Tensor
    lam: torch.Tensor | None
    heads: int
    score: torch.Tensor
    grid: tuple[int, int]

    def select(self, rows: list[int]) -> ImageTerms:
        """The terms of some pairs only (e.g. one pair, for `plotting.show_terms`)."""
        idx = torch.as_tensor(rows, dtype=torch.long, device=self.w.device)
        lam = None if self.lam is None else self.lam[idx]
        return ImageTerms(self.w[idx], self.v[idx], lam, self.heads, self.score[idx], self.grid)

    def emap(self) -> torch.Tensor:
        """H = ReLU(sum_c w_c v[i, c] lambda_i) on the token grid [B, h, w]."""
        return F.relu(weighted_values(self.w, self.v, self.lam, self.heads)).reshape(-1, *self.grid)

    def gradient_times_value(self) -> torch.Tensor:
        """sum_c w_c v[i, c] before the spatial weight and the ReLU [B, h, w]: signed evidence per patch."""
        return weighted_values(self.w, self.v, None, self.heads).reshape(-1, *self.grid)

    def spatial_weight(self) -> torch.Tensor:
        """lambda on the token grid [B, h, w] (the mean over heads in per-head mode)."""
        lam = torch.ones(self.v.shape[:2], device=self.v.device) if self.lam is None else self.lam
        return (lam.mean(1) if lam.ndim == 3 else lam).reshape(-1, *self.grid)


def image_terms(
    clip: Clip,
    pixels: torch.Tensor,
    targets: torch.Tensor,
    index: torch.Tensor,
    mode: str = "faithful",
    spatial_weight: bool = True,
    qk: str = "head",
) -> ImageTerms:
    """One forward and one backward (reaching only the last block) giving Grad-ECLIP's factors."""
    _check(mode, qk)
    if mode == "faithful":
        run = vision_pass(clip, pixels, index, first=-1)
        score = cosine(run.embedding, targets)
        grad = run.capture.grads(score)[0]
        record = run.records[0]
        v = record.qkv()[2]
        cls = torch.zeros(len(index), dtype=torch.long, device=grad.device)
        lam = faithful_lambda(record, cls, slice(1, None), qk) if spatial_weight else None
        heads, grid = record.heads, run.grid
    else:
        blocks = clip.vision_blocks
        grid = token_grid(clip, pixels)
        x = vision_trunk(clip, pixels, index, len(blocks) - 1)
        y, step = single_head_block(blocks[-1], x.detach().requires_grad_(True))
        score = cosine(vision_embedding(clip.visual, y), targets)
        (grad,) = torch.autograd.grad(score.sum(), step.o)
        v = step.v.float()
        lam = minmax(qk_cosine(step.q_out[:, 0].float(), step.k_out[:, 1:].float())) if spatial_weight else None
        heads = 1
    return ImageTerms(grad[:, 0].float().detach(), v[:, 1:].detach(), lam, heads, score.detach(), grid)


@register_image("grad_eclip", cost="1 fwd + 1 bwd (to the last block)")
def grad_eclip_image(clip: Clip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                     **options) -> MethodOutput:
    """Grad-ECLIP image maps [B, h, w] for pairs (pixels[index[b]], targets[b]); options as `image_terms`."""
    terms = image_terms(clip, pixels, targets, index, **options)
    return MethodOutput(terms.emap(), terms.score)


# ---------------------------------------------------------------------------------------------- text
@register_text("grad_eclip", cost="1 fwd + 1 bwd (to the last n blocks)")
def grad_eclip_text(
    clip: Clip,
    ids: torch.Tensor,
    targets: torch.Tensor,
    mode: str = "faithful",
    spatial_weight: bool = True,
    qk: str = "head",
    n_layers: int = 8,
) -> MethodOutput:
    """Grad-ECLIP word weights [B, L] (0 outside tokens 1 .. eos-1, each row summing to 1)."""
    _check(mode, qk)
    n = min(n_layers, len(clip.text_tower.blocks))
    eos = ids.argmax(dim=-1)
    rows = torch.arange(ids.shape[0], device=ids.device)
    total = torch.zeros(ids.shape, device=ids.device)
    if mode == "faithful":
        run = text_pass(clip, ids, first=-n)
        score = cosine(run.embedding, targets)
        positions = torch.arange(ids.shape[1], device=ids.device)
        visible = positions.unsqueeze(0) <= eos.unsqueeze(1)  # keys the end token attends to
        for record, grad in zip(run.records, run.capture.grads(score)):
            _, _, v = record.qkv()
            lam = faithful_lambda(record, eos, visible, qk) if spatial_weight else None
            total += weighted_values(grad[rows, eos], v, lam, record.heads)
    else:
        tower = clip.text_tower
        x = text_tokens(tower, ids)
        mask = text_mask(tower, ids.shape[1], x.dtype)
        with torch.no_grad():
            x = run_blocks(tower.blocks[:-n], x, mask)
        x = x.detach().requires_grad_(True)
        steps = []
        for block in tower.blocks[-n:]:
            x, step = single_head_block(block, x, mask)
            steps.append(step)
        score = cosine(text_embedding(tower, x, ids), targets)
        grads = torch.autograd.grad(score.sum(), [s.o for s in steps])
        for step, grad in zip(steps, grads):
            lam = minmax(qk_cosine(step.q_out[rows, eos].float(), step.k_out.float())) if spatial_weight else None
            total += weighted_values(grad[rows, eos].float(), step.v.float(), lam, 1)
    weights = F.relu(total) * text_keep(ids)
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    return MethodOutput(weights.detach(), score.detach())
