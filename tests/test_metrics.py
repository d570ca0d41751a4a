"""Localisation metrics on hand-made maps whose answers are known."""

from __future__ import annotations

import pytest
import torch

from gradeclip_lib.metrics import energy_pointing_game, pointing_game


def square_mask(size=20, y0=5, y1=10, x0=5, x1=10):
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_pointing_game_hits_misses_and_tolerance():
    mask = square_mask()
    inside = torch.zeros(20, 20)
    inside[7, 7] = 1
    near = torch.zeros(20, 20)
    near[7, 12] = 1  # 3 px right of the mask's last column (x = 9)
    far = torch.zeros(20, 20)
    far[18, 18] = 1
    hits = pointing_game([inside, near, far], [mask] * 3, tolerance=0)
    assert hits.tolist() == [True, False, False]
    assert pointing_game([near], [mask], tolerance=3).tolist() == [True]
    assert pointing_game([near], [mask], tolerance=2.9).tolist() == [False]


def test_constant_map_never_scores():
    assert pointing_game([torch.ones(20, 20)], [square_mask()], tolerance=0).tolist() == [False]


def test_energy_pointing_game():
    mask = square_mask()  # 25 of 400 pixels
    uniform = torch.ones(20, 20)
    assert float(energy_pointing_game([uniform], [mask])[0]) == pytest.approx(25 / 400)
    focused = mask.float() * 3 + (~mask).float() * 0.0
    assert float(energy_pointing_game([focused], [mask])[0]) == pytest.approx(1.0)
    negative = torch.full((20, 20), -1.0)
    negative[mask] = 1.0
    assert float(energy_pointing_game([negative], [mask])[0]) == pytest.approx(1.0)  # negatives clipped


def test_shapes_must_agree():
    with pytest.raises(ValueError, match="upsample"):
        pointing_game([torch.ones(4, 4)], [square_mask()])
