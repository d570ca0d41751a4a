"""Correlations and fits with their intervals, for the analyses chapter: a rank correlation over a few
dozen words, a regression's R^2 over scenes."""

from __future__ import annotations

from collections.abc import Callable
from statistics import NormalDist

import numpy as np
from scipy import stats


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two flattened arrays (nan when either is constant)."""
    a, b = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    a, b = a - a.mean(), b - b.mean()
    norm = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / norm) if norm > 0 else float("nan")


def spearman_with_interval(x, y, confidence: float = 0.95) -> tuple[float, float, float]:
    """(rho, low, high): Spearman's rank correlation with the Fisher-z interval and Bonett & Wright's
    (2000) standard error sqrt((1 + rho^2 / 2) / (n - 3)), which holds for rank correlations."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 4 or len(y) != n:
        raise ValueError(f"a rank correlation with an interval needs at least 4 paired values, got {n} and {len(y)}")
    rho = float(stats.spearmanr(x, y).statistic)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    half = z * np.sqrt((1 + rho * rho / 2) / (n - 3))
    centre = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    return rho, float(np.tanh(centre - half)), float(np.tanh(centre + half))


def r_squared(y: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Least-squares fit of ``y`` on the columns of ``x`` with an intercept: (R^2, coefficients with the
    intercept first)."""
    y = np.asarray(y, float)
    design = np.column_stack([np.ones(len(y)), np.asarray(x, float).reshape(len(y), -1)])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    total = ((y - y.mean()) ** 2).sum()
    return float(1 - (residual**2).sum() / total) if total > 0 else float("nan"), coef


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, samples: int = 2000, seed: int = 0,
                       confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over ``samples`` resamplings with replacement of
    ``n`` units (scenes), seeded so that a chapter prints the same interval every time."""
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(samples)])
    tail = (1 - confidence) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail])
    return float(low), float(high)


def mean_with_interval(values, samples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """The mean of per-scene values [n] and its bootstrap percentile interval (`bootstrap_interval`)."""
    values = np.asarray(values, dtype=float).reshape(-1)
    low, high = bootstrap_interval(lambda i: values[i].mean(), len(values), samples=samples, seed=seed)
    return float(values.mean()), low, high
