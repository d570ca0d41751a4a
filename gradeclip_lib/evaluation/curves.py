"""The checkpoints of the deletion / insertion protocol and the area under a curve."""

from __future__ import annotations

from collections.abc import Sequence

import torch

STEPS = 100  # the authors' L: 100 steps of 0.5 % of the pixels, up to 50 %
SCORE_EVERY = 10  # scored every 10 steps: 11 points at 0, 5, ..., 50 %
FRACTIONS = [k * SCORE_EVERY / (2 * STEPS) for k in range(STEPS // SCORE_EVERY + 1)]


def pixels_per_step(height: int, width: int, steps: int = STEPS) -> int:
    """Pixels changed per step, as the authors' ``max(1, int(area / (2 L)))``."""
    return max(1, int(height * width / (2 * steps)))


def checkpoint_counts(height: int, width: int, steps: int = STEPS, every: int = SCORE_EVERY) -> list[int]:
    """How many of the top-ranked pixels are changed at each scored checkpoint (the first is 0)."""
    once = pixels_per_step(height, width, steps)
    return [k * every * once for k in range(steps // every + 1)]


def auc(values: Sequence[float] | torch.Tensor, x: Sequence[float] | None = None) -> float | torch.Tensor:
    """Trapezoid area under ``values`` at ``x`` (default: the protocol's fractions 0 ... 0.5): a float for
    one curve, a tensor of areas for curves stacked along the first dimensions."""
    y = torch.as_tensor(values, dtype=torch.float64)
    xs = torch.as_tensor(FRACTIONS if x is None else x, dtype=torch.float64)
    if y.shape[-1] != xs.shape[-1]:
        raise ValueError(f"{y.shape[-1]} values for {xs.shape[-1]} x positions")
    area = torch.trapezoid(y, xs, dim=-1)
    return float(area) if y.ndim == 1 else area
