"""What the image tower's attention looks like: class-token attention over the patches, per layer and
head, recomputed from the captured q and k (open_clip never stores attention probabilities)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .images import ImageInput, prepare
from .methods.common import vision_pass
from .models.clip import Clip


@torch.no_grad()
def attention_maps(
    clip: Clip, images: ImageInput | Sequence[ImageInput], preprocess: str = "keep"
) -> torch.Tensor:
    """Class-token attention to each patch [B, L, H, h, w] for every block L and head H.

    All images must give the same token grid (same size, or ``preprocess="crop"``).
    """
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    crop = clip.crop_transform if preprocess == "crop" else None
    pixels, _ = prepare(items, clip.patch_size, clip.mean, clip.std, crop=crop)
    if len({tuple(p.shape) for p in pixels}) > 1:
        raise ValueError("attention_maps needs images of one size; use preprocess='crop' or one image at a time.")
    batch = torch.stack(pixels).to(clip.device, clip.dtype)
    run = vision_pass(clip, batch, torch.arange(len(batch), device=clip.device), first=0, grad=False)
    rows = [record.probs(slice(0, 1))[:, :, 0, 1:] for record in run.records]  # [B, H, N] each
    return torch.stack(rows, dim=1).reshape(len(batch), len(rows), -1, *run.grid).cpu()


def top_share(maps: torch.Tensor, fraction: float = 0.05) -> torch.Tensor:
    """Share of the class token's attention to patches held by the top ``fraction`` of patches.

    ``maps`` [..., h, w] -> [...]. Uniform attention gives about ``fraction``; a value near 1 means a
    handful of patches take nearly all of it.
    """
    flat = maps.flatten(-2)
    k = max(1, round(fraction * flat.shape[-1]))
    return flat.topk(k, dim=-1).values.sum(-1) / flat.sum(-1).clamp_min(1e-12)
