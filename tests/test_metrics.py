"""Localisation metrics on hand-made maps whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradeclip_lib as gl
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


def test_wilson_interval_against_published_values():
    from gradeclip_lib.metrics import wilson_interval

    # Brown, Cai & DasGupta (2001) / Newcombe (1998) example: 81 of 263, 95 %: 0.2553 to 0.3662
    lo, hi = wilson_interval(81, 263)
    assert lo == pytest.approx(0.2553, abs=5e-4) and hi == pytest.approx(0.3662, abs=5e-4)
    # no successes: the lower bound is 0, the upper bound z^2 / (n + z^2)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0 and hi == pytest.approx(1.96**2 / (10 + 1.96**2), abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] < 1
    # a wider interval at higher confidence and at smaller n
    assert wilson_interval(5, 10, 0.99)[0] < wilson_interval(5, 10)[0]
    assert wilson_interval(50, 100)[1] - wilson_interval(50, 100)[0] < wilson_interval(5, 10)[1] - wilson_interval(
        5, 10)[0]
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_wilson_interval_covers_the_true_rate_about_95_percent_of_the_time():
    from gradeclip_lib.metrics import wilson_interval

    gen = torch.Generator().manual_seed(0)
    p, n, trials = 0.3, 200, 2000
    draws = (torch.rand(trials, n, generator=gen) < p).sum(1)
    covered = sum(lo <= p <= hi for lo, hi in (wilson_interval(int(k), n) for k in draws))
    assert 0.93 < covered / trials < 0.97


def test_rate_with_interval():
    from gradeclip_lib.metrics import rate_with_interval

    rate, lo, hi = rate_with_interval(torch.tensor([True, False, True, True]))
    assert rate == 0.75 and lo < 0.75 < hi


def _scene_with_two_squares():
    from gradeclip_lib.synthetic.scenes import Scene, SceneObject

    a, b = np.zeros((40, 40), bool), np.zeros((40, 40), bool)
    a[5:10, 5:10] = True
    b[25:30, 25:30] = True
    return Scene(image=None, caption="a red square and a blue circle",
                 objects=[SceneObject("red", "square", a), SceneObject("blue", "circle", b)])


@pytest.mark.parametrize("peak, place", [((7, 7), "target"), ((11, 7), "target"), ((27, 27), "another object"),
                                         ((7, 16), "near the target"), ((38, 2), "background")])
def test_peak_places(peak, place):
    from gradeclip_lib.shapesworld.misses import peak_places

    emap = torch.zeros(40, 40)
    emap[peak] = 1.0
    assert peak_places([emap], [_scene_with_two_squares()], tolerance=2.0, near=8.0) == [place]


def test_hit_rate_by_groups_with_intervals():
    from gradeclip_lib.shapesworld.misses import hit_rate_by

    scenes = [_scene_with_two_squares()] * 6  # the same objects: the key decides the group
    keys = iter(["red", "red", "red", "blue", "blue", "blue"])
    rows = hit_rate_by(scenes, torch.tensor([1, 1, 0, 0, 0, 1]).bool(), key=lambda s: next(keys))
    assert [r["value"] for r in rows] == ["blue", "red"]  # lowest rate first
    assert rows[0]["rate"] == pytest.approx(1 / 3) and rows[1]["rate"] == pytest.approx(2 / 3)
    assert all(r["n"] == 3 and r["low"] < r["rate"] < r["high"] for r in rows)


def test_object_means_weight_patches_by_coverage():
    from gradeclip_lib.shapesworld.misses import object_means

    scene = _scene_with_two_squares()  # 40 px on a 4 x 4 grid: 10-px patches
    grid = torch.zeros(1, 4, 4)
    grid[0, 0, 0] = 1.0  # object a (rows 5-9, cols 5-9) lies wholly in patch (0, 0)
    grid[0, 2, 2] = 3.0  # object b (rows 25-29, cols 25-29) lies wholly in patch (2, 2)
    assert object_means(grid, [scene]) == [[pytest.approx(1.0), pytest.approx(3.0)]]
    half = _scene_with_two_squares()
    half.objects[0].mask[:] = False
    half.objects[0].mask[0:10, 5:15] = True  # half in patch (0, 0), half in patch (0, 1)
    grid[0, 0, 1] = 5.0
    assert object_means(grid, [half])[0][0] == pytest.approx(3.0)  # (1 + 5) / 2


def test_mean_by_groups():
    from gradeclip_lib.shapesworld.misses import mean_by

    scenes = [_scene_with_two_squares()] * 4
    keys = iter("aabb")
    assert mean_by(scenes, [1.0, 3.0, 5.0, 9.0], key=lambda s: next(keys)) == {"a": 2.0, "b": 7.0}


def test_format_rate():
    from gradeclip_lib.metrics import format_rate

    assert format_rate(0.6912, 0.62, 0.7471) == "0.69 [0.62, 0.75]"
    assert format_rate(1, 0.9, 1, digits=3) == "1.000 [0.900, 1.000]"


def test_factors_by_averages_the_named_and_other_objects():
    from types import SimpleNamespace

    from gradeclip_lib.shapesworld.misses import factors_by

    scene = _scene_with_two_squares()  # object a in patch (0, 0), object b in patch (2, 2) of a 4 x 4 grid
    lam = torch.zeros(1, 4, 4)
    lam[0, 0, 0], lam[0, 2, 2] = 0.2, 0.8
    evidence = torch.zeros(1, 4, 4)
    evidence[0, 0, 0], evidence[0, 3, 3] = 1.0, 4.0  # relative to the maximum: 0.25 on the named object
    terms = SimpleNamespace(spatial_weight=lambda: lam, gradient_times_value=lambda: evidence)
    out = factors_by([scene], terms, key=lambda s: s.objects[0].colour)
    assert out == {"red": {"lam_named": pytest.approx(0.2), "lam_others": pytest.approx(0.8),
                           "evidence_named": pytest.approx(0.25)}}


def test_paired_comparison_counts_the_discordant_scenes():
    # 8 scenes only a is right on, 2 only b, 30 both, 10 neither
    a = [True] * 8 + [False] * 2 + [True] * 30 + [False] * 10
    b = [False] * 8 + [True] * 2 + [True] * 30 + [False] * 10
    cmp = gl.metrics.paired_comparison(a, b)
    assert (cmp.only_a, cmp.only_b, cmp.n) == (8, 2, 50)
    assert cmp.difference == pytest.approx(6 / 50)
    assert cmp.p_value == pytest.approx(2 * (1 + 10 + 45) / 1024)  # binomial tail of 10 fair coins, <= 2
    spread = 1.959964 * ((10 / 50 - (6 / 50) ** 2) / 50) ** 0.5
    assert (cmp.low, cmp.high) == pytest.approx((6 / 50 - spread, 6 / 50 + spread), abs=1e-6)
    assert not cmp.apart and "cannot be told apart on these 50 scenes" in gl.metrics.word_difference("A", "B", cmp)
    swapped = gl.metrics.paired_comparison(b, a)
    assert swapped.difference == -cmp.difference and swapped.p_value == cmp.p_value
    assert not cmp.a_higher and not swapped.a_higher  # not apart: neither is higher
    clear = gl.metrics.paired_comparison([True] * 20 + [False] * 5, [False] * 20 + [True] * 5)
    reverse = gl.metrics.paired_comparison([False] * 20 + [True] * 5, [True] * 20 + [False] * 5)
    assert clear.a_higher and not reverse.a_higher and reverse.apart


@pytest.mark.parametrize("only_a,only_b", [(0, 0), (3, 0), (20, 5), (40, 21), (7, 7)])
def test_mcnemar_exact_equals_a_two_sided_binomial_test(only_a, only_b):
    scipy_stats = pytest.importorskip("scipy.stats")
    a = [True] * only_a + [False] * only_b + [True] * 5
    b = [False] * only_a + [True] * only_b + [True] * 5
    cmp = gl.metrics.paired_comparison(a, b)
    expected = 1.0 if only_a + only_b == 0 else scipy_stats.binomtest(only_a, only_a + only_b).pvalue
    assert cmp.p_value == pytest.approx(expected)
    if cmp.apart:
        assert gl.metrics.word_difference("A", "B", cmp) == "A points right more often than B"


def test_paired_comparison_needs_the_same_scenes():
    with pytest.raises(ValueError, match="same scenes"):
        gl.metrics.paired_comparison([True, False], [True])


def brute_force_ap(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Average precision from its definition: precision at each distinct threshold times recall's gain."""
    ap, last_recall = 0.0, 0.0
    for t in sorted(set(scores.flatten().tolist()), reverse=True):
        chosen = scores >= t
        tp = float((chosen & labels).sum())
        precision, recall = tp / float(chosen.sum()), tp / float(labels.sum())
        ap += (recall - last_recall) * precision
        last_recall = recall
    return ap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_follows_its_definition_with_ties(seed):
    gen = torch.Generator().manual_seed(seed)
    maps = torch.randint(0, 6, (3, 9, 11), generator=gen).float()  # many tied values
    masks = torch.rand(3, 9, 11, generator=gen) > 0.7
    got = gl.metrics.average_precision(maps, masks)
    expected = torch.tensor([brute_force_ap(m, k) for m, k in zip(maps, masks)])
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_segmentation_metrics_on_maps_whose_answer_is_known():
    mask = torch.zeros(4, 4, dtype=torch.bool)
    mask[:2, :2] = True  # 4 of 16 pixels
    perfect, constant = mask.float(), torch.ones(4, 4)
    half = torch.zeros(4, 4)
    half[:2, :] = 1.0  # the object and as much background: above the mean on 8 pixels
    maps, masks = torch.stack([perfect, constant, half]), torch.stack([mask] * 3)
    torch.testing.assert_close(gl.metrics.average_precision(maps, masks), torch.tensor([1.0, 0.25, 0.5]))
    torch.testing.assert_close(gl.metrics.pixel_accuracy(maps, masks), torch.tensor([1.0, 0.75, 0.75]))
    # constant: nothing above the mean, object IoU 0, background 12/16; half: object 4/8, background 8/12
    torch.testing.assert_close(gl.metrics.mean_iou(maps, masks), torch.tensor([1.0, 0.375, (0.5 + 8 / 12) / 2]))
    with pytest.raises(ValueError, match="upsample first"):
        gl.metrics.pixel_accuracy(torch.zeros(1, 4, 4), torch.zeros(1, 8, 8, dtype=torch.bool))


def test_mean_with_interval_is_the_mean_and_a_seeded_bootstrap_around_it():
    values = torch.tensor([0.0, 1.0] * 50)
    mean, low, high = gl.metrics.mean_with_interval(values)
    assert mean == 0.5 and low < 0.5 < high
    spread = 1.959964 * 0.5 / 100**0.5  # the normal interval of a mean of 100 coin flips
    assert (low, high) == pytest.approx((0.5 - spread, 0.5 + spread), abs=0.03)
    assert gl.metrics.mean_with_interval(values) == (mean, low, high)  # seeded
    assert gl.metrics.mean_with_interval(torch.full((10,), 0.3)) == pytest.approx((0.3, 0.3, 0.3))
