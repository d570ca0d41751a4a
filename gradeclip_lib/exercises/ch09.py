"""Chapter 9 (fine-tuning): map-weighted pooling of dense features into region embeddings, written by
the student, against the library's `pool_regions` with weights from `map_weights`."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..finetune.regions import map_weights, pool_regions
from .checking import call, check_tensor, passed


def pooling_cases(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense features [B, h, w, E] on a 4 x 6 grid (not square) and signed maps [B, h, w]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(5, 4, 6, 16, generator=gen), torch.randn(5, 4, 6, generator=gen) + 0.3


def reference(dense: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """One region embedding [B, E] per map: its clamped, sum-1 weights over the same image's patches."""
    flat = dense.flatten(1, 2)
    return pool_regions(flat, map_weights(maps), torch.arange(len(maps)))


def check_region_pooling(fn: Callable) -> None:
    """``fn(dense [B, h, w, E], maps [B, h, w]) -> [B, E]`` must equal `reference` on cases of its own."""
    dense, maps = pooling_cases()
    got = call(fn, dense, maps, names=("dense", "maps"))
    flat = dense.flatten(1, 2)
    signed = maps.flatten(1)
    clamped = signed.clamp_min(0)

    def pooled(weights: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bn,bne->be", weights, flat)

    b, h, w, e = dense.shape
    worst = check_tensor(got, reference(dense, maps), "region embeddings", mistakes={
        "Normalise each map's weights to sum 1 (after clamping), so that a region is an average of patch "
        "features.": pooled(clamped),
        "Clamp the map at 0 before normalising: a negative weight would subtract a patch's feature.":
            pooled(signed / signed.sum(1, keepdim=True)),
        "Clamp the map at 0 (negative evidence gets no weight), do not take its absolute value.":
            pooled(signed.abs() / signed.abs().sum(1, keepdim=True)),
        "Normalise each map's weights to sum 1 (divide by their sum, not their maximum).":
            pooled(clamped / clamped.amax(1, keepdim=True)),
        "The weights are the clamped map divided by its sum, not a softmax of the map.": pooled(signed.softmax(1)),
        "Weight each patch by the map's value: not the plain mean of the patches where the map is positive.":
            pooled((signed > 0).float() / (signed > 0).float().sum(1, keepdim=True)),
        "That is the mean of all patches: weight each patch by the map.": flat.mean(1),
        "Each region pools the patches of its own image: the weights of map b go with dense[b] only.":
            torch.einsum("bn,cne->be", clamped / clamped.sum(1, keepdim=True), flat) / b,
    }, where=lambda i: f"region {i[0]}, feature {i[1]}",
        case=f"(the check's {b} maps on a {h} x {w} grid, features of {e} dimensions)")
    passed(f"your region embeddings equal the library's pool_regions(map_weights(...)) on {b} signed maps on a "
           f"{h} x {w} grid, features of {e} dimensions (largest difference {worst:.1g}).")


RUNS = ("grad_eclip", "none", "masks", "uniform")
_RUN_SPELLINGS = {"grad-eclip regions": "grad_eclip", "grad eclip": "grad_eclip", "grad-eclip": "grad_eclip",
                  "global loss only": "none", "global": "none", "global loss": "none", "true masks": "masks",
                  "mask": "masks", "uniform regions": "uniform"}


def check_prediction(ranking: object, least_change: object, record: dict) -> None:
    """Exercise 9.1: the four runs (`RUNS`: Grad-ECLIP regions, global loss only, true masks, uniform) from
    the best region classification after tuning to the worst, and the run that changes the dense
    features' pointing game least, against the chapter's results (``record``, the tuning's results file)."""
    from .checking import as_choice, as_names

    order = as_names(ranking, "ranking", RUNS, _RUN_SPELLINGS)
    if sorted(order) != sorted(RUNS):
        raise AssertionError(f"ranking: rank each of {', '.join(map(repr, RUNS))} once (you gave {order}).")
    least = as_choice(least_change, RUNS, "least_change", _RUN_SPELLINGS)
    runs = record["runs"]
    region = {name: runs[name]["checks"]["region"][0] for name in RUNS}
    measured = sorted(RUNS, key=lambda name: -region[name])
    values = ", ".join(f"{name} {region[name]:.2f}" for name in measured)
    for i, (mine, theirs) in enumerate(zip(order, measured)):
        if mine != theirs:
            raise AssertionError(f"ranking: place {i + 1} differs: you put {mine!r}, the results put {theirs!r} "
                                 f"(region classification after tuning: {values}).")
    before = record["before"]["pointing_dense"][0]
    change = {name: runs[name]["checks"]["pointing_dense"][0] - before for name in RUNS}
    barely = sorted((name for name in RUNS if abs(change[name]) <= 0.05), key=lambda name: abs(change[name]))
    moves = ", ".join(f"{name} {change[name]:+.3f}" for name in RUNS)
    if least not in barely:
        raise AssertionError(f"least_change: you predicted {least!r}; the dense pointing game ({before:.3f} before "
                             f"tuning) moves by {moves}: {' and '.join(barely)} barely move it (by 0.05 or less). "
                             "The global loss never looks at patches, and uniform regions show no place.")
    passed(f"region classification {values}; the dense pointing game ({before:.3f} before) moves by {moves}: "
           f"{' and '.join(barely)} barely move it, {least} included.")


def dense_pointing(model, n_objects: int, n: int = 40, tolerance: float = 0.04) -> float:
    """The pointing game of the dense features' map (MaskCLIP) on ``n`` scenes with ``n_objects`` objects (the
    worked answer's scenes, seed 124 000 + the count, its first ``n``)."""
    from ..explain import explain
    from ..metrics import pointing_game
    from ..shapesworld.evaluate import image_size
    from ..synthetic import make_scenes

    size = image_size(model)
    scenes = make_scenes(n, seed=124_000 + n_objects, n_objects=n_objects, size=size)
    maps = explain(model, [s.image for s in scenes], [s.objects[0].phrase for s in scenes],
                   method="mask_clip").upsampled(normalized=True)
    masks = torch.stack([torch.from_numpy(s.objects[0].mask) for s in scenes])
    return float(pointing_game(maps, masks, tolerance * size).float().mean())


def check_generalisation(gain_holds: object, base=None, tuned=None, n: int = 40) -> None:
    """Exercise 9.3: does the tuned model's gain in the dense pointing game hold on scenes with four and five
    objects, which tuning never showed (True / False)? Measured on ``n`` scenes per count (the worked answer:
    300, and every count from 1 to 5)."""
    from ..models import load_clip
    from .checking import as_yes_no

    holds = as_yes_no(gain_holds, "gain_holds")
    base, tuned = base or load_clip("shapes"), tuned or load_clip("shapes-tuned")
    rates = {k: (dense_pointing(base, k, n), dense_pointing(tuned, k, n)) for k in (4, 5)}
    measured = "; ".join(f"{k} objects: base {b:.2f}, tuned {t:.2f}" for k, (b, t) in rates.items())
    measured_holds = all(t > b + 0.05 for b, t in rates.values())
    if holds != measured_holds:
        why = ("the dense features learned 'this patch is a red circle', not a property of three-object scenes"
               if measured_holds else "the gain does not carry over to more objects here")
        raise AssertionError(f"gain_holds: you predicted {holds}; on {n} scenes per count, {measured}: {why}.")
    passed(f"on {n} scenes per count, {measured}. The worked answer measures every count from 1 to 5 on 300 "
           "scenes, with intervals.")
