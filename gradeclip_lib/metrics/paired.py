"""Two methods scored on the same scenes: the difference of their hit rates, and whether it is real.

Intervals of two rates that overlap do not show that the rates are equal, and intervals that barely
miss each other overstate a difference when the scenes are shared. A paired comparison uses the
scenes where the two methods disagree: the exact McNemar test (a two-sided binomial test on the
discordant scenes) and a Wald interval of the paired difference."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

Z95 = 1.959963984540054


@dataclass(frozen=True)
class PairedComparison:
    """Rate of ``a`` minus rate of ``b`` over the same ``n`` scenes."""

    difference: float
    low: float  # 95 % interval of the difference
    high: float
    p_value: float  # exact McNemar test
    only_a: int  # scenes where only a is right
    only_b: int
    n: int

    @property
    def apart(self) -> bool:
        """The two rates differ at the 5 % level."""
        return self.p_value < 0.05

    @property
    def a_higher(self) -> bool:
        """``a`` points right more often than ``b``, at the 5 % level."""
        return self.apart and self.difference > 0


def paired_comparison(a: torch.Tensor | Sequence[bool], b: torch.Tensor | Sequence[bool]) -> PairedComparison:
    """Compare two methods' hits [n] on the same scenes (scene i of ``a`` is scene i of ``b``)."""
    a, b = torch.as_tensor(a, dtype=torch.bool).flatten(), torch.as_tensor(b, dtype=torch.bool).flatten()
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(f"paired hits need the same scenes: got {a.numel()} and {b.numel()}")
    n = a.numel()
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    d = (only_a - only_b) / n
    spread = Z95 * math.sqrt(max((only_a + only_b) / n - d * d, 0.0) / n)
    return PairedComparison(d, max(d - spread, -1.0), min(d + spread, 1.0), mcnemar_exact(only_a, only_b),
                            only_a, only_b, n)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: under no difference, each discordant scene is a fair coin."""
    m = only_a + only_b
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(only_a, only_b) + 1)) / 2**m
    return min(1.0, 2 * tail)


def word_difference(name_a: str, name_b: str, cmp: PairedComparison) -> str:
    """The sentence a comparison allows: which is higher, or that these scenes cannot tell them apart."""
    if not cmp.apart:
        return f"{name_a} and {name_b} cannot be told apart on these {cmp.n} scenes"
    first, second = (name_a, name_b) if cmp.a_higher else (name_b, name_a)
    return f"{first} points right more often than {second}"
