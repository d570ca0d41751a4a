"""What the methods share beyond the model's forward passes: the cosine score, the word pieces a text map
reports. The CLIP forward passes live in `models.passes` (re-exported here for older imports)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..adapters import adapter_for
from ..models.passes import Pass, text_pass, token_grid, vision_pass, vision_trunk

__all__ = ["Pass", "cosine", "image_embeddings", "text_keep", "text_pass", "token_grid", "vision_pass",
           "vision_trunk"]


def cosine(embedding: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """cos(f, t) per row, in float32: the score S that the methods explain."""
    return F.cosine_similarity(embedding.float(), targets.float(), dim=-1)


def text_keep(ids: torch.Tensor) -> torch.Tensor:
    """Boolean [B, L]: the word pieces between the start and end tokens (what text maps report)."""
    positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
    return (positions >= 1) & (positions < ids.argmax(dim=-1, keepdim=True))


def image_embeddings(clip, pixels: torch.Tensor) -> torch.Tensor:
    """Image features [I, E] of model inputs of any keep-size resolution (no graph), of any model family."""
    return adapter_for(clip).features(pixels)
