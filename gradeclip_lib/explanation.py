"""Result objects: `Explanation` (image maps) and `TextExplanation` (one weight per word piece)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

Maps = torch.Tensor | list[torch.Tensor]


def minmax(m: torch.Tensor) -> torch.Tensor:
    """Each map [..., h, w] scaled to [0, 1] over its own pixels."""
    lo, hi = m.amin(dim=(-2, -1), keepdim=True), m.amax(dim=(-2, -1), keepdim=True)
    return (m - lo) / (hi - lo).clamp_min(1e-12)


def _stack_if_same(maps: list[torch.Tensor]) -> Maps:
    return torch.stack(maps) if len({tuple(m.shape) for m in maps}) == 1 else maps


@dataclass
class Explanation:
    """Image explanations for B (image, text) pairs, or (image, class) pairs of a classifier.

    ``maps`` is [B, h, w] on the token grid, raw (not normalised), or a list when sizes differ;
    ``scores`` [B] is the cosine similarity each map explains (a classifier's class logit or
    probability); ``image_sizes`` the (H, W) each map
    covers: the input image in keep-size mode, the model's centre crop in crop mode.
    """

    maps: Maps
    scores: torch.Tensor
    image_sizes: list[tuple[int, int]]
    method: str = "grad_eclip"
    options: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.maps[i]

    def normalized(self) -> Maps:
        """Each map min-max scaled to [0, 1]."""
        if isinstance(self.maps, torch.Tensor):
            return minmax(self.maps)
        return [minmax(m) for m in self.maps]

    def upsampled(self, normalized: bool = True) -> Maps:
        """Each map resized (bilinear) to the image region it covers (``image_sizes``): [B, H, W], or a list."""
        maps = self.normalized() if normalized else self.maps
        out = [
            F.interpolate(m[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
            for m, size in zip(maps, self.image_sizes)
        ]
        return _stack_if_same(out)


@dataclass
class TextExplanation:
    """Word-piece importance for one text: ``tokens[i]`` has weight ``weights[i]`` (they sum to 1); ``score`` is
    the image-text cosine they explain (as ``Explanation.scores`` is, per map)."""

    text: str
    tokens: list[str]
    weights: torch.Tensor
    score: float  # the cosine similarity explained
    method: str = "grad_eclip"

    @property
    def scores(self) -> torch.Tensor:
        """The word weights under their former name (``scores`` is the explained score elsewhere in the API)."""
        warnings.warn("TextExplanation.scores is now .weights (.score is the explained cosine)", DeprecationWarning,
                      stacklevel=2)
        return self.weights

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The k most important word pieces with their weights."""
        order = self.weights.argsort(descending=True)[:k]
        return [(self.tokens[i], float(self.weights[i])) for i in order]
