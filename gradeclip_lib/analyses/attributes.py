"""Which attributes CLIP identifies, measured with known answers: does the map for "a red circle" land
on the red circle when a circle of another colour stands beside it (and likewise for shape), and does
the model prefer "a red circle" to the foil that swaps in the other object's colour or shape?"""

from __future__ import annotations

import torch

from ..explain import explain
from ..metrics import pointing_game, rate_with_interval
from ..models.clip import Clip
from ..shapesworld.evaluate import image_size
from ..synthetic.scenes import make_scenes, make_twin_scenes

FAMILIES = {"colour": "shape", "shape": "colour"}  # the family tested -> what the twins share


def attribute_localisation(clip: Clip, family: str = "colour", n: int = 300, others: int = 1, seed: int = 80_000,
                           method: str = "grad_eclip", tolerance: float = 0.04, **options) -> dict:
    """For ``n`` twin scenes (`make_twin_scenes`) whose target and twin differ only in ``family``: how
    often the map of the target's phrase points at the target, how often at the twin, and the chance of
    a uniformly random point landing on each (its tolerance-widened area). Rates are (rate, low, high)
    with Wilson 95 % intervals; ``target_vs_twin`` counts the scenes where the map points at exactly one
    of the two, and how often that one is the target (chance 0.5 when areas match); also the per-scene
    hits, scenes and upsampled maps."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    size = image_size(clip)
    scenes = make_twin_scenes(n, seed=seed, shared=FAMILIES[family], others=others, size=size)
    exp = explain(clip, [s.image for s in scenes], [s.objects[0].phrase for s in scenes], method=method, **options)
    maps = exp.upsampled(normalized=True)
    radius = tolerance * size
    target = pointing_game(maps, [torch.from_numpy(s.objects[0].mask) for s in scenes], radius)
    twin = pointing_game(maps, [torch.from_numpy(s.objects[1].mask) for s in scenes], radius)
    either = target ^ twin
    chance = [_widened_area(s.objects[j].mask, radius) for s in scenes for j in (0, 1)]
    return {
        "family": family, "n": n, "method": method,
        "target": rate_with_interval(target), "twin": rate_with_interval(twin),
        "chance_target": float(sum(chance[0::2]) / n), "chance_twin": float(sum(chance[1::2]) / n),
        "target_vs_twin": rate_with_interval(target[either]) if either.any() else (float("nan"),) * 3,
        "decided": int(either.sum()), "hits": target, "scenes": scenes, "maps": maps,
    }


def _widened_area(mask, radius: float) -> float:
    """Share of the image within ``radius`` pixels of the mask: the chance that a random point hits it."""
    m = torch.from_numpy(mask)
    ys, xs = torch.meshgrid(torch.arange(m.shape[0]), torch.arange(m.shape[1]), indexing="ij")
    grid = torch.stack([ys.flatten(), xs.flatten()], 1).float()
    near = torch.cdist(grid, m.nonzero().float()).amin(1) <= radius
    return float(near.float().mean())


@torch.no_grad()
def attribute_binding(clip: Clip, family: str = "colour", n: int = 300, seed: int = 81_000) -> dict:
    """For ``n`` held-out two-object scenes, whether cos(image, "a red circle") beats the foil that
    gives the first object the other object's ``family`` value ("a blue circle" for colour, "a red star"
    for shape): both words of the foil are in the picture, only their binding is wrong. Chance 0.5;
    (rate, low, high) with a Wilson 95 % interval, and the per-scene outcomes with their scenes."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")
    scenes = make_scenes(n, seed=seed, n_objects=2, size=image_size(clip))
    true, foil = [], []
    for s in scenes:
        a, b = s.objects
        true.append(a.phrase)
        foil.append(f"a {b.colour} {a.shape}" if family == "colour" else f"a {a.colour} {b.shape}")
    image = clip.encode_image([s.image for s in scenes])
    hits = ((image * clip.encode_text(true)).sum(-1) > (image * clip.encode_text(foil)).sum(-1)).cpu()
    return {"family": family, "n": n, "rate": rate_with_interval(hits), "chance": 0.5, "hits": hits, "scenes": scenes}
