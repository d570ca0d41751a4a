"""The RISE causal metric (Petsiuk et al. 2018), which many readers know: on the model's 224-px input,
delete (to zero, i.e. the mean colour after normalisation) or insert (into a blurred copy) ``step`` pixels
at a time in the order of the map, and track the probability of the class over the whole curve."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from .perturb import pixel_ranks
from .preprocess import crop_batch
from .protocol import Batch, ZeroShot


def crop_maps(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Image-sized maps [N, H, W] through the same geometry as the model's crop: [N, size, size]."""
    h, w = maps.shape[-2:]
    short, long = (h, w) if h <= w else (w, h)
    new = (size, int(size * long / short)) if h <= w else (int(size * long / short), size)
    resized = F.interpolate(maps[:, None].float(), size=new, mode="bilinear", align_corners=False)
    return TF.center_crop(resized, [size, size])[:, 0]


def causal_curves(zs: ZeroShot, batch: Batch, maps: Sequence[torch.Tensor], classes: torch.Tensor,
                  step: int | None = None, rows_per_build: int = 256) -> dict[str, torch.Tensor]:
    """Probability curves [N, n + 1] of ``classes`` for RISE deletion and insertion, n = ceil(S*S / step),
    ``step`` = S pixels by default (224 for a 224-px model, as in RISE)."""
    clip, size = zs.clip, zs.clip.crop_size
    step = step or size
    n_steps = math.ceil(size * size / step)
    counts = torch.arange(n_steps + 1, device=clip.device) * step
    crops = torch.empty(len(batch), 3, size, size, device=clip.device)
    ranks = torch.empty(len(batch), size * size, dtype=torch.long, device=clip.device)
    for idx in batch.groups.values():
        crops[idx] = crop_batch(clip, batch.stacked(idx))
        ranks[idx] = pixel_ranks(crop_maps(torch.stack([maps[i] for i in idx]), size))
    blurred = TF.gaussian_blur(crops, kernel_size=11, sigma=5.0)
    k = len(counts)
    rows = torch.arange(len(batch) * k, device=clip.device)
    img_of, count_of = rows // k, counts[rows % k]
    out = {}
    for mode in ("deletion", "insertion"):
        probs = []
        for chunk in rows.split(rows_per_build):
            g = img_of[chunk]
            changed = (ranks[g] < count_of[chunk][:, None]).view(len(chunk), 1, size, size)
            if mode == "deletion":
                x = torch.where(changed, torch.zeros((), device=clip.device), crops[g])
            else:
                x = torch.where(changed, crops[g], blurred[g])
            logits = zs.logits(x)
            probs.append(logits.softmax(-1).gather(1, classes[g][:, None])[:, 0])
        out[f"causal_{mode}"] = torch.cat(probs).view(len(batch), k)
    return out


def causal_auc(curve: torch.Tensor) -> torch.Tensor:
    """RISE's area under curves [..., n + 1] sampled uniformly over [0, 1]."""
    n = curve.shape[-1] - 1
    return (curve.sum(-1) - curve[..., 0] / 2 - curve[..., -1] / 2) / n
