"""Chapter 8 (analyses): the lift of a map on an object, written by the student, against the library's
definition (share of the map's non-negative mass on the mask over the mask's share of the pixels)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..synthetic import make_scenes
from .checking import call, check_tensor, passed


def lift(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The reference: (mass of clamp(map, 0) inside the mask / total mass) / (mask pixels / all pixels)."""
    mass = maps.clamp_min(0)
    share = (mass * masks).flatten(1).sum(1) / mass.flatten(1).sum(1)
    return share / masks.float().flatten(1).mean(1)


def lift_cases(n: int = 12, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Maps [n, 64, 64] with negative values (as a signed map has) and the masks of ShapesWorld objects."""
    gen = torch.Generator().manual_seed(seed)
    masks = torch.stack([torch.from_numpy(s.objects[0].mask) for s in make_scenes(n, seed=seed, n_objects=1, size=64)])
    coarse = torch.randn(n, 1, 8, 8, generator=gen)
    maps = torch.nn.functional.interpolate(coarse, size=(64, 64), mode="bilinear", align_corners=False)[:, 0]
    return maps + 1.5 * masks.float(), masks


def check_lift(fn: Callable) -> None:
    """``fn(maps [B, H, W], masks [B, H, W] bool) -> [B]`` must equal `lift` on cases of its own."""
    maps, masks = lift_cases()
    got = call(fn, maps, masks, names=("maps", "masks"))
    mass = maps.clamp_min(0)
    inside = (mass * masks).flatten(1).sum(1)
    share = inside / mass.flatten(1).sum(1)
    fraction = masks.float().flatten(1).mean(1)
    raw = (maps * masks).flatten(1).sum(1) / maps.flatten(1).sum(1) / fraction
    absolute = maps.abs()
    worst = check_tensor(got, lift(maps, masks), "lift", mistakes={
        "Clamp the map at 0 first: negative values are not mass, and they can make the share exceed 1.": raw,
        "Clamp the map at 0 (negative values are no mass), do not take its absolute value.":
            (absolute * masks).flatten(1).sum(1) / absolute.flatten(1).sum(1) / fraction,
        "That is the share of the mass; divide it by the mask's share of the pixels, so that 1 means "
        "'no more mass on the object than its size gives it'.": share,
        "Divide by the mask's share of the pixels (a fraction of the image), not by its pixel count.":
            share / masks.float().flatten(1).sum(1),
        "Compare the mass on the object with the whole map's mass, not with the mass off the object.":
            inside / (mass * ~masks).flatten(1).sum(1) / fraction,
    }, where=lambda i: f"case {i[0]} (an object of {int(masks[i[0]].sum())} of {masks[i[0]].numel()} pixels)",
        case=f"(the check's {len(maps)} signed maps of {maps.shape[-2]} x {maps.shape[-1]})")
    passed(f"your lift equals the library's definition on {len(maps)} signed maps of {maps.shape[-2]} x "
           f"{maps.shape[-1]} pixels with ShapesWorld objects (largest difference {worst:.1g}).")


WORDS = ("red", "and", "lovely", "a")


def check_prediction(ranking: object, weights: dict) -> None:
    """Exercise 8.1: the words "red", "and", "lovely" and "a" from the heaviest to the lightest mean
    Grad-ECLIP weight, against the chapter's ``weights`` (`analyses.shapes_word_weights`: word -> (mean
    weight, occurrences) over its captions)."""
    from .checking import as_names

    order = as_names(ranking, "ranking", WORDS)
    if sorted(order) != sorted(WORDS):
        raise AssertionError(f"ranking: rank each of {', '.join(map(repr, WORDS))} once (you gave {order}).")
    measured = sorted(WORDS, key=lambda w: -weights[w][0])
    values = ", ".join(f"{w} {weights[w][0]:.3f}" for w in measured)
    captions = max(count for _, count in (weights[w] for w in WORDS))
    for i, (mine, theirs) in enumerate(zip(order, measured)):
        if mine != theirs and not tied(mine, theirs, weights):
            raise AssertionError(
                f"ranking: place {i + 1} differs: you put {mine!r}, the measured weights put {theirs!r} (mean weights "
                f"over the chapter's captions: {values}). Think of what each word says about the picture that the "
                "others do not already say.")
    ties = [f"{a!r} and {b!r}" for a, b in zip(measured, measured[1:]) if tied(a, b, weights)]
    note = f"; {' and '.join(ties)} weigh about the same, so either order of them passes" if ties else ""
    passed(f"your ranking {order} is the measured one (mean weights: {values}; up to {captions} occurrences "
           f"per word, the chapter's captions{note}).")


def tied(a: str, b: str, weights: dict) -> bool:
    """Two words whose mean weights differ by less than a factor of two: their order flips with the
    captions sampled (the chapter's "a" and "lovely", 0.007 and 0.004 over 500 captions, swap over 200)."""
    low, high = sorted((weights[a][0], weights[b][0]))
    return low >= high / 2
