"""A CLIP ViT as Quantus's model-parameter randomisation test (`quantus.MPRT`) sees it, so that Quantus's
own numbers can be set beside ours on the same maps.

Quantus randomises a PyTorch model by calling ``reset_parameters`` on each of its modules, the last registered
first. The view registers one module per part of `stage_names` (and nothing else: the CLIP is a plain
attribute), each re-initialising its part as `randomise_stage` does, so Quantus's cascade gives the weights
of `randomised_copy`, and `quantus_explain` gives the maps of `explain` on them.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..explain import explain
from ..models.clip import Clip
from .randomise import randomise_stage, stage_names


class _Part(nn.Module):
    def __init__(self, clip: Clip, name: str, seed: int) -> None:
        super().__init__()
        self.clip, self.name, self.seed = clip, name, seed  # the Clip is no module: Quantus does not reach into it

    def reset_parameters(self) -> None:
        randomise_stage(self.clip, self.name, self.seed)


class QuantusView(nn.Module):
    """``clip`` scoring images [B, 3, H, W] (uint8 values as floats) against fixed ``phrases``; ``parts``
    registered so that Quantus's top-down order is `stage_names`' order."""

    def __init__(self, clip: Clip, phrases: list[str], seed: int = 0) -> None:
        super().__init__()
        if clip.backbone != "vit":
            raise ValueError("the randomisation test re-initialises a ViT's blocks; this model is a ResNet")
        self.clip, self.phrases = clip, list(phrases)
        self.parts = nn.ModuleList(_Part(clip, name, seed) for name in reversed(stage_names(clip)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.clip.encode_image(_pil_images(x.detach().cpu().numpy())) @ self.clip.encode_text(self.phrases).T

    def part_names(self) -> dict[str, str]:
        """Quantus's layer names (module paths) -> `stage_names`."""
        return {f"parts.{i}": part.name for i, part in enumerate(self.parts)}


def _pil_images(x: np.ndarray) -> list[Image.Image]:
    return [Image.fromarray(np.clip(a, 0, 255).astype(np.uint8).transpose(1, 2, 0)) for a in x]


def quantus_explain(model: QuantusView, inputs: np.ndarray, targets: np.ndarray, **options) -> np.ndarray:
    """Quantus's ``explain_func``: `explain` maps [B, 1, H, W] of phrase ``targets[i]`` on image ``inputs[i]``,
    each token repeated over its patch (nearest upsampling keeps Spearman's correlation of the token grid)."""
    options.pop("device", None)  # Quantus adds the device it was given; the CLIP stays where it is
    phrases = [model.phrases[int(t)] for t in np.asarray(targets).reshape(-1)]
    maps = explain(model.clip, _pil_images(inputs), phrases, **options).maps.detach().float()
    up = F.interpolate(maps[:, None], size=tuple(inputs.shape[-2:]), mode="nearest")
    return up.numpy()
