"""Grad-ECLIP on a ResNet CLIP. The attention pool at the end of the tower plays the last attention
layer's part: its one query is the mean token, its keys and values the cells of the last feature map.
So H_i = ReLU(sum_c w_c v[i, c] lambda_{h(c), i}) with w = dS/do (o: the pool's attention output of
the mean token, before ``c_proj``), v[i] the value of cell i and lambda the min-maxed cosine of the
query against cell i's key, per head as in the faithful mode (``qk="width"``: over the full width).
The authors' public code has no ResNet version, so there is no "paper" mode; the chapter "Beyond CLIP
ViT" says which choices are ours."""

from __future__ import annotations

import torch

from ...models.clip import Clip
from ..common import cosine
from ..grad_eclip import ImageTerms
from ..registry import MethodOutput, register_resnet
from ..spatial_weight import QK_SCOPES, minmax, query_key_cosine
from .common import pool_pass


def _check(mode: str, qk: str) -> None:
    if mode != "faithful":
        raise ValueError(
            f"mode={mode!r}: the 'paper' mode copies the authors' ViT code (one head over the full width); "
            "a ResNet CLIP's attention pool is explained in the faithful mode only."
        )
    if qk not in QK_SCOPES:
        raise ValueError(f"qk must be one of {QK_SCOPES}, got {qk!r}")


def resnet_terms(clip: Clip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                 mode: str = "faithful", spatial_weight: bool = True, qk: str = "head") -> ImageTerms:
    """Grad-ECLIP's factors on the attention pool: one forward pass and a backward through ``c_proj`` only."""
    _check(mode, qk)
    run = pool_pass(clip, pixels, index)
    score = cosine(run.embedding, targets)
    (w,) = torch.autograd.grad(score.sum(), run.o)
    q, k, v = (t.detach().float() for t in (run.q, run.k, run.v))
    cells = run.split_heads(k)[:, :, 1:]  # the mean token's own key is not a place in the image
    lam = minmax(query_key_cosine(run.split_heads(q)[:, :, 0], cells, qk)) if spatial_weight else None
    return ImageTerms(w.float(), v[:, 1:], lam, run.heads, score.detach(), run.grid)


@register_resnet("grad_eclip", cost="1 fwd + 1 bwd through the pool's output projection")
def grad_eclip_resnet(clip: Clip, pixels: torch.Tensor, targets: torch.Tensor, index: torch.Tensor,
                      **options) -> MethodOutput:
    """Grad-ECLIP maps [B, H/32, W/32] for pairs (pixels[index[b]], targets[b]); options as `resnet_terms`."""
    terms = resnet_terms(clip, pixels, targets, index, **options)
    return MethodOutput(terms.emap(), terms.score)
