"""Chapter 5 (ShapesWorld): the pointing game, written by the student, against the library's."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..metrics import pointing_game
from ..synthetic import make_scenes
from .checking import require_answer

TOLERANCES = (0.0, 3.0)


def pointing_cases(n: int = 16, seed: int = 123) -> tuple[torch.Tensor, torch.Tensor]:
    """Test cases: smooth random maps [n, 64, 48] (no ties; not square, so that rows and columns
    cannot be swapped unnoticed) and the masks of ShapesWorld objects cropped to the same size. In
    turn, a map peaks on its object, within 2 pixels of it, where a swapped row and column would read
    its object, or has its minimum on it: each usual slip gives other hits than the right answer."""
    gen = torch.Generator().manual_seed(seed)
    scenes = make_scenes(n, seed=seed, n_objects=1, size=64)
    masks = torch.stack([torch.from_numpy(s.objects[0].mask[:, :48].copy()) for s in scenes])
    h, w = masks.shape[-2:]
    coarse = torch.rand(n, 1, 8, 6, generator=gen)
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
    return maps, masks


def _hits(fn: Callable, maps: torch.Tensor, masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    try:
        out = fn(maps.clone(), masks.clone(), tolerance)
    except Exception as err:  # the student's code: say where it broke, keep the hint
        raise AssertionError(f"Your pointing_game raised {type(err).__name__}: {err}") from err
    require_answer(out)
    got = torch.as_tensor(out).bool().flatten()
    if got.shape != (len(maps),):
        raise AssertionError(f"Your pointing_game returned {tuple(got.shape)} values for {len(maps)} maps: "
                             "return one hit (True / False) per map.")
    return got


def check_pointing_game(fn: Callable) -> None:
    """``fn(maps [B, H, W], masks [B, H, W] bool, tolerance in pixels) -> hits [B]`` must agree with
    `gl.metrics.pointing_game` on maps of its own, with tolerance 0 and 3 pixels."""
    maps, masks = pointing_cases()
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
        raise AssertionError(f"With tolerance {tolerance:g} your hits {got.int().tolist()} differ from the "
                             f"library's {expected.int().tolist()}.")


def _swapped(maps: torch.Tensor, masks: torch.Tensor, tolerance: float) -> torch.Tensor:
    """What a peak found with divmod by H instead of W (row and column swapped) would score: the
    library's pointing game on maps whose only peak is that misread position."""
    h = maps.shape[-2]
    flat = maps.flatten(1).argmax(1)
    misread = torch.zeros_like(maps)
    misread[torch.arange(len(maps)), flat % h, flat // h] = 1.0
    return pointing_game(misread, masks, tolerance)
