"""The local region-phrase loss: each region embedding must pick its own phrase among the distinct
phrases of the batch (cross-entropy over cosines times CLIP's logit scale)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def region_phrase_loss(regions: torch.Tensor, phrases: torch.Tensor, labels: torch.Tensor,
                       scale: torch.Tensor | float) -> torch.Tensor:
    """``regions`` [O, E]; ``phrases`` [P, E] the embeddings of the batch's distinct phrases; ``labels``
    [O] which phrase names each region. Mean cross-entropy of scale * cos(region, phrase)."""
    logits = scale * F.normalize(regions, dim=-1) @ F.normalize(phrases, dim=-1).T
    return F.cross_entropy(logits.float(), labels)
