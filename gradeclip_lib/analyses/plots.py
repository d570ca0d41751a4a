"""Figures of the analyses chapter: word weights against groundedness, and whether the caption's
similarity adds up from its phrases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from ..export import saveable
from .words import word_class

CLASS_COLOURS = {"object": "tab:red", "function": "tab:blue", "template": "tab:grey"}


@saveable
def plot_word_weights(table: Sequence[Mapping], ax=None):
    """Mean textual weight per word (bars, heaviest first), coloured by the word's class, with its
    groundedness (dots, right axis). ``table``: rows with word / weight / rating or groundedness."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.2, 3.2))
    words = [r["word"] for r in table]
    x = np.arange(len(words))
    ax.bar(x, [r["weight"] for r in table], color=[CLASS_COLOURS[word_class(w)] for w in words])
    ax.set_xticks(x, words, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("mean text weight")
    ax.grid(axis="y", alpha=0.3)
    right = ax.twinx()
    right.plot(x, [r.get("groundedness", r.get("rating")) for r in table], "ko", markersize=3)
    right.set_ylabel("groundedness (dots)")
    right.set_ylim(-0.05, 1.05)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in CLASS_COLOURS.values()]
    ax.legend(handles, [f"{c} words" for c in CLASS_COLOURS], fontsize=8, frameon=False)
    return ax


@saveable
def plot_additivity(records: Sequence[Mapping], ax=None):
    """cos(image, caption) against cos(image, normalised sum of its phrases' embeddings), one dot per
    scene, coloured by how many objects the caption names; the diagonal is perfect additivity."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.4, 4.0))
    for k in sorted({r["k"] for r in records}):
        mine = [r for r in records if r["k"] == k]
        ax.scatter([r["cos_sum"] for r in mine], [r["cos_caption"] for r in mine], s=8, alpha=0.6,
                   label=f"caption names {k}")
    ax.plot([-0.2, 1], [-0.2, 1], "k--", linewidth=0.8)
    ax.set_xlabel("cos(image, sum of the phrases)")
    ax.set_ylabel("cos(image, caption)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return ax
