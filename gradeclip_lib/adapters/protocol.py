"""What a model family tells the explainer core, and nothing more: how its images are prepared, the
features its scores read, and, for one forward pass, the pieces of the attention layer that is explained
(`ExplainedLayer`). Grad-ECLIP, its terms, the Jacobian route, RISE and the random floor are written once
over this (`methods`); a family is one small `Adapter` subclass in this package."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..images import ImageInput, prepare
from .targets import Target

MODES = ("forward", "paper")
OLD_MODE_NAMES = {"faithful": "forward"}  # older name -> current name, still accepted


def canonical_mode(mode: str, stacklevel: int = 2) -> str:
    """``mode`` under its current name. ``"faithful"``, the older name of ``"forward"`` (Grad-ECLIP on the
    model's own forward), still works and gives the same maps, with a DeprecationWarning that points at the
    caller ``stacklevel`` frames up from the function calling this one (2: that function's caller)."""
    if mode in OLD_MODE_NAMES:
        new = OLD_MODE_NAMES[mode]
        warnings.warn(f'mode="{mode}" is deprecated: use mode="{new}" (the same maps: Grad-ECLIP on the model\'s '
                      f'own, unmodified forward)', DeprecationWarning, stacklevel=stacklevel + 1)
        return new
    return mode


@dataclass
class ExplainedLayer:
    """The explained attention layer in one forward pass over B pairs (N tokens, H heads of width d, D = H d).

    The attention is softmax(q k^T / sqrt(d)) v per head; its output o (before the output projection) at the
    ``readout`` token is what the explained ``features`` read. ``output`` is the graph node at o: o itself, or
    its projection o W^T + b when the model gives no earlier hook (then ``projection`` is W, and a gradient
    with respect to ``output`` becomes one with respect to o by ``@ W``). ``readout_features`` gives the
    features as a function of ``output``'s readout row with everything else held (the Jacobian route).
    """

    q: torch.Tensor  # [B, H, Nq, d] float32, detached: the queries (every token, or a MAP head's probe alone)
    k: torch.Tensor  # [B, H, N, d] the keys
    v: torch.Tensor  # [B, N, D] heads side by side
    readout: int  # the query whose attention output the features read (class token, pool query, probe)
    patches: slice  # the keys that are places in the image, in grid order
    grid: tuple[int, int]
    features: torch.Tensor  # [B, E] what the targets score: an embedding, class logits
    output: torch.Tensor  # [B, N, D'] or [B, D'] (the readout row only), in the graph when asked for
    projection: torch.Tensor | None = None  # W [D', D] when ``output`` is o's projection
    readout_features: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def heads(self) -> int:
        return self.q.shape[1]

    def readout_output(self) -> torch.Tensor:
        """``output`` at the readout token [B, D']."""
        return self.output[:, self.readout] if self.output.ndim == 3 else self.output

    def to_o(self, grad: torch.Tensor) -> torch.Tensor:
        """A gradient (or Jacobian) with respect to ``output``'s last axis, as one with respect to o, float32."""
        grad = grad.float()
        return grad @ self.projection.float() if self.projection is not None else grad

    def channel_weights(self, score: torch.Tensor) -> torch.Tensor:
        """w = dS/do at the readout token [B, D]: one backward pass for the batch (row b of ``score`` depends
        on pair b alone)."""
        (grad,) = torch.autograd.grad(score.sum(), self.output)
        return self.to_o(grad[:, self.readout] if grad.ndim == 3 else grad)

    def patch_values(self) -> torch.Tensor:
        """The values of the patch tokens [B, P, D]."""
        return self.v[:, self.patches]


class Adapter(ABC):
    """One model family seen by the explainer core. Subclasses set ``family`` (the registry's name for it)
    and ``description`` (for messages), and ``modes`` where they have more than the forward one."""

    family: ClassVar[str]
    description: ClassVar[str]
    modes: ClassVar[tuple[str, ...]] = ("forward",)

    def __init__(self, model: Any) -> None:
        self.model = model

    def prepare(self, images: Sequence[ImageInput], preprocess: str = "keep") -> tuple[list[torch.Tensor], list]:
        """Model inputs [3, H, W] (one per image, sides multiples of the patch) and each image's own size:
        ``"keep"`` keeps the aspect ratio, ``"crop"`` is the model's standard preprocessing."""
        crop = self.model.crop_transform if preprocess == "crop" else None
        return prepare(list(images), self.model.patch_size, self.model.mean, self.model.std, crop=crop)

    def grid(self, pixels: torch.Tensor) -> tuple[int, int]:
        """The map grid (h, w) of model inputs [..., H, W]."""
        side = self.model.patch_size
        return pixels.shape[-2] // side, pixels.shape[-1] // side

    @abstractmethod
    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The features [I, E] that targets score, for model inputs [I, 3, H, W], without a graph."""

    @abstractmethod
    def explained_layer(self, pixels: torch.Tensor, index: torch.Tensor, mode: str = "forward",
                        grad: bool = True) -> ExplainedLayer:
        """One forward pass of the pairs' images ``pixels[index]``; with ``grad``, ``output`` is in a graph
        that reaches the features."""

    @abstractmethod
    def encode_targets(self, targets: Any) -> torch.Tensor:
        """What the user gives to explain against (texts, class ids or names...) as the tensor [T, ...] that
        `gl.explain` hands the methods."""

    @abstractmethod
    def target(self, targets: torch.Tensor, **options: Any) -> Target:
        """The callable score of each pair from the methods' target tensor (one row per pair)."""

    def check_mode(self, mode: str) -> str:
        """The mode under its current name (`canonical_mode`), or a clear error for a mode this family does
        not have."""
        mode = canonical_mode(mode, stacklevel=3)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode not in self.modes:
            raise ValueError(f"mode={mode!r}: the 'paper' mode copies the authors' CLIP ViT code (one head over the "
                             f"full width); a {self.description} is explained in the forward mode only (Grad-ECLIP "
                             f"on the model's own forward).")
        return mode
