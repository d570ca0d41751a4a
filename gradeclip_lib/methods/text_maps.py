"""How every text method reports its result: one non-negative weight per word piece, summing to 1."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .common import text_keep


def text_weights(raw: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """[B, L] raw relevance -> ReLU, zero outside the word pieces, each row normalised to sum 1."""
    weights = F.relu(raw.float()) * text_keep(ids)
    return (weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)).detach()
