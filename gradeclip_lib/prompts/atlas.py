"""A class atlas: the Grad-ECLIP map of every class of a zero-shot classifier on one photo (1 000 for
ImageNet) from one forward pass, the photo's top classes, and the class that best explains a region."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import open_clip
import torch

from ..evaluation.classes import ClassSet, zero_shot_classifier
from ..explanation import Explanation
from ..images import ImageInput
from ..models.clip import Clip
from .maps import prompt_maps

CRITERIA = ("weighted share", "share", "mass")


@dataclass
class Atlas:
    """``names[c]``'s map is ``explanation.maps[c]``; ``probs`` [C] the zero-shot probabilities."""

    names: list[str]
    probs: torch.Tensor
    explanation: Explanation

    def top(self, k: int = 8) -> list[int]:
        """The k most probable classes, best first."""
        return self.probs.topk(min(k, len(self.names))).indices.tolist()

    def region(self, region: np.ndarray | torch.Tensor | tuple[int, int, int, int], k: int = 5,
               criterion: str = "weighted share") -> list[tuple[str, float]]:
        """The k classes that best explain ``region`` (a boolean mask at the image's size, or a box (top,
        left, bottom, right) in pixels), best first, with their scores. ``criterion``:

        - ``"share"``: the share of the class's map mass inside the region;
        - ``"mass"``: the map mass inside the region (the region's first-order contribution to the score);
        - ``"weighted share"`` (default): the share times the class's zero-shot probability, so that a
          class the image does not show cannot win on a map that happens to sit in the region.
        """
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        height, width = self.explanation.image_sizes[0]
        if isinstance(region, tuple):
            top, left, bottom, right = region
            mask = torch.zeros(height, width, dtype=torch.bool)
            mask[top:bottom, left:right] = True
        else:
            mask = torch.as_tensor(region).bool()
        if tuple(mask.shape) != (height, width):
            raise ValueError(f"a region of {tuple(mask.shape)} for an image of {(height, width)}")
        maps = self.explanation.upsampled(normalized=False)  # [C, H, W]
        inside = (maps * mask).flatten(1).sum(1)
        share = inside / maps.flatten(1).sum(1).clamp_min(1e-12)
        score = {"share": share, "mass": inside, "weighted share": share * self.probs}[criterion]
        best = score.topk(min(k, len(self.names))).indices.tolist()
        return [(self.names[c], float(score[c])) for c in best]


def class_atlas(clip: Clip, image: ImageInput, names: Sequence[str] | None = None,
                templates: Sequence[str] = ("a photo of a {}.",), classifier: torch.Tensor | None = None,
                cache: str | None = None, **options) -> Atlas:
    """Maps of every class of ``names`` (ImageNet's 1000 by default) on ``image``, from one forward pass
    and one Jacobian (`prompt_maps`), with the zero-shot probabilities of the image as explained (its
    keep-size view by default). ``classifier`` [E, C]: class embeddings already built; otherwise built
    from ``templates`` by open_clip and cached on disk."""
    names = list(open_clip.IMAGENET_CLASSNAMES if names is None else names)
    if classifier is None:
        classes = ClassSet(tuple(names), tuple(names), tuple(templates))
        classifier = zero_shot_classifier(clip, classes, cache=cache)
    if classifier.shape[-1] != len(names):
        raise ValueError(f"a classifier of {classifier.shape[-1]} classes for {len(names)} names")
    explanation = prompt_maps(clip, image, **options)(classifier.T)
    scale = float(clip.model.logit_scale.exp()) if hasattr(clip.model, "logit_scale") else 100.0
    probs = (scale * explanation.scores).softmax(-1)
    return Atlas(names, probs, explanation)
