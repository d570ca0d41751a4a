"""Chapter 5 (ShapesWorld): the pointing game, written by the student, against the library's."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..metrics import pointing_game
from ..synthetic import make_scenes
from .checking import call, passed, require_answer

TOLERANCES = (0.0, 3.0)


def _distances(mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """For every pixel, its distance to the nearest pixel of ``mask`` [H, W] in three metrics."""
    h, w = mask.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    inside = mask.nonzero()
    dy = (ys.flatten()[:, None] - inside[:, 0][None]).abs().float()
    dx = (xs.flatten()[:, None] - inside[:, 1][None]).abs().float()
    return {"euclidean": (dy**2 + dx**2).sqrt().amin(1).reshape(h, w),
            "square": torch.maximum(dy, dx).amin(1).reshape(h, w),
            "manhattan": (dy + dx).amin(1).reshape(h, w)}


# where the extra cases put a map's peak: a pixel whose distances to the object tell the metrics apart
# at a tolerance of 3 pixels (or tell d <= t from d^2 <= t)
_PEAKS = {
    "inside a 7 x 7 square window but more than 3 px away": lambda d: (d["square"] <= 3) & (d["euclidean"] > 3.2),
    "within 3 px but more than 3 steps along rows and columns":
        lambda d: (d["euclidean"] <= 2.9) & (d["manhattan"] > 3),
    "2 px from the object": lambda d: (d["euclidean"] == 2) & (d["manhattan"] == 2),
}


def pointing_cases(n: int = 16, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """Test cases: smooth random maps [n + 3, 64, 48] (no ties; not square, so that rows and columns
    cannot be swapped unnoticed) and the masks of ShapesWorld objects cropped to the same size. In
    turn, a map peaks on its object, within 2 pixels of it, where a swapped row and column would read
    its object, or has its minimum on it: each usual slip gives other hits than the right answer. The
    last three maps peak where another distance (a square window, steps along rows and columns, or the
    squared distance) would count another hit than the Euclidean distance of the library at 3 pixels."""
    gen = torch.Generator().manual_seed(seed)
    scenes = make_scenes(n, seed=seed, n_objects=1, size=64) + make_scenes(len(_PEAKS), seed=seed + 1,
                                                                           n_objects=1, size=64)
    masks = torch.stack([torch.from_numpy(s.objects[0].mask[:, :48].copy()) for s in scenes])
    h, w = masks.shape[-2:]
    coarse = torch.rand(len(masks), 1, 8, 6, generator=gen)
    maps = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    maps = maps + 1e-4 * torch.rand(maps.shape, generator=gen)  # break any tie
    near = torch.nn.functional.max_pool2d(masks[:, None].float(), 5, stride=1, padding=2)[:, 0].bool() & ~masks
    for i in range(n):
        where = masks[i] if i % 4 in (0, 2, 3) else near[i]
        ys, xs = where.nonzero(as_tuple=True)
        if not len(ys):
            continue
        j = int(torch.randint(len(ys), (1,), generator=gen))
        y, x = int(ys[j]), int(xs[j])
        if i % 4 == 2:  # the flat index that a reading with divmod by H would put on (y, x)
            y, x = divmod(x * h + y, w)
            if masks[i, y, x]:
                continue
        if i % 4 == 3:
            maps[i, y, x] = maps[i].min() - 0.5
        else:
            maps[i, y, x] = maps[i].max() + 0.5
    for i, pick in enumerate(_PEAKS.values(), start=n):
        ys, xs = pick(_distances(masks[i])).nonzero(as_tuple=True)
        j = int(torch.randint(len(ys), (1,), generator=gen))
        maps[i, int(ys[j]), int(xs[j])] = maps[i].max() + 0.5
    return maps, masks


def _metric_hits(maps: torch.Tensor, masks: torch.Tensor, tolerance: float, metric: str) -> torch.Tensor:
    """The pointing game with another distance to the mask (what a slip computes)."""
    flat = maps.flatten(1).argmax(1)
    w = maps.shape[-1]
    return torch.tensor([bool(_distances(m)[metric][int(i) // w, int(i) % w] <= tolerance)
                         for m, i in zip(masks, flat)])


def _hits(fn: Callable, maps: torch.Tensor, masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    out = call(fn, maps, masks, tolerance, names=("maps", "masks", "tolerance"))
    require_answer(out)
    got = torch.as_tensor(np.asarray(out if not isinstance(out, (list, tuple)) else [bool(o) for o in out]))
    got = got.bool().flatten()
    if got.shape != (len(maps),):
        raise AssertionError(f"Your pointing_game returned {tuple(got.shape)} values for {len(maps)} maps: "
                             "return one hit (True / False) per map.")
    return got


def check_pointing_game(fn: Callable) -> None:
    """``fn(maps [B, H, W], masks [B, H, W] bool, tolerance in pixels) -> hits [B]`` must agree with
    `gl.metrics.pointing_game` on maps of its own, with tolerance 0 and 3 pixels."""
    maps, masks = pointing_cases()
    h, w = maps.shape[-2:]
    for tolerance in TOLERANCES:
        got = _hits(fn, maps, masks, tolerance)
        expected = pointing_game(maps, masks, tolerance)
        if torch.equal(got, expected):
            continue
        if torch.equal(got, pointing_game(-maps, masks, tolerance)):
            raise AssertionError("You point at the map's minimum: the pointing game looks at its maximum.")
        if tolerance and torch.equal(got, pointing_game(maps, masks, 0.0)):
            raise AssertionError("With a tolerance, a peak counts as a hit if it lies within that many "
                                 "pixels of the mask, not only on it.")
        if torch.equal(got, _swapped(maps, masks, tolerance)):
            raise AssertionError("Rows and columns are swapped: a flat index i in an H x W map is row "
                                 "i // W, column i % W.")
        if tolerance:
            if torch.equal(got, _metric_hits(maps, masks, tolerance, "square")):
                raise AssertionError(f"Your tolerance is a square window (|dy| <= {tolerance:g} and |dx| <= "
                                     f"{tolerance:g}): the library counts pixels within a Euclidean distance, a "
                                     "disk, so a peak diagonally off a corner may be too far.")
            if torch.equal(got, _metric_hits(maps, masks, tolerance, "manhattan")):
                raise AssertionError("Your tolerance counts steps along rows and columns (|dy| + |dx|): the "
                                     "library uses the straight-line (Euclidean) distance, sqrt(dy^2 + dx^2).")
            if torch.equal(got, pointing_game(maps, masks, tolerance**0.5)):
                raise AssertionError("You compare the squared distance with the tolerance: compare "
                                     "dy^2 + dx^2 with tolerance^2 (or the distance with the tolerance).")
        i = int((got != expected).nonzero()[0])
        peak = int(maps[i].argmax())
        y, x = divmod(peak, w)
        far = float(_distances(masks[i])["euclidean"][y, x])
        raise AssertionError(
            f"With tolerance {tolerance:g}, your hits differ from the library's first on map {i} (a {h} x {w} map, "
            f"an object of {int(masks[i].sum())} pixels): yours {bool(got[i])}, the library's {bool(expected[i])}. "
            f"That map's maximum is at (row {y}, column {x}), {far:.2f} pixels from the nearest pixel of the "
            f"object. All hits: yours {got.int().tolist()}, the library's {expected.int().tolist()}.")
    passed(f"your hits equal gl.metrics.pointing_game's on {len(maps)} maps of {h} x {w} pixels, with tolerance "
           f"{' and '.join(f'{t:g}' for t in TOLERANCES)} pixels (maps that peak on, near, or just out of reach "
           "of their object).")


def _swapped(maps: torch.Tensor, masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    """What a peak found with divmod by H instead of W (row and column swapped) would score: the
    library's pointing game on maps whose only peak is that misread position."""
    h = maps.shape[-2]
    flat = maps.flatten(1).argmax(1)
    misread = torch.zeros_like(maps)
    misread[torch.arange(len(maps)), flat % h, flat // h] = 1.0
    return pointing_game(misread, masks, tolerance)


def pointing_floor(size: int, n: int = 200, seed: int = 30_000, tolerance: float = 0.04) -> float:
    """The share of the image within ``tolerance`` x ``size`` pixels of the named object, over ``n``
    four-object scenes: how often a map whose maximum falls anywhere hits."""
    scenes = make_scenes(n, seed=seed, n_objects=4, size=size)
    masks = torch.stack([torch.from_numpy(s.objects[0].mask) for s in scenes])
    radius = tolerance * size
    reach = int(radius)
    grid = torch.arange(-reach, reach + 1)
    disk = ((grid[:, None] ** 2 + grid[None] ** 2) <= radius**2).float()
    near = torch.nn.functional.conv2d(masks[:, None].float(), disk[None, None], padding=reach)[:, 0] > 0
    return float(near.float().mean())


def check_prediction(random_rate: object, clip=None, n: int = 50) -> None:
    """Exercise 5.1: a random map's pointing game on four-object scenes (a rate in [0, 1], right within
    0.05 of the share of the image within the tolerance of the object, measured on 200 scenes); the
    random map's own rate is measured on ``n`` scenes (the worked answer: 200)."""
    from ..models import load_clip
    from ..shapesworld.evaluate import image_size, localisation
    from .checking import as_number

    require_answer(random_rate)
    if isinstance(random_rate, (int, float)) and 1 < random_rate <= 100:
        raise AssertionError(f"random_rate: give a rate between 0 and 1 (0.3 for 30 %), not {random_rate!r}.")
    rate = as_number(random_rate, "random_rate", 0.0, 1.0)
    clip = clip or load_clip("shapes")
    size = image_size(clip)
    floor = pointing_floor(size)
    hits = localisation(clip, method="random", n_objects=4, n=n)["pointing"].float()
    measured = (f"{floor:.3f} of the image lies within {0.04 * size:.1f} pixels of the named object (200 scenes), "
                f"and the random map's pointing game is {float(hits.mean()):.2f} on {n} scenes")
    if abs(rate - floor) > 0.05:
        hint = ("One in four is the chance of picking the right *object*; a random map's maximum picks a *pixel*, "
                "and the object with its margin covers a small share of the image."
                if abs(rate - 0.25) < 0.03 else
                "A map that knows nothing hits as often as its maximum lands near the object by chance: the share "
                "of the image within the tolerance of the object.")
        raise AssertionError(f"random_rate: you predicted {rate:g}; {measured}. {hint}")
    passed(f"you predicted {rate:g}: {measured}. The worked answer measures the random map on 200 scenes; this is "
           "the floor every method must beat.")
