"""The model-parameter randomisation test: which weights a randomised copy changes, the similarity
measures against independent computations, and the experiment's behaviour on methods whose answer is known."""

import numpy as np
import pytest
import torch
from conftest import make_tiny_clip
from scipy import ndimage, stats

from gradeclip_lib.sanity import (
    cascading_randomisation,
    data_randomisation,
    randomise_stage,
    randomised_copy,
    spearman_per_map,
    ssim,
    stage_names,
)


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_clip(vision_layers=3)


def changed(a, b) -> set[str]:
    sa, sb = a.model.visual.state_dict(), b.model.visual.state_dict()
    return {k for k in sa if not torch.equal(sa[k], sb[k])}


def part_of(key: str) -> str:
    if key.startswith(("ln_post", "proj")):
        return "head"
    if key.startswith("transformer.resblocks."):
        return f"block {key.split('.')[2]}"
    return key


def test_cascading_copies_change_the_head_then_the_blocks_from_the_top(tiny):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    names = stage_names(tiny)
    assert names == ["head", "block 2", "block 1", "block 0"]
    assert changed(tiny, randomised_copy(tiny, 0)) == set()
    for k in range(1, len(names) + 1):
        copy = randomised_copy(tiny, k, seed=3)
        assert {part_of(key) for key in changed(tiny, copy)} == set(names[:k])
        assert torch.equal(copy.model.transformer.resblocks[0].mlp.c_fc.weight,
                           tiny.model.transformer.resblocks[0].mlp.c_fc.weight)  # the text tower is kept
    assert all(torch.equal(v, tiny.model.state_dict()[k]) for k, v in before.items())  # the original is untouched
    alone = randomised_copy(tiny, 3, cascading=False)
    assert {part_of(key) for key in changed(tiny, alone)} == {"block 1"}
    again = randomised_copy(tiny, 2, seed=3)
    assert changed(again, randomised_copy(tiny, 2, seed=3)) == set() and changed(again, randomised_copy(tiny, 2))
    with pytest.raises(ValueError, match="from 0"):
        randomised_copy(tiny, 5)


def test_a_part_gets_the_same_weights_alone_or_in_the_cascade(tiny):
    """Each part draws from its own seed: Quantus's order of resets, or ours, gives the same copy."""
    cascade = randomised_copy(tiny, 3, seed=1).model.visual.state_dict()
    alone = randomised_copy(tiny, 3, seed=1, cascading=False).model.visual.state_dict()
    block1 = [k for k in alone if k.startswith("transformer.resblocks.1.")]
    assert block1 and all(torch.equal(cascade[k], alone[k]) for k in block1)
    with pytest.raises(ValueError, match="no part"):
        randomise_stage(tiny, "block 7")


def skimage_ssim(x: np.ndarray, y: np.ndarray, window: int = 7) -> float:
    """scikit-image's structural_similarity defaults, written out: uniform filter (reflect), sample
    covariances, data range 1, the border of half a window cropped before the mean."""
    n = window * window
    cov = n / (n - 1)
    f = lambda t: ndimage.uniform_filter(t, size=window, mode="reflect")  # noqa: E731
    ux, uy = f(x), f(y)
    vx, vy, vxy = cov * (f(x * x) - ux * ux), cov * (f(y * y) - uy * uy), cov * (f(x * y) - ux * uy)
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (window - 1) // 2
    return float(s[pad:-pad, pad:-pad].mean())


def test_ssim_equals_scikit_images_definition_on_min_maxed_maps():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(3, 20, 24, generator=gen), torch.rand(3, 20, 24, generator=gen)
    b[0] = a[0] * 5 + 2  # an affine copy: min-maxed, the same map
    got = ssim(a, b)
    mm = lambda t: ((t - t.min()) / (t.max() - t.min())).double().numpy()  # noqa: E731
    expected = [skimage_ssim(mm(x), mm(y)) for x, y in zip(a, b)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert got[0] == pytest.approx(1.0, abs=1e-5) and got[1] < 0.5
    with pytest.raises(ValueError, match="upsample"):
        ssim(torch.rand(1, 4, 4), torch.rand(1, 4, 4))


def test_spearman_per_map_is_scipys_with_ties_and_constant_maps():
    gen = torch.Generator().manual_seed(1)
    a = torch.randint(0, 4, (4, 5, 6), generator=gen).float()  # ties, as ReLU'd maps have
    b = a + torch.rand(4, 5, 6, generator=gen) * 2
    got = spearman_per_map(a, b)
    expected = [stats.spearmanr(x.flatten(), y.flatten()).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    flat = torch.zeros(2, 3, 3)
    assert spearman_per_map(flat, flat).tolist() == [1.0, 1.0]
    assert spearman_per_map(flat, torch.rand(2, 3, 3)).tolist() == [0.0, 0.0]


def test_the_experiment_separates_a_model_blind_map_from_grad_eclip(tiny):
    methods = {"Grad-ECLIP": {"method": "grad_eclip"}, "random": {"method": "random"}}
    rows = cascading_randomisation(tiny, methods, n=4, n_objects=2)
    by = {(r["method"], r["randomised"]): r for r in rows}
    stages = ["trained", *stage_names(tiny)]
    assert [r["randomised"] for r in rows if r["method"] == "random"] == stages
    for m in methods:
        assert torch.allclose(by[m, "trained"]["spearman"], torch.ones(4))
        assert torch.allclose(by[m, "trained"]["ssim"], torch.ones(4))
    assert all(torch.allclose(by["random", s]["spearman"], torch.ones(4)) for s in stages)  # blind to the model
    assert float(by["Grad-ECLIP", "block 0"]["spearman"].mean()) < 0.9  # a randomised model, another map


def test_data_randomisation_compares_maps_and_pointing_on_the_same_scenes(tiny):
    methods = {"Grad-ECLIP": {"method": "grad_eclip"}, "random": {"method": "random"}}
    same = {r["method"]: r for r in data_randomisation(tiny, tiny, methods, n=4)}
    for r in same.values():  # a model against itself: the same maps, the same hits
        assert torch.allclose(r["spearman"], torch.ones(4)) and torch.allclose(r["ssim"], torch.ones(4))
        assert torch.equal(r["hits"], r["hits_control"]) and r["hits"].dtype == torch.bool
    other = {r["method"]: r for r in data_randomisation(tiny, randomised_copy(tiny, 4), methods, n=4)}
    assert torch.allclose(other["random"]["spearman"], torch.ones(4))  # blind to the model
    assert float(other["Grad-ECLIP"]["spearman"].mean()) < 0.9
    with pytest.raises(ValueError, match="px"):
        data_randomisation(tiny, make_tiny_clip(vision_layers=3, image_size=48), methods, n=2)
