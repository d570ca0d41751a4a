"""Concept decomposition of a caption (the paper's "working mechanism of image-text matching"): is the
image map of a caption the sum of its phrases' maps, does it stay on the objects it names, do the object
words carry the textual weight, and does cos(image, caption) add up from its phrases?"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..explain import explain, explain_text
from ..metrics import bootstrap_interval, energy_pointing_game, pearson, r_squared
from ..models.clip import Clip
from ..shapesworld.evaluate import image_size
from ..synthetic.scenes import caption_for, make_scenes
from .words import WORD_CLASSES, word_class


def _partial_captions(scenes: list, seed: int) -> list[tuple[int, str]]:
    """For each scene, how many of its objects the caption names (1..all, uniform) and the caption:
    the generator's own templates around the first k objects' phrases (a random subset: the generator
    draws objects in random order)."""
    rng = np.random.default_rng([seed, 1])
    out = []
    for scene in scenes:
        k = int(rng.integers(1, len(scene.objects) + 1))
        out.append((k, caption_for(scene.objects[:k], rng)))
    return out


def concept_decomposition(clip: Clip, n: int = 500, n_objects: int = 3, seed: int = 70_000, method: str = "grad_eclip",
                          batch_size: int = 200, **options) -> list[dict]:
    """One record per held-out scene of ``n_objects`` objects whose caption names k of them.

    Image maps (``method``) of the caption and of every object's phrase; the caption's text weights;
    the cosines of the image with the caption, each phrase and the normalised sum of the named phrases'
    embeddings. Records hold: ``k``; ``corr_named`` / ``corr_unnamed`` (Pearson, on the token grid,
    between the caption map and the sum of the named / unnamed phrases' maps; nan when there are none);
    ``corr_each`` (mean correlation with each named phrase map); ``share_named`` / ``share_unnamed``
    (share of the caption map's mass on the union of those objects' masks), ``area_named`` /
    ``area_unnamed`` (their share of the pixels) and ``lift_*`` = share / area (1: no preference);
    ``weight_<class>`` (textual weight on object, function and template words, summing to 1) and
    ``words_<class>`` (how many); ``cos_caption``, ``cos_phrases`` (named), ``cos_sum`` (the image
    against the normalised sum of the named phrases' embeddings), ``text_sum`` (the caption's embedding
    against that sum).
    """
    scenes = make_scenes(n, seed=seed, n_objects=n_objects, size=image_size(clip))
    named = _partial_captions(scenes, seed)
    images = [s.image for s in scenes]
    captions = [c for _, c in named]
    phrases = [o.phrase for s in scenes for o in s.objects]

    caption_maps = explain(clip, images, captions, method=method, batch_size=batch_size, **options)
    phrase_maps = explain(clip, [s.image for s in scenes for _ in s.objects], phrases, method=method,
                          batch_size=batch_size, **options)
    words = explain_text(clip, images, captions)
    image_emb = clip.encode_image(images)
    caption_emb = clip.encode_text(captions)
    phrase_emb = clip.encode_text(phrases)

    upsampled = caption_maps.upsampled(normalized=False)
    records, at = [], 0
    for i, (scene, (k, caption)) in enumerate(zip(scenes, named)):
        m = len(scene.objects)
        grid = caption_maps.maps[i].float()
        own = phrase_maps.maps[at : at + m].float()
        emb = phrase_emb[at : at + m]
        at += m
        masks = [torch.from_numpy(o.mask) for o in scene.objects]
        union_named = torch.stack(masks[:k]).any(0)
        union_unnamed = torch.stack(masks[k:]).any(0) if k < m else torch.zeros_like(union_named)
        shares = energy_pointing_game(upsampled[i : i + 1].expand(2, -1, -1), torch.stack([union_named, union_unnamed]))
        summed = F.normalize(emb[:k].sum(0), dim=-1)
        record = {
            "caption": caption, "k": k, "objects": m,
            "corr_named": pearson(grid, own[:k].sum(0)),
            "corr_unnamed": pearson(grid, own[k:].sum(0)) if k < m else float("nan"),
            "corr_each": float(np.mean([pearson(grid, own[j]) for j in range(k)])),
            "share_named": float(shares[0]), "share_unnamed": float(shares[1]),
            "area_named": float(union_named.float().mean()), "area_unnamed": float(union_unnamed.float().mean()),
            "lift_named": float(shares[0] / union_named.float().mean()),  # mass per area, 1 = no preference
            "lift_unnamed": float(shares[1] / union_unnamed.float().mean()) if k < m else float("nan"),
            "cos_caption": float(image_emb[i] @ caption_emb[i]),
            "cos_phrases": (emb[:k] @ image_emb[i]).tolist(),
            "cos_sum": float(image_emb[i] @ summed),
            "text_sum": float(caption_emb[i] @ summed),  # is the caption's embedding the sum of its phrases'?
        }
        for cls in WORD_CLASSES:
            picked = [float(w) for t, w in zip(words[i].tokens, words[i].weights) if word_class(t) == cls]
            record[f"weight_{cls}"], record[f"words_{cls}"] = sum(picked), len(picked)
        records.append(record)
    return records


def _mean_interval(values: np.ndarray, seed: int) -> tuple[float, float, float]:
    values = values[~np.isnan(values)]
    if len(values) == 0:  # e.g. no unnamed object when the caption names them all
        return (float("nan"),) * 3
    low, high = bootstrap_interval(lambda idx: float(values[idx].mean()), len(values), seed=seed)
    return float(values.mean()), low, high


def decomposition_summary(records: list[dict], seed: int = 0) -> dict:
    """The numbers the chapter reports, each (value, low, high) with a 95 % bootstrap interval over scenes.

    ``by_k``: per number of named objects, the caption map's correlation with the named and with the
    unnamed phrases' maps, its mass on named and unnamed objects and their areas, the cosines. ``weights``: the
    mean textual weight per word of each class. ``additivity``: R^2 of cos(image, caption) fitted on the
    mean cosine of its phrases, and on the image's cosine with the normalised sum of phrase embeddings.
    """
    by_k = {}
    for k in sorted({r["k"] for r in records}):
        rows = [r for r in records if r["k"] == k]
        by_k[k] = {"scenes": len(rows), **{
            key: _mean_interval(np.array([r[key] for r in rows], float), seed)
            for key in ("corr_named", "corr_unnamed", "corr_each", "share_named", "share_unnamed",
                        "area_named", "area_unnamed", "lift_named", "lift_unnamed", "cos_caption", "cos_sum",
                        "text_sum")}}
    weights = {}
    for cls in WORD_CLASSES:  # weight per word of the class, over captions that have such words
        per_word = np.array([r[f"weight_{cls}"] / r[f"words_{cls}"] for r in records if r[f"words_{cls}"]])
        weights[cls] = _mean_interval(per_word, seed) if len(per_word) else (float("nan"),) * 3
    y = np.array([r["cos_caption"] for r in records])
    predictors = {"mean of phrase cosines": np.array([np.mean(r["cos_phrases"]) for r in records]),
                  "cosine with the sum of phrases": np.array([r["cos_sum"] for r in records])}
    additivity = {}
    for name, x in predictors.items():
        r2, coef = r_squared(y, x)
        low, high = bootstrap_interval(lambda idx, x=x: r_squared(y[idx], x[idx])[0], len(y), seed=seed)
        additivity[name] = {"r2": (r2, low, high), "intercept": float(coef[0]), "slope": float(coef[1])}
    return {"scenes": len(records), "by_k": by_k, "weights": weights, "additivity": additivity}
