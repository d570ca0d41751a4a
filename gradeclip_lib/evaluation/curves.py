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


EFFICIENCY_LEVEL = 0.9  # insertion efficiency: the share of pixels that gives back 90 % of the score


def insertion_efficiency(insertion: Sequence[float] | torch.Tensor, full: float | torch.Tensor,
                         level: float = EFFICIENCY_LEVEL, x: Sequence[float] | None = None) -> torch.Tensor:
    """The smallest share of pixels whose insertion recovers ``level`` x the full image's score: the first
    crossing of the insertion curve, interpolated linearly between its checkpoints (0, 5, ..., 50 %).

    ``insertion`` is [..., 11], ``full`` the full image's score [...]; NaN where the curve never reaches
    the level within 50 % of the pixels (an explanation that needs more pixels than the protocol adds)."""
    y = torch.as_tensor(insertion, dtype=torch.float64)
    xs = torch.as_tensor(FRACTIONS if x is None else x, dtype=torch.float64)
    if y.shape[-1] != xs.shape[-1]:
        raise ValueError(f"{y.shape[-1]} values for {xs.shape[-1]} x positions")
    goal = level * torch.as_tensor(full, dtype=torch.float64).unsqueeze(-1)
    reached = y >= goal
    first = reached.double().argmax(-1, keepdim=True)  # first checkpoint at or above the goal
    before = (first - 1).clamp(min=0)
    y0, y1 = y.gather(-1, before), y.gather(-1, first)
    x0, x1 = xs[before], xs[first]
    rise = (y1 - y0).clamp(min=1e-12)
    share = torch.where(first == 0, xs[0].expand_as(x0), x0 + (x1 - x0) * ((goal - y0) / rise).clamp(0, 1))
    share = share.squeeze(-1)
    return torch.where(reached.any(-1), share, torch.full_like(share, float("nan")))


def median_share(values: torch.Tensor) -> float:
    """The median of per-image shares with NaN (not reached by 50 %) counted as larger than any share:
    ``inf`` when half the images or more never reach the level."""
    ordered = torch.nan_to_num(torch.as_tensor(values, dtype=torch.float64), nan=float("inf")).sort().values
    n = len(ordered)
    if n == 0:
        return float("nan")
    return float(ordered[(n - 1) // 2] + ordered[n // 2]) / 2
