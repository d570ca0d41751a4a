"""One image's Grad-ECLIP terms, computed once, then a map for any text (or class, on a classifier) by a
matrix product: what the explorer uses to redraw as the reader types, and the atlas to explain a thousand
classes. Any model family."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from ..adapters import adapter_for
from ..explanation import Explanation
from ..images import ImageInput
from ..methods.grad_eclip import _check
from ..methods.shared_image import shared_image_terms


@dataclass
class PromptMaps:
    """What every target's Grad-ECLIP map of one image shares: the spatially weighted values [N, D], the
    Jacobian of the features with respect to the readout's attention output [E, D], and the features [E].
    Calling it with texts (strings or embeddings; class ids or names for a classifier) returns their
    `Explanation`."""

    clip: Any  # the model (any family)
    weighted: torch.Tensor
    jacobian: torch.Tensor
    embedding: torch.Tensor
    grid: tuple[int, int]
    image_size: tuple[int, int]
    options: dict
    target_options: dict = field(default_factory=dict)

    @torch.no_grad()
    def __call__(self, texts: str | Sequence[str] | torch.Tensor) -> Explanation:
        adapter = adapter_for(self.clip)
        target = adapter.target(adapter.encode_targets(texts), **self.target_options)
        grad_f, scores = target.gradient(self.embedding.expand(len(target), -1))
        maps = F.relu((grad_f @ self.jacobian) @ self.weighted.T)  # [T, N]
        return Explanation(maps.reshape(-1, *self.grid).cpu(), scores.cpu(), [self.image_size] * len(target),
                           method="grad_eclip", options=dict(self.options, **self.target_options))


def prompt_maps(clip: Any, image: ImageInput, mode: str = "forward", preprocess: str = "keep",
                spatial_weight: bool = True, qk: str = "head", **target_options) -> PromptMaps:
    """One forward pass and one Jacobian for ``image``; the result explains any text with a matrix
    product. The maps equal ``gl.explain(clip, image, text, mode=mode, ...)``'s. ``target_options``: the
    family's (``probability=True`` for a classifier)."""
    mode = _check(mode, qk)
    adapter = adapter_for(clip)
    adapter.check_mode(mode)
    pixels, sizes = adapter.prepare([image], preprocess)
    batch = pixels[0][None].to(clip.device, clip.dtype)
    with torch.enable_grad():
        weighted, jac, f, grid = shared_image_terms(clip, batch, mode, spatial_weight, qk)
    options = {"mode": mode, "preprocess": preprocess, "spatial_weight": spatial_weight, "qk": qk}
    return PromptMaps(clip, weighted[0], jac[0], f[0], grid, sizes[0], options, dict(target_options))
