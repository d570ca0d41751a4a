"""Reading images and turning them into model inputs: the authors' keep-size resize or the standard crop."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torchvision.transforms import InterpolationMode, Normalize, Resize, ToTensor

from .errors import ImageError

ImageInput = Image.Image | str | os.PathLike | np.ndarray | torch.Tensor


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB as a viewer shows it. PIL's own ``convert("RGB")`` clips 16- and 32-bit grey levels at
    255 (a 16-bit PNG comes out almost white) and drops transparency (transparent pixels show whatever
    colour they store): here deep images are scaled to 8 bits and transparent ones laid on white. A
    photo's EXIF orientation is applied, as viewers do (PIL alone reads a portrait photo sideways)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = float(values.max()) if values.size else 0.0
        if image.mode == "F":
            scale = 255.0 if top <= 1.0 else 1.0  # floats in [0, 1], or already in [0, 255]
        else:
            scale = 1.0 if top <= 255 else 255.0 / 65535 if top <= 65535 else 255.0 / (2**32 - 1)
        grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def from_array(array: np.ndarray) -> Image.Image:
    """An RGB PIL image from a NumPy image as most libraries hold one: H x W x 3 (or 4, or 1) or H x W, uint8 in
    0..255 or float in [0, 1]. Anything else raises `ImageError` saying how to convert it."""
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        raise ImageError(f"a NumPy image is H x W x C; got shape {array.shape}, which looks channels-first: "
                         "pass array.transpose(1, 2, 0).")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        raise ImageError("a NumPy image is H x W x 3 (RGB), H x W x 4 (RGBA) or H x W (grey); "
                         f"got shape {array.shape}.")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("the NumPy image holds NaN or infinite values.")
        lo, hi = float(array.min()), float(array.max())
        if lo < 0 or hi > 1:
            hint = " (it looks like 0..255: pass array.astype(np.uint8))" if hi <= 255 and lo >= 0 else ""
            raise ImageError(f"a float NumPy image must hold values in [0, 1]; this one spans [{lo:g}, {hi:g}]{hint}.")
        array = np.rint(array * 255).astype(np.uint8)
    elif array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise ImageError(f"a NumPy image must be uint8 (0..255), uint16 or float in [0, 1]; got {array.dtype}.")
    return to_rgb(Image.fromarray(np.ascontiguousarray(array)))


def load_image(image: Image.Image | str | os.PathLike | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image, a NumPy image (`from_array`) or a file path (`to_rgb`); unreadable
    files raise `ImageError`."""
    if isinstance(image, Image.Image):
        return to_rgb(image)
    if isinstance(image, np.ndarray):
        return from_array(image)
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise ImageError(f"no image at {path!r}: check the path (relative paths start at {os.getcwd()!r}).")
        try:
            with Image.open(path) as im:
                return to_rgb(im)
        except (UnidentifiedImageError, OSError) as err:
            raise ImageError(
                f"could not read {path!r} as an image ({err}); give a JPEG, PNG or another format PIL reads."
            ) from err
    raise ImageError(f"expected a PIL image, a path, a NumPy H x W x 3 array or a tensor, got {type(image).__name__}.")


def as_image_list(images: ImageInput | Sequence[ImageInput]) -> list:
    """One image or several as a list: a list or tuple, a batch tensor [B, 3, H, W] or a NumPy batch
    [B, H, W, C] give one item per image."""
    if isinstance(images, (list, tuple)):
        return list(images)
    if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim == 4:
        return list(images)
    return [images]


def keep_size_shape(height: int, width: int, patch: int) -> tuple[int, int]:
    """Each side rounded to the nearest multiple of the patch size, as the authors' `imgprocess_keepsize`."""
    check_size(height, width, patch)
    return int(height / patch + 0.5) * patch, int(width / patch + 0.5) * patch


def check_size(height: int, width: int, patch: int) -> None:
    """Raise `ImageError` for an image smaller than one patch: there is nothing to explain in it."""
    if height < patch or width < patch:
        raise ImageError(
            f"the image is {width}x{height} px, smaller than one {patch}-px patch of the model; "
            "use a larger image or upscale it first."
        )


def keep_size(image: Image.Image, patch: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Keep-size preprocessing [3, nh, nw]: PIL bicubic resize to patch multiples, then normalise."""
    nh, nw = keep_size_shape(image.height, image.width, patch)
    resized = Resize((nh, nw), interpolation=InterpolationMode.BICUBIC)(image)
    return Normalize(mean, std)(ToTensor()(resized))


def check_tensor(pixels: torch.Tensor, patch: int) -> torch.Tensor:
    """A preprocessed image tensor [3, H, W] whose sides are multiples of the patch size."""
    if pixels.ndim != 3 or pixels.shape[0] != 3:
        raise ImageError(f"an image tensor must be [3, H, W] and normalised, got shape {tuple(pixels.shape)}.")
    h, w = pixels.shape[-2:]
    if h < patch or w < patch or h % patch or w % patch:
        raise ImageError(
            f"an image tensor of {h}x{w} px does not tile into {patch}-px patches; pass the PIL image "
            "instead and let preprocess='keep' round its sides."
        )
    return pixels


def prepare(
    images: Sequence[ImageInput], patch: int, mean: Sequence[float], std: Sequence[float], crop=None
) -> tuple[list[torch.Tensor], list[tuple[int, int]]]:
    """Model inputs for each image and the (height, width) of the region each map covers, for upsampling:
    the image itself in keep-size mode, the centre crop in crop mode.

    ``crop`` is the model's standard transform (preprocess="crop"); ``None`` means keep-size.
    """
    pixels, sizes = [], []
    for item in images:
        if isinstance(item, torch.Tensor):
            pixels.append(check_tensor(item, patch))
            sizes.append(tuple(item.shape[-2:]))
            continue
        image = load_image(item)
        if crop is not None:
            check_size(image.height, image.width, patch)
            pixels.append(crop(image))
            sizes.append(tuple(pixels[-1].shape[-2:]))  # the map covers the centre crop only
        else:
            pixels.append(keep_size(image, patch, mean, std))
            sizes.append((image.height, image.width))
    return pixels, sizes
