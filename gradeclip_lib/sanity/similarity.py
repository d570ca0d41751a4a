"""How alike two maps are: Spearman's rank correlation on the token grid, and SSIM of min-maxed maps."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats

from ..explanation import minmax


def spearman_per_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Rank correlation [B] of each pair of maps [B, h, w] (ties get average ranks; a constant map gives 0)."""
    out = []
    for x, y in zip(a.flatten(1).double().numpy(), b.flatten(1).double().numpy()):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            out.append(1.0 if np.array_equal(x, y) else 0.0)
        else:
            out.append(float(stats.spearmanr(x, y).statistic))
    return torch.tensor(out)


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean structural similarity [B] of min-maxed maps [B, H, W], as scikit-image's default computes it
    (uniform ``window`` x ``window`` windows, sample covariances, data range 1, the image's border where the
    window does not fit left out)."""
    x, y = minmax(a.double())[:, None], minmax(b.double())[:, None]
    if min(x.shape[-2:]) < window:
        raise ValueError(f"maps of {tuple(x.shape[-2:])} are smaller than the {window} x {window} window: upsample")

    def mean(t: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(t, window, stride=1)

    n = window * window
    ux, uy = mean(x), mean(y)
    vx = (mean(x * x) - ux * ux) * n / (n - 1)
    vy = (mean(y * y) - uy * uy) * n / (n - 1)
    vxy = (mean(x * y) - ux * uy) * n / (n - 1)
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).float()
