"""`WrappedModel`: what every non-CLIP model that `gl.explain` takes shares (a timm classifier, a BLIP):
the torch module, its name, where its weights came from, and its device and dtype."""

from __future__ import annotations

import torch
from torch import nn


class WrappedModel:
    """Base of `Classifier` and `Blip`; subclasses set ``model``, ``name`` and ``pretrained``."""

    model: nn.Module
    name: str
    pretrained: str | None

    def _details(self) -> str:
        """Extra words for the repr, e.g. ", 30 classes"."""
        return ""

    def __repr__(self) -> str:
        weights = self.pretrained if self.pretrained is not None else "random weights"
        return f"{type(self).__name__}({self.name!r}, {weights}{self._details()}, device={self.device})"

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype
