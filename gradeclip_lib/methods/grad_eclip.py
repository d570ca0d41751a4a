"""Grad-ECLIP (Zhao et al. 2024): channel weights from the gradient of the explained score at the attention
output, times values, times a loosened attention (min-maxed q-k cosine), ReLU. Written once over the model
families' adapters (`adapters`): the image maps of every family, and CLIP's word weights.

Two modes:
- ``"paper"`` (CLIP ViT only): exactly the authors' `generate_emap.py`: the last block(s) recomputed with one
  head over the full width, q and k passed through out_proj for the spatial weight. Note that this changes
  the score being explained.
- ``"forward"`` (default): the same formula on the model's own, unmodified multi-head forward (captured by
  hooks), so the score explained is the model's own cosine. ``"faithful"``, its older name, still works (with
  a DeprecationWarning). The spatial
  weight is the q-k cosine **per head** (``qk="head"``, default): channel c of the attention output belongs
  to one head, whose attention is a softmax of that head's q-k products, so each channel's value is
  weighted by its own head's loosened attention. ``qk="width"`` uses one cosine over the full width of the
  raw q and k instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..adapters import MODES, adapter_for, canonical_mode
from ..models.clip import Clip
from ..models.single_head import single_head_block
from ..models.towers import run_blocks, text_embedding, text_mask, text_tokens
from .common import cosine, text_keep, text_pass
from .registry import MethodOutput, register
from .shared_image import grad_eclip_shared
from .shared_text import grad_eclip_text_shared
from .spatial_weight import QK_SCOPES, forward_lambda, minmax, qk_cosine, readout_spatial_weight, weighted_values


def _check(mode: str, qk: str, stacklevel: int = 3) -> str:
    """The mode under its current name (``"faithful"`` -> ``"forward"``, with a DeprecationWarning at the
    caller's caller), or a clear error for an unknown mode or q-k scope."""
    mode = canonical_mode(mode, stacklevel=stacklevel)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if qk not in QK_SCOPES:
        raise ValueError(f"qk must be one of {QK_SCOPES}, got {qk!r}")
    return mode


# ---------------------------------------------------------------------------------------------- image
@dataclass
class ImageTerms:
    """The factors of Grad-ECLIP for B pairs: channel weights ``w`` [B, D] (dS/do at the readout token),
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


def image_terms(model, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor, mode: str = "forward",
                spatial_weight: bool = True, qk: str = "head", **target_options) -> ImageTerms:
    """One forward and one backward (reaching only the explained layer) giving Grad-ECLIP's factors for pairs
    (pixels[index[b]], targets[b]) on any model family; ``target_options`` go to the family's target
    (``probability=True`` for a classifier)."""
    mode = _check(mode, qk)
    adapter = adapter_for(model)
    target = adapter.target(targets, **target_options)
    layer = adapter.explained_layer(pixels, index, mode=mode)
    score = target(layer.features)
    w = layer.channel_weights(score)
    lam = readout_spatial_weight(layer, qk) if spatial_weight else None
    return ImageTerms(w.detach(), layer.patch_values(), lam, layer.heads, score.detach(), layer.grid)


@register("grad_eclip", cost="1 fwd + 1 bwd (to the explained layer); texts sharing an image share both",
          forwards=image_terms)
def grad_eclip_image(model, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                     shared: bool | None = None, **options) -> MethodOutput:
    """Grad-ECLIP image maps [B, h, w] for pairs (pixels[index[b]], targets[b]); options as `image_terms`.

    ``shared``: one forward pass and one Jacobian per image however many targets it has (`shared_image`),
    instead of a forward and backward pass per pair. The default takes it whenever two pairs share an
    image; both routes give the same maps and scores.
    """
    if "mode" in options:
        options["mode"] = _check(options["mode"], options.get("qk", "head"))
    else:
        _check("forward", options.get("qk", "head"))
    if shared is None:
        shared = len(index) > len(torch.unique(index))
    if shared:
        return grad_eclip_shared(model, pixels, targets, index, **options)
    terms = image_terms(model, pixels, targets, index, **options)
    return MethodOutput(terms.emap(), terms.score)


# ---------------------------------------------------------------------------------------------- text
SHARED_TEXT_FROM = 10  # images per text from which the shared text route is the default (measured)

def text_evidence(clip: Clip, ids: torch.Tensor, targets: torch.Tensor, mode: str = "forward",
                  spatial_weight: bool = True, qk: str = "head", n_layers: int = 8
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each token's signed evidence sum_l sum_c w_c v[i, c] lambda_i over the last ``n_layers`` text
    blocks [B, L] (before the ReLU and the normalisation of the word weights), and the scores [B]."""
    mode = _check(mode, qk)
    n = min(n_layers, len(clip.text_tower.blocks))
    eos = ids.argmax(dim=-1)
    rows = torch.arange(ids.shape[0], device=ids.device)
    total = torch.zeros(ids.shape, device=ids.device)
    if mode == "forward":
        run = text_pass(clip, ids, first=-n)
        score = cosine(run.embedding, targets)
        positions = torch.arange(ids.shape[1], device=ids.device)
        visible = positions.unsqueeze(0) <= eos.unsqueeze(1)  # keys the end token attends to
        for record, grad in zip(run.records, run.capture.grads(score)):
            _, _, v = record.qkv()
            lam = forward_lambda(record, eos, visible, qk) if spatial_weight else None
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
    return total, score


@register("grad_eclip", families=["clip_text"], cost="1 fwd + 1 bwd (to the last n blocks)")
def grad_eclip_text(
    clip: Clip,
    ids: torch.Tensor,
    targets: torch.Tensor,
    mode: str = "forward",
    spatial_weight: bool = True,
    qk: str = "head",
    n_layers: int = 8,
    shared: bool | None = None,
) -> MethodOutput:
    """Grad-ECLIP word weights [B, L] (0 outside tokens 1 .. eos-1, each row summing to 1).

    ``shared``: one pass per distinct text however many images it is explained against (`shared_text`);
    the default takes it when a text is explained against at least ``SHARED_TEXT_FROM`` images, where it
    starts to pay (BENCHMARKS.md: its Jacobian costs about ten backward passes of the text). Both routes
    give the same weights and scores.
    """
    mode = _check(mode, qk)
    if shared is None:
        _, counts = torch.unique(ids, dim=0, return_counts=True)
        shared = int(counts.max()) >= SHARED_TEXT_FROM
    if shared:
        return grad_eclip_text_shared(clip, ids, targets, mode, spatial_weight, qk, n_layers)
    total, score = text_evidence(clip, ids, targets, mode, spatial_weight, qk, n_layers)
    weights = F.relu(total) * text_keep(ids)
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)
    return MethodOutput(weights.detach(), score.detach())
