"""Deletion and insertion images, built on the device for a batch of images and all checkpoints at once.

Pixels are ranked by the explanation map (upsampled to the image, most important first). At the
checkpoint that changes ``n`` pixels, deletion replaces the top ``n`` by a random-RGB substrate and
insertion starts from black and restores them: one ``where`` per checkpoint instead of the authors'
Python loop over steps.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F


def noise_image(key: str, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """The random-RGB deletion substrate of one image [3, H, W] uint8 (values 0-254, as the authors'
    ``rand * 255``), a function of (key, seed) only: every method and run deletes towards the same noise."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    gen = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
    return torch.randint(0, 255, (3, height, width), generator=gen, dtype=torch.uint8)


def image_seed(key: str, seed: int = 0) -> int:
    """A 31-bit seed for the maps of a method seeded per image (the random floor), a function of
    (key, seed) only, so that an image gets the same map in any batch and any run."""
    digest = hashlib.sha256(f"map:{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def upsample_maps(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Token-grid maps [N, h, w] resized (bilinear) to the image size [N, H, W]."""
    return F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)[:, 0]


def pixel_ranks(maps: torch.Tensor) -> torch.Tensor:
    """Rank [N, H*W] of every pixel in its map, 0 for the most important (ties keep raster order)."""
    flat = maps.flatten(1)
    order = torch.argsort(flat, dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def perturbed(images: torch.Tensor, ranks: torch.Tensor, counts: torch.Tensor, mode: str,
              noise: torch.Tensor | None = None) -> torch.Tensor:
    """Perturbed copies [N, 3, H, W] of ``images`` [N, 3, H, W] whose ``counts[n]`` top-ranked pixels
    are changed: ``"deletion"`` puts ``noise`` [N, 3, H, W] there, ``"insertion"`` keeps only them (black
    elsewhere). Rows may repeat an image with different counts: this is how all checkpoints of a batch
    are built in one call."""
    changed = (ranks < counts[:, None]).view(len(images), 1, *images.shape[-2:])
    if mode == "deletion":
        if noise is None:
            raise ValueError("deletion needs the noise substrate")
        return torch.where(changed, noise, images)
    if mode == "insertion":
        return torch.where(changed, images, torch.zeros((), dtype=images.dtype, device=images.device))
    raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
