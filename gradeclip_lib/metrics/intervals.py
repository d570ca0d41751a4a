"""Confidence intervals for the rates this book reports (pointing game, accuracy, binding), so that a
table says how far a measured difference could be chance."""

from __future__ import annotations

from statistics import NormalDist

import torch


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial rate ``successes / n``: unlike the normal approximation it
    stays inside [0, 1] and is not empty at 0 or n successes (Wilson 1927; Brown, Cai, DasGupta 2001)."""
    if n <= 0:
        raise ValueError("a rate needs at least one trial")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0..{n}, got {successes}")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends (no rounding residue)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def rate_with_interval(hits: torch.Tensor | list[bool], confidence: float = 0.95) -> tuple[float, float, float]:
    """(rate, low, high) of boolean outcomes, with the Wilson interval."""
    hits = torch.as_tensor(hits).bool()
    k, n = int(hits.sum()), int(hits.numel())
    return (k / n, *wilson_interval(k, n, confidence))


def format_rate(rate: float, low: float, high: float, digits: int = 2) -> str:
    """'0.69 [0.62, 0.75]': a rate and its interval, for tables."""
    return f"{rate:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
