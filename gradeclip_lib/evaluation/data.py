"""An image folder ``DIR/<class>/<image>`` read by worker processes: decoded, downscaled to a 640-px
shorter side as the authors do, with the deletion noise drawn in the worker too, so that the GPU only
ever sees ready uint8 tensors. Unreadable files are logged and skipped, never fatal."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ..errors import DatasetError
from .classes import ClassSet
from .perturb import noise_image

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
MAX_SHORT_SIDE = 640


@dataclass(frozen=True)
class Item:
    key: str  # the path relative to the folder, '/'-separated: the record's "image"
    label: int


@dataclass(frozen=True)
class Skipped:
    key: str
    reason: str


@dataclass
class Sample:
    key: str
    label: int
    pixels: torch.Tensor  # uint8 [3, H, W]
    noise: torch.Tensor  # uint8 [3, H, W], the deletion substrate

    def pin_memory(self) -> Sample:
        """Page-locked copies, so that the copy to the GPU overlaps with its work (called by DataLoader)."""
        return Sample(self.key, self.label, self.pixels.pin_memory(), self.noise.pin_memory())


def list_images(root: str | os.PathLike, classes: ClassSet) -> list[Item]:
    """Every image of the folder in a fixed order (class folder, then file name)."""
    root = Path(root)
    items = []
    for folder in sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = classes.index(folder)
        for file in sorted((root / folder).iterdir()):
            if file.suffix.lower() in EXTENSIONS:
                items.append(Item(f"{folder}/{file.name}", label))
    if not items:
        raise DatasetError(f"no images ({', '.join(EXTENSIONS)}) in the class folders of {root}.")
    return items


def downscale(image: Image.Image, max_short: int = MAX_SHORT_SIDE) -> Image.Image:
    """Shrink an image whose shorter side exceeds ``max_short`` to that side, as the authors' scripts."""
    w, h = image.size
    if min(w, h) <= max_short:
        return image
    scale = min(w, h) / max_short
    return image.resize((int(w / scale), int(h / scale)))


def read_pixels(path: str | os.PathLike, min_side: int = 1) -> torch.Tensor:
    """An RGB image file as uint8 [3, H, W], downscaled to a 640-px shorter side."""
    with Image.open(path) as im:
        image = downscale(im.convert("RGB"))
    if min(image.size) < min_side:
        raise ValueError(f"{image.size[0]}x{image.size[1]} px is smaller than one {min_side}-px patch")
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(image.height, image.width, 3) \
        .permute(2, 0, 1).contiguous()


class ImageFolderData(Dataset):
    """The images of ``items`` under ``root``; a file that cannot be read gives a `Skipped`."""

    def __init__(self, root: str | os.PathLike, items: list[Item], seed: int = 0, min_side: int = 1) -> None:
        self.root, self.items, self.seed, self.min_side = Path(root), items, seed, min_side

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Sample | Skipped:
        item = self.items[i]
        try:
            pixels = read_pixels(self.root / item.key, self.min_side)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as err:
            return Skipped(item.key, f"{type(err).__name__}: {err}")
        noise = noise_image(item.key, *pixels.shape[-2:], seed=self.seed)
        return Sample(item.key, item.label, pixels, noise)


def _collate(batch: list[Sample | Skipped]) -> list[Sample | Skipped]:
    return batch  # images differ in size: the protocol groups them itself


def loader(dataset: ImageFolderData, batch_size: int, workers: int, pin_memory: bool = False) -> DataLoader:
    """Batches (lists of `Sample` or `Skipped`) decoded by ``workers`` processes ahead of the model;
    ``pin_memory`` for a GPU."""
    return DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                      prefetch_factor=4 if workers else None, persistent_workers=False, pin_memory=pin_memory)
