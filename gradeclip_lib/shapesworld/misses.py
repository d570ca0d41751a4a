"""Why a map misses: where its maximum lands (on another object, near the target, on the background),
and how the pointing game varies with the target's colour and shape."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..metrics import rate_with_interval
from ..synthetic.scenes import Scene

PLACES = ("target", "near the target", "another object", "background")


def _distance(mask: np.ndarray, y: float, x: float) -> float:
    ys, xs = np.nonzero(mask)
    return float(np.hypot(ys - y, xs - x).min())


def peak_places(maps: torch.Tensor | Sequence[torch.Tensor], scenes: Sequence[Scene], tolerance: float,
                near: float | None = None, target: int = 0) -> list[str]:
    """For each upsampled map and its scene, where the maximum lies: on the ``target`` object (within
    ``tolerance`` px: a pointing-game hit), near it (within ``near`` px, default one 8-px patch more),
    on another object (within ``tolerance`` of its mask), or on the background. Ties: the first maximum."""
    near = tolerance + 8 if near is None else near
    places = []
    for emap, scene in zip(maps, scenes):
        emap = torch.as_tensor(emap)
        y, x = divmod(int(emap.flatten().argmax()), emap.shape[-1])
        d_target = _distance(scene.objects[target].mask, y, x)
        others = [_distance(o.mask, y, x) for i, o in enumerate(scene.objects) if i != target]
        if d_target <= tolerance:
            places.append("target")
        elif others and min(others) <= tolerance:
            places.append("another object")
        elif d_target <= near:
            places.append("near the target")
        else:
            places.append("background")
    return places


def place_counts(places: Sequence[str]) -> dict[str, int]:
    """How many maxima fell in each place, in the order of `PLACES`."""
    counts = Counter(places)
    return {p: counts.get(p, 0) for p in PLACES}


def object_means(grid_maps: torch.Tensor, scenes: Sequence[Scene]) -> list[list[float]]:
    """The mean of each token-grid map [B, h, w] over each object of its scene (patches weighted by the
    share of their pixels the object covers): which patches a term of a method favours, object by
    object. Returns one list per scene, in the order of its objects."""
    grid_maps = torch.as_tensor(grid_maps).float()
    means = []
    for emap, scene in zip(grid_maps, scenes):
        row = []
        for obj in scene.objects:
            cover = torch.nn.functional.adaptive_avg_pool2d(
                torch.as_tensor(obj.mask, dtype=torch.float32)[None, None], tuple(emap.shape))[0, 0]
            row.append(float((emap * cover).sum() / cover.sum()))
        means.append(row)
    return means


def mean_by(scenes: Sequence[Scene], values: Sequence[float], key: Callable[[Scene], str]) -> dict[str, float]:
    """The mean of one value per scene for each value of ``key`` (e.g. the named object's colour)."""
    groups: dict[str, list[float]] = {}
    for scene, value in zip(scenes, values):
        groups.setdefault(key(scene), []).append(float(value))
    return {k: float(np.mean(v)) for k, v in groups.items()}


def factors_by(scenes: Sequence[Scene], terms, key: Callable[[Scene], str]) -> dict[str, dict[str, float]]:
    """Grad-ECLIP's two factors on the named (first) object of each scene, averaged for each value of
    ``key``: the spatial weight on the named object (``lam_named``) and on the others (``lam_others``),
    and the gradient-times-value term on the named object relative to its maximum over the image
    (``evidence_named``). ``terms``: `ImageTerms` of the scenes' images and their first phrases."""
    lam = object_means(terms.spatial_weight(), scenes)
    evidence = terms.gradient_times_value()
    evidence = object_means(evidence / evidence.flatten(1).amax(1)[:, None, None], scenes)
    columns = {"lam_named": [row[0] for row in lam],
               "lam_others": [float(np.mean(row[1:])) if len(row) > 1 else float("nan") for row in lam],
               "evidence_named": [row[0] for row in evidence]}
    means = {name: mean_by(scenes, values, key) for name, values in columns.items()}
    return {value: {name: means[name][value] for name in columns} for value in means["lam_named"]}


def hit_rate_by(scenes: Sequence[Scene], hits: torch.Tensor, key: Callable[[Scene], str]) -> list[dict]:
    """Pointing-game rate with its 95 % Wilson interval for each value of ``key`` (e.g. the target's
    colour: ``lambda s: s.objects[0].colour``), sorted from the lowest rate."""
    groups: dict[str, list[bool]] = {}
    for scene, hit in zip(scenes, torch.as_tensor(hits).tolist()):
        groups.setdefault(key(scene), []).append(bool(hit))
    rows = []
    for value, outcomes in groups.items():
        rate, lo, hi = rate_with_interval(outcomes)
        rows.append({"value": value, "n": len(outcomes), "rate": rate, "low": lo, "high": hi})
    return sorted(rows, key=lambda r: r["rate"])
