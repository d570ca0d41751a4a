"""Pictures of explanations: heat maps over images, side-by-side panels, word importance as colour.

Every function that draws takes ``save="figure.png"`` (or ``.svg``, ``.pdf``) and ``dpi=``; see `export`."""

from __future__ import annotations

import html
import os
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps
from PIL import Image

from .explanation import TextExplanation
from .export import DPI, figure_format, save_figure, saveable
from .images import ImageInput, keep_size_shape, load_image
from .outputs import Rich, Table

CMAP = "jet"


def _to_numpy(image: ImageInput) -> np.ndarray:
    return np.asarray(load_image(image))


def _fit(emap: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map min-max scaled to [0, 1] and resized (bilinear) to ``size`` = (H, W)."""
    m = torch.as_tensor(np.asarray(emap, dtype=np.float32))
    m = (m - m.min()) / (m.max() - m.min()).clamp_min(1e-12)
    if tuple(m.shape) != tuple(size):
        m = F.interpolate(m[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    return m.clamp(0, 1).numpy()


@saveable
def overlay(image: ImageInput, emap, alpha: float = 0.5, cmap: str = CMAP, fade: bool = False) -> np.ndarray:
    """The image blended with a coloured heat map of ``emap`` (any grid size): uint8 [H, W, 3].

    ``fade``: the heat map's opacity follows its value (``alpha`` at the maximum, none at the minimum),
    so the scene stays visible wherever the map is low; for small images with small objects.
    """
    img = _to_numpy(image)
    m = _fit(emap, img.shape[:2])
    heat = colormaps[cmap](m)[..., :3] * 255
    a = alpha * m[..., None] if fade else alpha
    return np.clip(img * (1 - a) + heat * a, 0, 255).astype(np.uint8)


@saveable
def show_map(image: ImageInput, emap, title: str | None = None, ax=None, alpha: float = 0.5,
             outline: np.ndarray | None = None, fade: bool = False):
    """Draw one heat map over its image on ``ax`` (a new figure if None), with the boolean mask
    ``outline`` (the object a prompt names) drawn as a white-on-black contour; returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(overlay(image, emap, alpha, fade=fade))
    if outline is not None:
        for colour, width in (("black", 2.6), ("white", 1.2)):  # readable on any colour
            ax.contour(np.asarray(outline, dtype=float), levels=[0.5], colors=colour, linewidths=width)
    ax.set_axis_off()
    if title:
        ax.set_title(textwrap.fill(title, 28), fontsize=11)
    return ax


@saveable
def show_panels(
    image: ImageInput,
    maps: Mapping[str, torch.Tensor | np.ndarray],
    with_image: bool = True,
    size: float = 2.6,
    alpha: float = 0.5,
    cols: int | None = None,
    outline: np.ndarray | None = None,
    fade: bool = False,
):
    """The image, then each named map over it (each min-max normalised), in rows of ``cols`` panels
    (one row by default), the mask ``outline`` drawn on every map; returns the figure."""
    n = len(maps) + int(with_image)
    cols = cols or n
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.25 * rows), squeeze=False)
    axes = list(axes.flat)
    for ax in axes:
        ax.set_axis_off()
    if with_image:
        axes[0].imshow(_to_numpy(image))
        axes[0].set_title("image", fontsize=11)
    for ax, (name, emap) in zip(axes[int(with_image):], maps.items()):
        show_map(image, emap, name, ax=ax, alpha=alpha, outline=outline, fade=fade)
    fig.tight_layout()
    return fig


@saveable
def show_grid(images: Sequence[ImageInput], maps: Sequence, titles: Sequence[str] | None = None,
              cols: int = 4, size: float = 2.6, outlines: Sequence[np.ndarray | None] | None = None,
              fade: bool = False, alpha: float = 0.5):
    """Several (image, map) overlays in a grid, each with an optional mask outlined (see `show_map`);
    returns the figure."""
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            show_map(images[i], maps[i], titles[i] if titles else None, ax=ax, alpha=alpha,
                     outline=outlines[i] if outlines else None, fade=fade)
        else:
            ax.set_axis_off()
    fig.tight_layout()
    return fig


def _colour(weight: float, cmap: str = "Reds") -> str:
    r, g, b, _ = colormaps[cmap](0.1 + 0.8 * weight)
    return f"rgb({int(r * 255)},{int(g * 255)},{int(b * 255)})"


def words_html(words: TextExplanation | Sequence[TextExplanation]) -> str:
    """Word pieces as HTML spans whose background shows their weight (darkest = most important)."""
    items = [words] if isinstance(words, TextExplanation) else list(words)
    lines = []
    for w in items:
        top = float(w.weights.max()) if len(w.weights) else 1.0
        spans = []
        for token, s in zip(w.tokens, w.weights.tolist()):
            rel = s / top if top > 0 else 0.0
            fg = "white" if rel > 0.6 else "black"
            spans.append(
                f'<span title="{s:.3f}" style="background:{_colour(rel)};color:{fg};padding:1px 3px;'
                f'margin:1px;border-radius:3px">{html.escape(token)}</span>'
            )
        lines.append(f'<div style="line-height:2em">{" ".join(spans)} '
                     f'<span style="color:#777;font-size:85%">cos = {w.score:.3f}</span></div>')
    return "\n".join(lines)


def words_markdown(words: TextExplanation | Sequence[TextExplanation]) -> str:
    """The word weights as text for the PDF: each piece with its weight, the heaviest in bold."""
    items = [words] if isinstance(words, TextExplanation) else list(words)
    lines = []
    for w in items:
        top = float(w.weights.max()) if len(w.weights) else 0.0
        pieces = [f"**{t}** ({s:.2f})" if s == top and top > 0 else f"{t} ({s:.2f})"
                  for t, s in zip(w.tokens, w.weights.tolist())]
        lines.append(" ".join(pieces) + f" — cos = {w.score:.3f}")
    return "\n\n".join(lines)


def show_words(words: TextExplanation | Sequence[TextExplanation], save: str | os.PathLike | None = None,
               dpi: int = DPI) -> None:
    """Display word importance as coloured HTML in a notebook; ``save`` writes its static version
    (`words_figure`) to a PNG, SVG or PDF file."""
    from IPython.display import display

    if save is not None:
        figure_format(save)
    display(Rich(words_html(words), words_markdown(words)))
    if save is not None:
        fig = words_figure(words)
        save_figure(fig, save, dpi=dpi)
        plt.close(fig)


@saveable
def words_figure(words: TextExplanation | Sequence[TextExplanation], width: float = 8.0):
    """A static (printable) version of `words_html`: coloured boxes behind each word piece."""
    items = [words] if isinstance(words, TextExplanation) else list(words)
    fig, ax = plt.subplots(figsize=(width, 0.45 * len(items) + 0.2))
    _draw_words(ax, items)
    return fig


def _draw_words(ax, items: Sequence[TextExplanation]) -> None:
    fig = ax.figure
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(len(items), 0)
    renderer = fig.canvas.get_renderer()
    for row, w in enumerate(items):
        x = 0.0
        top = float(w.weights.max()) if len(w.weights) else 1.0
        for token, s in zip(w.tokens, w.weights.tolist()):
            rel = s / top if top > 0 else 0.0
            t = ax.text(x, row + 0.5, token, va="center", ha="left", fontsize=11,
                        color="white" if rel > 0.6 else "black",
                        bbox=dict(boxstyle="round,pad=0.25", fc=colormaps["Reds"](0.1 + 0.8 * rel), ec="none"))
            box = t.get_window_extent(renderer=renderer).transformed(ax.transData.inverted())
            x = box.x1 + 0.012
        ax.text(x + 0.01, row + 0.5, f"cos = {w.score:.3f}", va="center", fontsize=9, color="#777")


def cloud_weights(words: TextExplanation) -> dict[str, float]:
    """Word piece -> its total weight in the text (a piece that occurs twice adds up), pieces without
    positive weight left out: what the word cloud sizes its words by."""
    totals: dict[str, float] = {}
    for token, s in zip(words.tokens, words.weights.tolist()):
        if s > 0 and token.strip():
            totals[token.strip()] = totals.get(token.strip(), 0.0) + s
    return totals


def make_cloud(words: TextExplanation, width: int = 640, height: int = 320, seed: int = 0, cmap: str = "Reds"):
    """A `wordcloud.WordCloud` laid out from `cloud_weights`: font size grows with a word's weight, and
    its colour follows the same scale as `words_html` (the darkest red is the heaviest word)."""
    try:
        from wordcloud import WordCloud
    except ImportError as err:  # pinned in requirements.txt; say how to get it rather than fail obscurely
        raise ImportError("word clouds need the 'wordcloud' package: pip install -r requirements.txt") from err
    weights = cloud_weights(words)
    if not weights:
        raise ValueError(f"no word of {words.text!r} has a positive weight: nothing to draw")
    top = max(weights.values())

    def colour(word, **_):
        return _colour(weights[word] / top, cmap)

    cloud = WordCloud(width=width, height=height, background_color="white", random_state=seed, prefer_horizontal=1.0,
                      color_func=colour, collocations=False, normalize_plurals=False, min_font_size=6)
    return cloud.generate_from_frequencies(weights)


@saveable
def word_cloud(words: TextExplanation, ax=None, width: int = 640, height: int = 320, seed: int = 0):
    """The text explanation as a word cloud (see `make_cloud`) on ``ax`` (a new figure if None); returns
    the axes. Pieces that occur twice are summed; the ones with no positive weight are not drawn."""
    cloud = make_cloud(words, width, height, seed)
    if ax is None:
        _, ax = plt.subplots(figsize=(width / 100, height / 100))
    ax.imshow(cloud.to_array(), interpolation="bilinear")
    ax.set_axis_off()
    return ax


@saveable
def show_words_and_cloud(words: TextExplanation, width: float = 10.0):
    """The coloured word pieces beside their word cloud, in one figure; returns the figure."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(width, width * 0.25), width_ratios=(1, 1))
    _draw_words(left, [words])
    word_cloud(words, ax=right)
    fig.tight_layout()
    return fig


def pil(array: np.ndarray) -> Image.Image:
    """A uint8 array as a PIL image (for saving overlays)."""
    return Image.fromarray(array)


@saveable
def show_patch_grid(image: ImageInput, patch: int, size: tuple[int, int] | None = None, ax=None):
    """The image as the model sees it in keep-size mode: resized to patch multiples, with the patch grid."""
    img = load_image(image)
    h, w = size or keep_size_shape(img.height, img.width, patch)
    arr = np.asarray(img.resize((w, h), Image.BICUBIC))
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5 * h / w))
    ax.imshow(arr)
    for x in range(0, w + 1, patch):
        ax.axvline(x - 0.5, color="white", lw=0.5, alpha=0.7)
    for y in range(0, h + 1, patch):
        ax.axhline(y - 0.5, color="white", lw=0.5, alpha=0.7)
    ax.set_title(f"{w // patch} x {h // patch} patches of {patch} px, plus one class token", fontsize=10)
    ax.set_axis_off()
    return ax


@saveable
def show_heads(image: ImageInput, maps: torch.Tensor, titles: Sequence[str] | None = None, cols: int = 6,
               size: float = 2.2):
    """One overlay per head (or per layer) from maps [K, h, w]; returns the figure."""
    k = maps.shape[0]
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < k:
            show_map(image, maps[i], titles[i] if titles else f"head {i}", ax=ax)
        else:
            ax.set_axis_off()
    fig.tight_layout()
    return fig


@saveable
def plot_curve(values: Sequence[float] | torch.Tensor, xlabel: str, ylabel: str, title: str | None = None,
               ax=None, **style):
    """A labelled line plot (layer-wise statistics, sorted weights); returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    values = np.asarray(torch.as_tensor(values, dtype=torch.float32))
    ax.plot(np.arange(len(values)), values, **style)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return ax


@saveable
def show_terms(image: ImageInput, terms, title: str = ""):
    """Grad-ECLIP's factors in a 2 x 2 figure: the image, the signed gradient x value, the spatial
    weight, and the final map (their product after the ReLU) over the image; returns the figure."""
    gv = terms.gradient_times_value()[0]
    lam = terms.spatial_weight()[0]
    fig, axes = plt.subplots(2, 2, figsize=(8, 6.4))
    axes = axes.flat
    axes[0].imshow(_to_numpy(image))
    axes[0].set_title("image", fontsize=11)
    lim = float(gv.abs().max()) or 1.0
    im = axes[1].imshow(gv.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[1].set_title(r"gradient x value $\sum_c w_c\, v_{ic}$ (red raises S)", fontsize=11)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    im = axes[2].imshow(lam.numpy(), cmap="viridis", vmin=0, vmax=1)
    axes[2].set_title(r"spatial weight $\lambda_i$", fontsize=11)
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    show_map(image, terms.emap()[0], "Grad-ECLIP = ReLU(gradient x value x spatial weight)", ax=axes[3])
    axes[3].title.set_fontsize(11)
    for ax in axes:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


@saveable
def show_similarity(sims: torch.Tensor, rows: Sequence[str], cols: Sequence[str], title: str | None = None):
    """A table of cosine similarities [len(rows), len(cols)] as an annotated heat map; returns the figure."""
    sims = torch.as_tensor(sims).float().cpu()
    labels = 0.045 * max(map(len, cols), default=0)  # inches under the table for the slanted column labels
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(cols), 0.9 + 0.45 * len(rows) + labels))
    ax.imshow(sims.numpy(), cmap="Greens", aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=25, ha="right", fontsize=9)
    ax.set_yticks(range(len(rows)), rows, fontsize=9)
    best = sims.argmax(dim=1)
    for i in range(sims.shape[0]):
        for j in range(sims.shape[1]):
            weight = "bold" if j == int(best[i]) else "normal"
            ax.text(j, i, f"{float(sims[i, j]):.3f}", ha="center", va="center", fontsize=9, fontweight=weight)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


@saveable
def show_scenes(scenes, cols: int = 4, size: float = 2.4, masks: bool = False):
    """ShapesWorld scenes with their captions (and, with ``masks``, each object's mask outlined)."""
    rows = (len(scenes) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.3 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= len(scenes):
            continue
        ax.imshow(scenes[i].image)
        if masks:
            for obj in scenes[i].objects:
                ax.contour(obj.mask, levels=[0.5], colors="black", linewidths=0.8)
        ax.set_title(textwrap.fill(scenes[i].caption, 30), fontsize=8)
    fig.tight_layout()
    return fig


HISTORY_CURVES = {"zero_shot": ("zero-shot accuracy", "o"), "binding": ("binding", "s"),
                  "pointing": ("pointing game, Grad-ECLIP (4 objects)", "^"),
                  "pointing_attention": ("pointing game, raw attention (4 objects)", "v")}


@saveable
def plot_history(history: Mapping):
    """Training curves of a ShapesWorld run: the contrastive loss, and what was measured at each
    evaluation (zero-shot accuracy; binding and pointing game in runs that recorded them)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    left.plot(history["step"], history["loss"])
    left.set_xlabel("step")
    left.set_ylabel("contrastive loss")
    left.grid(alpha=0.3)
    for key, (label, marker) in HISTORY_CURVES.items():
        if history.get(key):
            right.plot(history["eval_step"], history[key], marker=marker, markersize=4, label=label)
    if len(right.lines) > 1:
        right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)
    right.set_xlabel("step")
    right.set_ylabel("on fresh scenes")
    right.set_ylim(0, 1.02)
    right.grid(alpha=0.3)
    fig.tight_layout()
    return fig


@saveable
def plot_rates(rows: Sequence[Mapping], x: str = "objects", y: str = "rate", group: str = "method",
               xlabel: str = "objects in the scene", ylabel: str = "pointing game", ax=None):
    """Rates with their intervals (``low``, ``high`` keys) against ``x``, one line per ``group``, slightly
    offset so that the error bars do not hide each other; returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.6))
    groups = list(dict.fromkeys(r[group] for r in rows))
    width = 0.08
    for k, name in enumerate(groups):
        mine = [r for r in rows if r[group] == name]
        xs = np.array([r[x] for r in mine], dtype=float) + (k - (len(groups) - 1) / 2) * width
        ys = np.array([r[y] for r in mine])
        err = np.array([[r[y] - r["low"] for r in mine], [r["high"] - r[y] for r in mine]])
        ax.errorbar(xs, ys, yerr=err, marker="o", markersize=4, capsize=3, label=name)
    ax.set_xticks(sorted({r[x] for r in rows}))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return ax


@saveable
def plot_size_growth(rows: Sequence[Mapping]):
    """Seconds and the memory each call adds (its peak above the memory before it) against the number of
    patches, log-log, a forward pass beside a Grad-ECLIP map, from `bench --sizes` rows; a dotted line of
    slope 1 marks linear growth. Returns the figure."""
    rows = [r for r in rows if "error" not in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    patches = np.array([r["patches"] for r in rows], dtype=float)
    for key, label in (("forward", "one forward pass"), ("grad_eclip", "Grad-ECLIP map")):
        left.plot(patches, [r[f"{key}_s"] for r in rows], marker="o", label=label)
        right.plot(patches, [(r[f"{key}_peak_mb"] - r["base_mb"]) / 1024 for r in rows], marker="o", label=label)
    for ax, values in ((left, [r["forward_s"] for r in rows]),
                       (right, [(r["grad_eclip_peak_mb"] - r["base_mb"]) / 1024 for r in rows])):
        ax.plot(patches, values[-1] * patches / patches[-1], ls=":", color="grey", label="linear")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("patches (image tokens)")
        ax.grid(alpha=0.3, which="both")
    left.set_ylabel("seconds")
    right.set_ylabel("memory the call adds (GiB)")
    left.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def _objects(count) -> str:
    return f"{count} object" + ("" if count == 1 else "s")


@saveable
def plot_method_rates(rows: Sequence[Mapping], group: str = "objects", y: str = "rate",
                      label=_objects, xlabel: str = "pointing game", ax=None):
    """One row per method (best on the last group at the top), the rate of each ``group`` (e.g. object
    count) as a dot with its interval (``low``, ``high``); for comparing many methods; returns the axes."""
    groups = list(dict.fromkeys(r[group] for r in rows))
    last = {r["method"]: r[y] for r in rows if r[group] == groups[-1]}
    methods = sorted(dict.fromkeys(r["method"] for r in rows), key=lambda m: last.get(m, 0))
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 0.42 * len(methods) + 1.0))
    markers = "os^vD"
    for k, g in enumerate(groups):
        mine = {r["method"]: r for r in rows if r[group] == g}
        ys = np.arange(len(methods)) + (k - (len(groups) - 1) / 2) * 0.22
        present = [i for i, m in enumerate(methods) if m in mine]
        vals = np.array([mine[methods[i]][y] for i in present])
        err = np.array([[vals[j] - mine[methods[i]]["low"] for j, i in enumerate(present)],
                        [mine[methods[i]]["high"] - vals[j] for j, i in enumerate(present)]])
        ax.errorbar(vals, ys[present], xerr=err, fmt=markers[k % len(markers)], markersize=5, capsize=3,
                    label=label(g))
    ax.set_yticks(range(len(methods)), methods)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=8, loc="lower right")
    return ax


@saveable
def plot_randomisation(rows: Sequence[Mapping], metrics: Sequence[str] = ("spearman", "ssim"), axes=None):
    """The model-parameter randomisation test: for each method, the mean similarity of its maps to the
    trained model's (one panel per metric) as the model is randomised stage by stage, with a band of two
    standard errors over scenes. A curve that stays high belongs to a map that does not depend on the model."""
    stages = list(dict.fromkeys((r["stage"], r["randomised"]) for r in sorted(rows, key=lambda r: r["stage"])))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    if axes is None:
        _, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), sharey=True, squeeze=False)
        axes = axes[0]
    xs = np.arange(len(stages))
    for ax, metric in zip(axes, metrics):
        for j, method in enumerate(methods):
            mine = {r["stage"]: torch.as_tensor(r[metric]).double() for r in rows if r["method"] == method}
            mean = np.array([float(mine[s].mean()) for s, _ in stages])
            se = np.array([float(mine[s].std() / len(mine[s]) ** 0.5) if len(mine[s]) > 1 else 0.0
                           for s, _ in stages])
            style = "--" if j >= 10 else "-"
            ax.plot(xs, mean, style, marker="o", markersize=3, label=method, color=f"C{j % 10}")
            ax.fill_between(xs, mean - 2 * se, mean + 2 * se, alpha=0.15, color=f"C{j % 10}")
        ax.set_xticks(xs, [name for _, name in stages], rotation=45, ha="right")
        ax.set_title({"spearman": "Spearman (token grid)", "ssim": "SSIM (upsampled)"}.get(metric, metric),
                     fontsize=10)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("similarity to the trained model's map")
    axes[0].set_xlabel("randomised up to")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    return axes


def table_html(rows: Sequence[Sequence], columns: Sequence[str], digits: int = 3) -> str:
    """A small HTML table (numbers rounded), for results computed in a chapter; `Table` also prints as
    Markdown in the PDF."""
    return Table(rows, columns, digits)._repr_html_()
