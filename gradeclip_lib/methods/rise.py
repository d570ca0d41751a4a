"""RISE (Petsiuk et al. 2018): the score of randomly masked copies of the image, averaged with the masks
as weights. map = sum_m S(I * M_m) M_m / (N p), at the input's pixel resolution. The masked forwards
are shared by every target that explains the same image. Written over the adapters: any model family."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..adapters import adapter_for
from .registry import MethodOutput, register


def rise_masks(n: int, grid: int, p: float, size: tuple[int, int], seed: int = 0,
               device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` masks [n, 1, H, W] in [0, 1]: random ``grid`` x ``grid`` binary cells (keep probability ``p``),
    upsampled bilinearly to (grid + 1) cells and cropped at a random shift, as in the RISE paper."""
    h, w = size
    cell_h, cell_w = math.ceil(h / grid), math.ceil(w / grid)
    gen = torch.Generator().manual_seed(seed)
    cells = (torch.rand(n, 1, grid, grid, generator=gen) < p).float()
    up = F.interpolate(cells, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear", align_corners=False)
    dy = torch.randint(0, cell_h, (n,), generator=gen)
    dx = torch.randint(0, cell_w, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])  # [n, H]
    cols = (dx[:, None] + torch.arange(w)[None, :])  # [n, W]
    masks = up[torch.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]]
    return masks.clamp(0, 1).unsqueeze(1).to(device)


@register("rise", cost="n_masks fwd per image")
def rise_image(model, pixels, targets, index, n_masks: int = 2000, grid: int = 8, p: float = 0.5,
               seed: int = 0, batch: int = 100, **target_options) -> MethodOutput:
    """RISE saliency [B, H, W] (pixels of the model input) for pairs (pixels[index[b]], targets[b])."""
    adapter = adapter_for(model)
    target = adapter.target(targets, **target_options)
    masks = rise_masks(n_masks, grid, p, tuple(pixels.shape[-2:]), seed, pixels.device)
    saliency = torch.zeros(len(index), *pixels.shape[-2:], device=pixels.device)
    with torch.no_grad():
        score = target(adapter.features(pixels)[index])
        for start in range(0, n_masks, batch):
            chunk = masks[start : start + batch]  # [m, 1, H, W]
            masked = (pixels.unsqueeze(1) * chunk.unsqueeze(0).to(pixels.dtype)).flatten(0, 1)
            features = adapter.features(masked)
            scores = target(features.reshape(len(pixels), len(chunk), -1)[index])  # [B, m]
            saliency += torch.einsum("bm,mhw->bhw", scores, chunk[:, 0].float())
    return MethodOutput(saliency / (n_masks * p), score)
