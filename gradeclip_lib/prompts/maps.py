"""One image's Grad-ECLIP terms, computed once, then a map for any text by a matrix product: what the
explorer uses to redraw as the reader types, and the atlas to explain a thousand classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..explain import text_targets
from ..explanation import Explanation
from ..images import ImageInput, prepare
from ..methods.shared_image import cosine_gradient, shared_image_terms
from ..models.clip import Clip


@dataclass
class PromptMaps:
    """What every text's Grad-ECLIP map of one image shares: the spatially weighted values [N, D], the
    Jacobian of the image embedding with respect to the class token's attention output [E, D], and the
    embedding [E]. Calling it with texts (strings or embeddings) returns their `Explanation`."""

    clip: Clip
    weighted: torch.Tensor
    jacobian: torch.Tensor
    embedding: torch.Tensor
    grid: tuple[int, int]
    image_size: tuple[int, int]
    options: dict

    @torch.no_grad()
    def __call__(self, texts: str | Sequence[str] | torch.Tensor) -> Explanation:
        targets = text_targets(self.clip, texts).float()
        grad_f, scores = cosine_gradient(self.embedding.expand(len(targets), -1), targets)
        maps = F.relu((grad_f @ self.jacobian) @ self.weighted.T)  # [T, N]
        return Explanation(maps.reshape(-1, *self.grid).cpu(), scores.cpu(), [self.image_size] * len(targets),
                           method="grad_eclip", options=dict(self.options))


def prompt_maps(clip: Clip, image: ImageInput, mode: str = "faithful", preprocess: str = "keep",
                spatial_weight: bool = True, qk: str = "head") -> PromptMaps:
    """One forward pass and one Jacobian for ``image``; the result explains any text with a matrix
    product. The maps equal ``gl.explain(clip, image, text, mode=mode, ...)``'s."""
    from ..methods.grad_eclip import _check

    _check(mode, qk)
    crop = clip.crop_transform if preprocess == "crop" else None
    pixels, sizes = prepare([image], clip.patch_size, clip.mean, clip.std, crop=crop)
    batch = pixels[0][None].to(clip.device, clip.dtype)
    with torch.enable_grad():
        weighted, jac, f, grid = shared_image_terms(clip, batch, mode, spatial_weight, qk)
    options = {"mode": mode, "preprocess": preprocess, "spatial_weight": spatial_weight, "qk": qk}
    return PromptMaps(clip, weighted[0], jac[0], f[0], grid, sizes[0], options)
