"""Saving figures: every plotting function's result (a figure, axes, an overlay array or a PIL image) to
PNG at a chosen dpi, SVG or PDF, the format taken from the file's extension."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

VECTOR = (".svg", ".pdf")
RASTER = (".png", ".jpg", ".jpeg")
FORMATS = RASTER + VECTOR
DPI = 150

F = TypeVar("F", bound=Callable)


def figure_format(path: str | os.PathLike) -> str:
    """The file's extension if it is a format this library writes (``.png``, ``.jpg``, ``.svg``, ``.pdf``);
    ValueError naming them otherwise, so a typo fails before any work is done."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot save a figure as {str(path)!r}: end the file name with one of "
                         f"{', '.join(FORMATS)} (the format follows the extension)")
    return suffix


def save_figure(result, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Save what a plotting function returned to ``path``; the extension picks the format. Rasters take
    ``dpi`` (a figure of 8 x 6 inches at 300 dpi is 2400 x 1800 pixels); SVG and PDF keep lines and
    text as vectors. An overlay array or PIL image is written pixel for pixel as PNG or JPEG, and
    embedded at its own resolution in SVG or PDF. Returns the path."""
    path = Path(path)
    suffix = figure_format(path)
    if isinstance(result, Axes):
        result = result.figure
    if isinstance(result, np.ndarray):
        result = Image.fromarray(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(result, Image.Image):
        if suffix in RASTER:
            (result.convert("RGB") if suffix != ".png" else result).save(path, dpi=(dpi, dpi))
            return path
        result = _image_figure(result, dpi)
    if not isinstance(result, Figure):
        raise TypeError(f"cannot save a {type(result).__name__}: expected a matplotlib figure or axes, "
                        "an image array or a PIL image")
    result.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def _image_figure(image: Image.Image, dpi: int) -> Figure:
    """A figure exactly the image's size at ``dpi``, holding only the image (for SVG and PDF)."""
    fig = plt.figure(figsize=(image.width / dpi, image.height / dpi), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(np.asarray(image), interpolation="nearest")
    ax.set_axis_off()
    return fig


def saveable(fn: F) -> F:
    """Give a plotting function ``save=PATH`` and ``dpi=`` keywords: its result is returned as before and,
    with ``save``, also written by `save_figure`."""

    @functools.wraps(fn)
    def wrapper(*args, save: str | os.PathLike | None = None, dpi: int = DPI, **kwargs):
        if save is not None:
            figure_format(save)  # a wrong extension fails before the drawing
        result = fn(*args, **kwargs)
        if save is not None:
            save_figure(result, save, dpi=dpi)
        return result

    sig = inspect.signature(fn)
    extra = [inspect.Parameter("save", inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation="str | os.PathLike | None"),
             inspect.Parameter("dpi", inspect.Parameter.KEYWORD_ONLY, default=DPI, annotation="int")]
    params = list(sig.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        params = params[:-1] + extra + params[-1:]
    else:
        params = params + extra
    wrapper.__signature__ = sig.replace(parameters=params)
    return wrapper  # type: ignore[return-value]
