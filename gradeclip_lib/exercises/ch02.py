"""Chapter 2 (Grad-ECLIP on images): a map from its three terms, as the authors' code computes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..explain import explain, grad_eclip_terms
from ..images import ImageInput, prepare
from ..methods.common import vision_trunk
from ..methods.spatial_weight import minmax, qk_cosine
from ..models.clip import Clip
from ..models.single_head import single_head_block
from .checking import as_choice, call, check_choice, check_tensor, passed


@dataclass
class MapTerms:
    """Grad-ECLIP's raw terms for one image and one text (``mode="paper"``): channel weights ``w`` [D],
    values ``v`` [N, D] of the N patches, and ``cosine`` [N + 1], the cosine between the class token's
    query and every key (token 0 is the class token itself), before any min-max; ``grid`` (h, w)."""

    w: torch.Tensor
    v: torch.Tensor
    cosine: torch.Tensor
    grid: tuple[int, int]


def map_terms(clip: Clip, image: ImageInput, text: str) -> MapTerms:
    """The terms of `MapTerms` from the library's own forward and backward pass."""
    terms = grad_eclip_terms(clip, image, text, mode="paper", spatial_weight=False)
    pixels, _ = prepare([image], clip.patch_size, clip.mean, clip.std)
    batch = pixels[0][None].to(clip.device, clip.dtype)
    blocks = clip.vision_blocks
    with torch.no_grad():
        x = vision_trunk(clip, batch, torch.zeros(1, dtype=torch.long, device=clip.device), len(blocks) - 1)
        _, step = single_head_block(blocks[-1], x)
        cosine = qk_cosine(step.q_out[0, 0].float(), step.k_out[0].float())
    return MapTerms(terms.w[0].cpu(), terms.v[0].float().cpu(), cosine.cpu(), terms.grid)


def check_map(grad_eclip_map: Callable, terms: MapTerms, clip: Clip, image: ImageInput, text: str) -> None:
    """``grad_eclip_map(w, v, cosine, grid)`` must give the map [h, w] of ``text`` on ``image`` that
    ``gl.explain(..., mode="paper")`` gives, and must not depend on the class token's own cosine."""
    expected = explain(clip, image, text, mode="paper").maps[0]
    evidence = terms.v @ terms.w  # [N]
    lam = minmax(terms.cosine[1:])

    def grid(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(terms.grid)

    patches = terms.cosine[1:]
    mistakes = {
        "Negative values are left in the map: Grad-ECLIP keeps only positive evidence, "
        "ReLU(sum_c w_c v_ic lambda_i). (A ReLU before or after the product with lambda gives the same "
        "map, since lambda >= 0.)": lambda: grid(evidence * lam),
        "Min-max the cosine to [0, 1] over the patches before using it as the spatial weight.":
            lambda: grid(F.relu(evidence * patches)),
        "Min-max subtracts the minimum first: lambda = (cos - min) / (max - min), not cos / max.":
            lambda: grid(F.relu(evidence * patches / patches.max())),
        "The spatial weight is the min-maxed cosine, not a softmax of it (Grad-ECLIP loosens the "
        "attention's softmax).": lambda: grid(F.relu(evidence * patches.softmax(0))),
        "Min-max over the patches only (tokens 1 to N): the class token's own cosine must not set the "
        "range.": lambda: grid(F.relu(evidence * minmax(terms.cosine)[1:])),
        "Token 0 is the class token: the patches' cosines are cosine[1:], not cosine[:-1].":
            lambda: grid(F.relu(evidence * minmax(terms.cosine[:-1]))),
        "The ReLU comes after the sum over channels, not on each channel's product.":
            lambda: grid(F.relu(terms.v * terms.w).sum(-1) * lam),
        "Multiply by the spatial weight lambda (the min-maxed cosine).": lambda: grid(F.relu(evidence)),
        "Sum over the channels (the last axis of v), one value per patch.":
            lambda: F.relu(terms.v * terms.w[None]).sum(0),
    }
    h, w = terms.grid
    names = ("w", "v", "cosine", "grid")

    def where(i: tuple[int, ...]) -> str:
        return f"patch (row {i[0]}, column {i[1]})"

    worst = check_tensor(call(grad_eclip_map, terms.w, terms.v, terms.cosine, terms.grid, names=names), expected,
                         "Your map", mistakes, where=where, case=f"(this image and text, a {h} x {w} grid)")
    for shift, side in ((1.0, "above"), (-1.0, "below")):  # the class token's cosine out of the patches' range
        cosine = terms.cosine.clone()
        cosine[0] = (cosine.max() if shift > 0 else cosine.min()) + shift
        moved = call(grad_eclip_map, terms.w, terms.v, cosine, terms.grid, names=names)
        check_tensor(moved, expected, "Your map", {
            "Right on the first case, but it changes when the class token's own cosine (token 0) changes: "
            "min-max over the patches only (tokens 1 to N).": lambda c=cosine: grid(F.relu(evidence * minmax(c)[1:])),
        }, where=where, case=f"(the same terms, the class token's own cosine moved {side} the patches')")
    passed(f'your map equals gl.explain(..., mode="paper") on this image and text (a {h} x {w} grid; largest '
           f"difference {worst:.1g}), and stays the same when the class token's own cosine moves above or below "
           "the patches' range (2 more cases).")


CHANGES = ("up", "down", "no change")
_SPELLINGS = {"same": "no change", "unchanged": "no change", "none": "no change", "falls": "down", "drops": "down",
              "lower": "down", "decreases": "down", "rises": "up", "higher": "up", "increases": "up"}


def spatial_weight_effect(clip: Clip, n: int = 60, seed: int = 30_004) -> dict[bool, tuple[float, float]]:
    """The pointing game (tolerance 0.04 x the side) and the mean share of the map's mass on the named
    object, with and without lambda, on ``n`` of chapter 5's four-object scenes: {weighted: (rate, mass)}."""
    from ..metrics import energy_pointing_game, pointing_game
    from ..shapesworld.evaluate import image_size
    from ..synthetic import make_scenes

    size = image_size(clip)
    scenes = make_scenes(n, seed=seed, n_objects=4, size=size)
    masks = torch.stack([torch.from_numpy(s.objects[0].mask) for s in scenes])
    found = {}
    for weighted in (True, False):
        maps = explain(clip, [s.image for s in scenes], [s.objects[0].phrase for s in scenes],
                       spatial_weight=weighted).upsampled(normalized=True)
        found[weighted] = (float(pointing_game(maps, masks, 0.04 * size).float().mean()),
                           float(energy_pointing_game(maps, masks).mean()))
    return found


def _direction(before: float, after: float, margin: float) -> str:
    return "no change" if abs(after - before) <= margin else "up" if after > before else "down"


def check_prediction(pointing: object, mass: object, clip: Clip | None = None, n: int = 60) -> None:
    """Exercise 2.1: without lambda, does (a) the pointing game and (b) the share of the map's mass on the
    named object go up, down, or not change? Measured on ``n`` four-object scenes (the worked answer: 200)."""
    from ..models import load_clip

    pointing = as_choice(pointing, CHANGES, "pointing", _SPELLINGS)
    mass = as_choice(mass, CHANGES, "mass", _SPELLINGS)
    found = spatial_weight_effect(clip or load_clip("shapes"), n)
    (rate_on, mass_on), (rate_off, mass_off) = found[True], found[False]
    measured = (f"on {n} of chapter 5's four-object scenes, without lambda the pointing game goes from {rate_on:.2f} "
                f"to {rate_off:.2f} and the mass on the object from {mass_on:.2f} to {mass_off:.2f}")
    why = ("The channel weights w select the features the text asks for, and many patches carry some of them: "
           "without lambda the product is spread over the image; lambda keeps the patches the class token reads.")
    check_choice(pointing, _direction(rate_on, rate_off, 0.05), CHANGES, "pointing", measured, aliases=_SPELLINGS,
                 hints={c: why for c in CHANGES})
    check_choice(mass, _direction(mass_on, mass_off, 0.02), CHANGES, "mass", measured, aliases=_SPELLINGS,
                 hints={c: why for c in CHANGES})
    passed(f"{measured}: the pointing game {pointing}, the mass {mass}, as you predicted. The worked answer "
           "measures both on 200 scenes.")


PEAKS = ("on the colour's object", "on the shape's object", "on neither")
_PEAK_SPELLINGS = {"colour": PEAKS[0], "the colour's object": PEAKS[0], "on the red object": PEAKS[0],
                   "the red object": PEAKS[0], "shape": PEAKS[1], "the shape's object": PEAKS[1],
                   "on the star": PEAKS[1], "the star": PEAKS[1], "neither": PEAKS[2], "elsewhere": PEAKS[2]}


def absent_object_peaks(clip: Clip, n: int = 40, seed: int = 70_000) -> dict[str, int]:
    """Where the maximum of Grad-ECLIP's map of "a <colour of object 1> <shape of object 2>" lies on ``n``
    two-object scenes whose objects differ in colour and in shape (the worked answer's scenes, its first
    ``n``): {place: count} over `PEAKS`."""
    from ..shapesworld.evaluate import image_size
    from ..synthetic import make_scenes

    scenes = [s for s in make_scenes(4 * n, seed=seed, n_objects=2, size=image_size(clip))
              if s.objects[0].colour != s.objects[1].colour and s.objects[0].shape != s.objects[1].shape][:n]
    mixed = [f"a {s.objects[0].colour} {s.objects[1].shape}" for s in scenes]
    maps = explain(clip, [s.image for s in scenes], mixed).upsampled()
    counts = dict.fromkeys(PEAKS, 0)
    for emap, scene in zip(maps, scenes):
        y, x = divmod(int(emap.argmax()), emap.shape[1])
        place = 0 if scene.objects[0].mask[y, x] else 1 if scene.objects[1].mask[y, x] else 2
        counts[PEAKS[place]] += 1
    return counts


def check_absent_object(peak: object, clip: Clip | None = None, n: int = 40) -> None:
    """Exercise 2.3: where the map of an absent combination ("a red star" beside a red circle and a blue
    star) peaks in most scenes (one of `PEAKS`), against a count on ``n`` scenes (the discussion: 150)."""
    from ..models import load_clip

    peak = as_choice(peak, PEAKS, "absent_object_peak", _PEAK_SPELLINGS)
    counts = absent_object_peaks(clip or load_clip("shapes"), n)
    most = max(PEAKS, key=counts.get)
    measured = f"on {n} scenes the map's maximum lies " + ", ".join(f"{k} in {v}" for k, v in counts.items())
    check_choice(peak, most, PEAKS, "absent_object_peak", measured, hints={
        p: "No patch carries the combination, so the gradient spreads: the map of 'a red star' is not the map of "
           "one of its parts." for p in PEAKS[:2]})
    passed(f"{measured}. The discussion counts 150 scenes.")
