"""The fine-tuning chapter's table and figures, read from the results of `run_finetune`."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np

from ..export import saveable
from ..metrics import format_rate
from ..outputs import Table

LABELS = {"before": "before", "grad_eclip": "Grad-ECLIP regions", "none": "global loss only",
          "masks": "true masks (upper bound)", "uniform": "uniform (lower bound)",
          "attention": "raw attention (blind to the phrase)"}
METRICS = {"region": "region class.", "pointing_dense": "pointing, dense", "pointing_grad_eclip":
           "pointing, Grad-ECLIP", "binding": "binding", "zero_shot": "zero-shot"}


def rows_of(record: Mapping) -> dict[str, Mapping]:
    """{run label: its checks}, the base model first."""
    return {"before": record["before"], **{k: v["checks"] for k, v in record["runs"].items()}}


SHORT = {"before": "before", "grad_eclip": "Grad-ECLIP", "none": "global only", "masks": "true masks",
         "uniform": "uniform", "attention": "raw attention"}


def finetune_table(record: Mapping, metrics: tuple[str, ...] = tuple(METRICS)) -> Table:
    """One row per run (and the base model), one column per measurement, each with its interval."""
    rows = [[SHORT.get(k, k), *(format_rate(*checks[m]) for m in metrics)] for k, checks in rows_of(record).items()]
    return Table(rows, ["model", *(METRICS[m] for m in metrics)])


@saveable
def plot_finetune(record: Mapping, metrics: tuple[str, ...] = ("region", "pointing_dense", "pointing_grad_eclip",
                                                              "zero_shot"), ax=None):
    """Grouped bars with 95 % intervals: each measurement, for the base model and every run."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.6, 3.4))
    runs = rows_of(record)
    width = 0.8 / len(runs)
    x = np.arange(len(metrics))
    for j, (name, checks) in enumerate(runs.items()):
        values = np.array([checks[m][0] for m in metrics])
        err = np.array([[checks[m][0] - checks[m][1] for m in metrics], [checks[m][2] - checks[m][0] for m in metrics]])
        ax.bar(x + (j - (len(runs) - 1) / 2) * width, values, width, yerr=err, capsize=2, label=LABELS.get(name, name))
    ax.set_xticks(x, [METRICS[m] for m in metrics])
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return ax


@saveable
def plot_losses(record: Mapping, ax=None):
    """The local (region-phrase) and global losses of each run over the steps."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.2))
    for j, (name, run) in enumerate(record["runs"].items()):
        history = run["history"]
        colour = f"C{j + 1}"  # the colours of `plot_finetune` (C0 is the base model)
        ax.plot(history["step"], history["global"], color=colour, linestyle="--")
        if any(history["local"]):
            ax.plot(history["step"], history["local"], color=colour, label=LABELS.get(name, name))
        else:
            ax.plot([], [], color=colour, linestyle="--", label=LABELS.get(name, name))
    ax.set_xlabel("step")
    ax.set_ylabel("loss (solid: local, dashed: global)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return ax


def global_loss_against(record: Mapping, reference: str = "none") -> dict[str, dict]:
    """For each run, how its logged global loss compares with the ``reference`` run's at the same steps (the
    same batches): the steps where it is higher, the steps logged, and its mean ratio to the reference."""
    base = record["runs"][reference]["history"]["global"]
    out = {}
    for name, run in record["runs"].items():
        mine = run["history"]["global"]
        if len(mine) != len(base):
            raise ValueError(f"run {name!r} logged {len(mine)} steps, {reference!r} {len(base)}")
        out[name] = {"higher": sum(a > b for a, b in zip(mine, base)), "steps": len(base),
                     "mean_ratio": float(np.mean([a / b for a, b in zip(mine, base)]))}
    return out
