"""Figures of the faithfulness chapter: the perturbed images at each checkpoint, mean curves, and how
many pixels each image needs to give back 90 % of its score."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..export import saveable
from ..outputs import Table
from .curves import EFFICIENCY_LEVEL, FRACTIONS, checkpoint_counts, insertion_efficiency
from .perturb import perturbed, pixel_ranks


def checkpoint_frames(image: torch.Tensor, heat: torch.Tensor, mode: str, noise: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """The 11 images [11, 3, H, W] the protocol scores for one uint8 image [3, H, W] and its map [H, W]."""
    h, w = image.shape[-2:]
    counts = torch.tensor(checkpoint_counts(h, w))
    ranks = pixel_ranks(heat[None].float()).expand(len(counts), -1)
    images = image[None].expand(len(counts), -1, -1, -1)
    substrate = None if noise is None else noise[None].expand_as(images)
    return perturbed(images, ranks, counts, mode, substrate)


@saveable
def show_checkpoints(image: torch.Tensor, heat: torch.Tensor, noise: torch.Tensor, every: int = 2,
                     size: float = 1.5):
    """Deletion (top row) and insertion (bottom row) images at 0, 10, ... 50 % of the pixels."""
    rows = {"deletion": checkpoint_frames(image, heat, "deletion", noise),
            "insertion": checkpoint_frames(image, heat, "insertion")}
    picks = list(range(0, len(FRACTIONS), every))
    fig, axes = plt.subplots(2, len(picks), figsize=(size * len(picks), size * 2.2))
    for r, (mode, frames) in enumerate(rows.items()):
        for c, k in enumerate(picks):
            ax = axes[r, c]
            ax.imshow(frames[k].permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{100 * FRACTIONS[k]:.0f} %", fontsize=9)
            if c == 0:
                ax.set_ylabel(mode, fontsize=10)
    fig.tight_layout()
    return fig


def _line_style(method: str, highlight: Sequence[str]) -> dict:
    """How a method's line is drawn in the comparison figures: highlighted thick, the random floor dashed."""
    if method == "random":
        return {"lw": 1.5, "color": "black", "ls": "--"}
    return {"lw": 2.6} if method in highlight else {"lw": 1.2, "alpha": 0.85}


def mean_curves(records: Sequence[dict], name: str) -> dict[str, np.ndarray]:
    """Method -> mean curve [11] of ``name`` (e.g. 'deletion_top1') over its records."""
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[r["method"]].append(r[name])
    return {m: np.mean(np.asarray(v, dtype=float), axis=0) for m, v in groups.items()}


@saveable
def plot_curves(records: Sequence[dict], what: str = "top1", methods: Sequence[str] | None = None,
                labels: dict[str, str] | None = None, highlight: Sequence[str] = ("grad_eclip",)):
    """Mean deletion and insertion curves of every method side by side; ``highlight`` drawn thicker."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    x = 100 * np.asarray(FRACTIONS)
    for ax, mode in zip(axes, ("deletion", "insertion")):
        curves = mean_curves(records, f"{mode}_{what}")
        for m in methods or curves:
            ax.plot(x, curves[m], marker="o", ms=3, label=(labels or {}).get(m, m), **_line_style(m, highlight))
        better = "lower" if mode == "deletion" else "higher"
        ax.set_title(f"{mode} ({better} is better)", fontsize=11)
        ax.set_xlabel("pixels changed (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel({"top1": "top-1 accuracy", "top5": "top-5 accuracy", "prob": "probability of the class"}[what])
    axes[1].legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


def efficiency_by_method(records: Sequence[dict]) -> dict[str, np.ndarray]:
    """Method -> per-image insertion efficiency (share of pixels; NaN if not reached by 50 %)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[r["method"]].append(r)
    return {m: insertion_efficiency(torch.tensor([r["insertion_prob"] for r in rs]),
                                    torch.tensor([r["deletion_prob"][0] for r in rs])).numpy()
            for m, rs in groups.items()}


@saveable
def plot_efficiency(records: Sequence[dict], methods: Sequence[str] | None = None,
                    labels: dict[str, str] | None = None, highlight: Sequence[str] = ("grad_eclip",)):
    """For each method, the share of images that have their probability 90 % back after inserting x % of
    the pixels (a cumulative distribution of the per-image insertion efficiency; higher is better)."""
    shares = efficiency_by_method(records)
    x = np.linspace(0, 50, 201)
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for m in methods or shares:
        y = (100 * shares[m][None, :] <= x[:, None]).mean(1)  # NaN (never) compares False: never counted
        ax.step(x, y, where="post", label=(labels or {}).get(m, m), **_line_style(m, highlight))
    ax.set_xlabel("pixels inserted (%)")
    ax.set_ylabel(f"images with {100 * EFFICIENCY_LEVEL:.0f} % of\ntheir probability back")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return fig


SUMMARY_COLUMNS = {
    "top1": [("deletion_top1", "deletion top-1 ↓"), ("insertion_top1", "insertion top-1 ↑")],
    "prob": [("deletion_prob", "deletion prob ↓"), ("insertion_prob", "insertion prob ↑")],
    "causal": [("causal_deletion", "RISE deletion ↓"), ("causal_insertion", "RISE insertion ↑")],
}


def summary_table(rows: Sequence[dict], labels: dict[str, str] | None = None,
                  metrics: Sequence[str] = ("top1", "prob", "causal", "efficiency")):
    """The AUC summary as a `Table` (HTML on the page, Markdown in the PDF), best deletion first, each
    AUC with its standard error; then the insertion efficiency (median share of pixels that gives back
    90 % of the probability, and the share of images that get there within 50 %). ``metrics`` picks the
    column groups ("top1", "prob", "causal" when measured, "efficiency"), to fit a page's width."""
    cols = [c for m in metrics if m in SUMMARY_COLUMNS for c in SUMMARY_COLUMNS[m]
            if not c[0].startswith("causal") or all(f"{c[0]}_auc" in r for r in rows)]
    body = []
    for r in sorted(rows, key=lambda r: r["deletion_top1_auc"]):
        cells = [f"{r[f'{k}_auc']:.3f}\u00a0±\u00a0{r[f'{k}_auc_se']:.3f}" for k, _ in cols]  # no-break spaces
        if "efficiency" in metrics:
            median = r["insertion_eff_median"]
            cells += ["> 50\u00a0%" if median == float("inf") else f"{100 * median:.1f}\u00a0%",
                      f"{100 * r['insertion_eff_reached']:.0f}\u00a0%"]
        body.append([(labels or {}).get(r["method"], r["method"]), r["target"], r["images"], *cells])
    heads = [h for _, h in cols] + (["pixels for 90\u00a0% ↓", "reach 90\u00a0%"] if "efficiency" in metrics else [])
    return Table(body, ["method", "target", "images", *heads])


def summary_html(rows: Sequence[dict], labels: dict[str, str] | None = None) -> str:
    """`summary_table` as HTML."""
    return summary_table(rows, labels)._repr_html_()
