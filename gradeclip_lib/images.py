"""Reading images and turning them into model inputs: the authors' keep-size resize or the standard crop."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import InterpolationMode, Normalize, Resize, ToTensor

from .errors import ImageError

ImageInput = Image.Image | str | os.PathLike | torch.Tensor


def load_image(image: Image.Image | str | os.PathLike) -> Image.Image:
    """An RGB PIL image from a PIL image or a file path; unreadable files raise `ImageError`."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.exists(path):
            raise ImageError(f"no image at {path!r}: check the path (relative paths start at {os.getcwd()!r}).")
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            raise ImageError(
                f"could not read {path!r} as an image ({err}); give a JPEG, PNG or another format PIL reads."
            ) from err
    raise ImageError(f"expected a PIL image, a path or a tensor, got {type(image).__name__}.")


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
