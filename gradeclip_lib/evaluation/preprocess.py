"""The model's standard preprocessing (resize the shorter side, centre crop, normalise) and the
authors' keep-size resize, as batched tensor operations that run on the GPU."""

from __future__ import annotations

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from ..images import keep_size_shape
from ..models.clip import Clip


def to_pixels(image: Image.Image) -> torch.Tensor:
    """A PIL image as the protocol's uint8 tensor [3, H, W]."""
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()


def _resize(images: torch.Tensor, size: int | list[int]) -> torch.Tensor:
    """Bicubic, antialiased resize of pixel values in [0, 255], rounded and clipped like a PIL uint8 image."""
    out = TF.resize(images.float(), size, interpolation=InterpolationMode.BICUBIC, antialias=True)
    return out.round_().clamp_(0, 255)


def normalize(clip: Clip, images: torch.Tensor) -> torch.Tensor:
    """Pixel values in [0, 255] to the model's normalised input."""
    mean = torch.tensor(clip.mean, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(clip.std, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std


def crop_batch(clip: Clip, images: torch.Tensor) -> torch.Tensor:
    """``clip.crop`` for a batch of same-size images [N, 3, H, W] (uint8 or floats in [0, 255]):
    the shorter side resized to the model's size (bicubic), centre crop, normalisation."""
    size = clip.crop_size
    resized = _resize(images, size) if min(images.shape[-2:]) != size else images.float()
    return normalize(clip, TF.center_crop(resized, [size, size]))


def keep_size_batch(clip: Clip, images: torch.Tensor) -> torch.Tensor:
    """Keep-size input [N, 3, h, w] for same-size images: each side rounded to the patch size (bicubic)."""
    h, w = keep_size_shape(*images.shape[-2:], clip.patch_size)
    resized = _resize(images, [h, w]) if (h, w) != tuple(images.shape[-2:]) else images.float()
    return normalize(clip, resized)
