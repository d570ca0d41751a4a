"""What the two open_clip CLIP families share: texts (or text embeddings) as targets, the cosine with the
image embedding as the score."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.clip import Clip
from ..texts import unit_embeddings
from .protocol import Adapter
from .targets import CosineTarget


def text_targets(clip: Clip, texts: str | Sequence[str] | torch.Tensor) -> torch.Tensor:
    """Unit text embeddings [T, E] from strings or from embeddings [T, E] / [E]."""
    if isinstance(texts, torch.Tensor):
        return unit_embeddings(texts, clip.embed_dim, "text").to(clip.device)
    return clip.encode_text(texts)


class ClipAdapter(Adapter):
    """A `Clip` explained on the cosine of its image embedding with a text embedding."""

    model: Clip

    def encode_targets(self, targets: str | Sequence[str] | torch.Tensor) -> torch.Tensor:
        return text_targets(self.model, targets)

    def target(self, targets: torch.Tensor) -> CosineTarget:
        return CosineTarget(targets)
