"""Chapter 4 (beyond CLIP ViT): Grad-ECLIP's map from the pieces of a ResNet CLIP's attention pool."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image

from ..explain import explain
from ..images import ImageInput, prepare
from ..methods.common import cosine
from ..methods.spatial_weight import minmax, qk_cosine
from ..models.clip import Clip
from ..models.passes import pool_pass
from .checking import call, check_tensor, passed, require_answer


@dataclass
class PoolTerms:
    """The attention pool of a ResNet CLIP on one image, against one text: ``w`` [C] = dS/do (o the pool's
    output before c_proj), the mean token's query ``q`` [C], the cells' keys ``k`` and values ``v`` [N, C],
    the number of ``heads`` (channel c belongs to head c // (C / heads)) and the cells' ``grid`` (h, w)."""

    w: torch.Tensor
    q: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    heads: int
    grid: tuple[int, int]


def pool_terms(clip: Clip, image: ImageInput, text: str) -> PoolTerms:
    """`PoolTerms` from the model's own modules (keep-size input, one forward, one backward)."""
    (pixels,), _ = prepare([image], clip.patch_size, clip.mean, clip.std)
    batch = pixels[None].to(clip.device, clip.dtype)
    with torch.enable_grad():
        run = pool_pass(clip, batch, torch.zeros(1, dtype=torch.long, device=clip.device))
        score = cosine(run.embedding, clip.encode_text(text))
        (w,) = torch.autograd.grad(score.sum(), run.o)
    q, k, v = (t.detach().float()[0].cpu() for t in (run.q, run.k, run.v))
    return PoolTerms(w[0].float().cpu(), q[0], k[1:], v[1:], run.heads, run.grid)


def check_pool_map(pool_map: Callable, terms: PoolTerms, clip: Clip, image: ImageInput, text: str) -> None:
    """``pool_map(w, q, k, v, heads)`` must give the map over the N cells that ``gl.explain`` gives."""
    expected = explain(clip, image, text).maps[0].flatten()
    n, c = terms.v.shape
    d = c // terms.heads

    def heads_of(t: torch.Tensor) -> torch.Tensor:  # [.., C] -> [.., H, d]
        return t.reshape(*t.shape[:-1], terms.heads, d)

    cos = qk_cosine(heads_of(terms.q), heads_of(terms.k).transpose(0, 1))  # [H, N]
    per_head = (heads_of(terms.v) * heads_of(terms.w)).sum(-1)  # [N, H]: each head's evidence per cell

    def weighted(lam: torch.Tensor) -> torch.Tensor:  # lam [H, N]
        return (per_head * lam.T).sum(-1)

    softmax = (torch.einsum("hd,nhd->hn", heads_of(terms.q), heads_of(terms.k)) / d**0.5).softmax(-1)
    interleaved = qk_cosine(terms.q.reshape(d, terms.heads).T, terms.k.reshape(n, d, terms.heads).permute(2, 0, 1))
    interleaved_evidence = (terms.v.reshape(n, d, terms.heads) * terms.w.reshape(d, terms.heads)).sum(1)  # [N, H]
    mistakes = {
        "Negative values are left in the map: Grad-ECLIP keeps only positive evidence, a ReLU on the sum "
        "over all heads.": lambda: weighted(minmax(cos)),
        "The ReLU comes once, on the sum over all heads: a ReLU on each head's term drops one head's "
        "negative evidence before it can cancel another head's positive evidence.":
            lambda: (F.relu(per_head) * minmax(cos).T).sum(-1),
        "Min-max each head's cosine over the cells, to [0, 1], before using it as the spatial weight.":
            lambda: F.relu(weighted(cos)),
        "Min-max each head's cosine over the cells (for each head separately), not over all heads and cells "
        "at once.": lambda: F.relu(weighted((cos - cos.min()) / (cos.max() - cos.min()))),
        "One cosine per head, not one over the full width: channel c is weighted by its own head's lambda.":
            lambda: F.relu((terms.v @ terms.w) * minmax(qk_cosine(terms.q, terms.k))),
        "The ReLU comes after the sum over channels, not on each channel's product.":
            lambda: (F.relu(heads_of(terms.v) * heads_of(terms.w)).sum(-1) * minmax(cos).T).sum(-1),
        "Grad-ECLIP loosens the attention: the spatial weight is the min-maxed q-k cosine, not the softmax.":
            lambda: F.relu(weighted(softmax)),
        "Heads are consecutive blocks of C / heads channels (reshape to [heads, C / heads]), not interleaved.":
            lambda: F.relu((interleaved_evidence * minmax(interleaved).T).sum(-1)),
        "Multiply by the spatial weight lambda.": lambda: F.relu(terms.v @ terms.w),
    }
    h, w = terms.grid
    answer = call(pool_map, terms.w, terms.q, terms.k, terms.v, terms.heads, names=("w", "q", "k", "v", "heads"))
    worst = check_tensor(answer, expected, "Your map", mistakes,
                         where=lambda i: f"cell {i[0]} (row {i[0] // w}, column {i[0] % w})",
                         case=f"(this image and text: {n} cells on a {h} x {w} grid, {terms.heads} heads)")
    passed(f"your map equals gl.explain's on this image and text ({n} cells on a {h} x {w} grid, "
           f"{terms.heads} heads; largest difference {worst:.1g}).")


_METHOD_SPELLINGS = {"attention rollout": "rollout", "raw attention": "self_attention", "attention": "self_attention",
                     "maskclip": "mask_clip", "clipsurgery": "clip_surgery", "grad eclip": "grad_eclip",
                     "gradeclip": "grad_eclip", "gradcam": "grad_cam", "grad cam": "grad_cam"}


def check_prediction(cells: object, not_on_cnn: object, clip: Clip | None = None) -> None:
    """Exercise 4.1: the number of cells of RN50's keep-size Grad-ECLIP map of a 451 x 300 photograph
    (or its grid, (rows, columns)), and the methods of chapters 2 and 6 that cannot run on a CNN.
    Measured on RN50's architecture with random weights, as the worked answer."""
    from .. import samples
    from ..methods import IMAGE_METHODS, RESNET_METHODS
    from ..models import load_clip
    from .checking import as_names, as_number

    require_answer(cells)
    grid = tuple(int(c) for c in cells) if isinstance(cells, (tuple, list)) else None
    count = None if grid else int(as_number(cells, "cells", 0))
    names = sorted(IMAGE_METHODS)
    chosen = set(as_names(not_on_cnn, "not_on_cnn", names, _METHOD_SPELLINGS))
    rn50 = clip or load_clip("RN50", pretrained=None)  # the architecture only: shapes need no trained weights
    photo = samples.sample_image("chelsea")
    with Image.open(photo) as image:
        width, height = image.size
    h, w = explain(rn50, photo, "a cat").maps[0].shape
    measured = f"RN50's map of the {width} x {height} photograph has a {h} x {w} grid, {h * w} cells"
    if (grid or count) not in ((h, w), h * w):
        stride = 32
        if grid == (w, h):
            hint = "The grid is (rows, columns): the height comes first."
        elif (grid and grid[0] * grid[1] or count) == 49:
            hint = "Keep-size explanations do not resize to 224 x 224: the image keeps its own size."
        else:
            hint = (f"Keep-size rounds each side to the nearest multiple of the stride ({stride}): "
                    f"{height} -> {h * stride} and {width} -> {w * stride} pixels, then divides by it.")
        raise AssertionError(f"cells: you predicted {cells!r}; {measured}. {hint}")
    blind = sorted(set(IMAGE_METHODS) - set(RESNET_METHODS))
    if chosen != set(blind):
        extra, missing = sorted(chosen - set(blind)), sorted(set(blind) - chosen)
        parts = []
        if extra:
            parts.append(f"{', '.join(extra)} {'runs' if len(extra) == 1 else 'run'} on RN50 (only a score and one "
                         "place to read features are needed; the pool's own attention stands in for self_attention)")
        if missing:
            parts.append(f"{', '.join(missing)} cannot: {'it reads' if len(missing) == 1 else 'they read'} a "
                         "transformer's attention layers, and a CNN has none")
        raise AssertionError(f"not_on_cnn: {'; '.join(parts)}. The library runs {', '.join(sorted(RESNET_METHODS))} "
                             f"on a CNN.")
    passed(f"{measured}; {', '.join(blind)} cannot run on it (they need a ViT's blocks), "
           f"{', '.join(sorted(RESNET_METHODS))} can.")
