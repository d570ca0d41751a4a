"""RISE (Petsiuk et al. 2018): the score of randomly masked copies of the image, averaged with the masks
as weights. map = sum_m S(I * M_m) M_m / (N p), at the input's pixel resolution. The masked forwards
are shared by every target that explains the same image. Written over the adapters: any model family."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..adapters import adapter_for
from ..hardware import free_memory
from .registry import MethodOutput, register


def rise_masks(n: int, grid: int, p: float, size: tuple[int, int], seed: int = 0,
               device: str | torch.device = "cpu") -> torch.Tensor:
    """``n`` masks [n, 1, H, W] in [0, 1]: random ``grid`` x ``grid`` binary cells (keep probability ``p``),
    upsampled bilinearly to (grid + 1) cells and cropped at a random shift, as in the RISE paper."""
    return RiseMasks(n, grid, p, size, seed)[0:n].to(device)


class RiseMasks:
    """RISE's masks drawn once as cells and shifts (a few bytes each), built at full resolution a slice at a time:
    2 000 masks of a 12-megapixel photo would take 97 GB at once."""

    def __init__(self, n: int, grid: int, p: float, size: tuple[int, int], seed: int = 0) -> None:
        self.size = size
        self.cell = (math.ceil(size[0] / grid), math.ceil(size[1] / grid))
        gen = torch.Generator().manual_seed(seed)
        self.cells = (torch.rand(n, 1, grid, grid, generator=gen) < p).float()
        self.dy = torch.randint(0, self.cell[0], (n,), generator=gen)
        self.dx = torch.randint(0, self.cell[1], (n,), generator=gen)

    def __getitem__(self, part: slice) -> torch.Tensor:
        (h, w), (cell_h, cell_w) = self.size, self.cell
        cells = self.cells[part]
        grid = cells.shape[-1]
        up = F.interpolate(cells, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear",
                           align_corners=False)
        rows = self.dy[part][:, None] + torch.arange(h)[None, :]  # [m, H]
        cols = self.dx[part][:, None] + torch.arange(w)[None, :]  # [m, W]
        masks = up[torch.arange(len(cells))[:, None, None], 0, rows[:, :, None], cols[:, None, :]]
        return masks.clamp(0, 1).unsqueeze(1)


BYTES_PER_PIXEL = 512  # planning figure for one masked copy's forward pass (ViT-B/16 fp32 keeps about 400)


def masks_per_pass(batch: int, images: int, pixels: int, device: str | torch.device) -> int:
    """How many masks go through the model at once: ``batch``, fewer when a large image would not fit."""
    fits = int(0.5 * free_memory(device) / (BYTES_PER_PIXEL * pixels * max(images, 1)))
    return max(1, min(batch, fits))


@register("rise", cost="n_masks fwd per image")
def rise_image(model, pixels, targets, index, n_masks: int = 2000, grid: int = 8, p: float = 0.5,
               seed: int = 0, batch: int = 100, **target_options) -> MethodOutput:
    """RISE saliency [B, H, W] (pixels of the model input) for pairs (pixels[index[b]], targets[b]); the masks
    go through the model ``batch`` at a time, fewer for an image too large for that."""
    adapter = adapter_for(model)
    target = adapter.target(targets, **target_options)
    masks = RiseMasks(n_masks, grid, p, tuple(pixels.shape[-2:]), seed)
    step = masks_per_pass(batch, len(pixels), pixels.shape[-2] * pixels.shape[-1], pixels.device)
    saliency = torch.zeros(len(index), *pixels.shape[-2:], device=pixels.device)
    with torch.no_grad():
        score = target(adapter.features(pixels)[index])
        for start in range(0, n_masks, step):
            chunk = masks[start : start + step].to(pixels.device)  # [m, 1, H, W]
            masked = (pixels.unsqueeze(1) * chunk.unsqueeze(0).to(pixels.dtype)).flatten(0, 1)
            features = adapter.features(masked)
            scores = target(features.reshape(len(pixels), len(chunk), -1)[index])  # [B, m]
            saliency += torch.einsum("bm,mhw->bhw", scores, chunk[:, 0].float())
    return MethodOutput(saliency / (n_masks * p), score)
