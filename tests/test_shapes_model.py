"""The shipped ShapesWorld model meets the bar the book's conclusions stand on, measured on seeds used
nowhere else (not in training, not in the book, not in the training run's own evaluations)."""

from __future__ import annotations

import pytest

import gradeclip_lib as gl
from gradeclip_lib.metrics import rate_with_interval
from gradeclip_lib.shapesworld.evaluate import binding_accuracy, localisation, zero_shot_accuracy

SEEDS = {"zero_shot": 91_001, "binding": 91_002, "pointing": 91_003}


@pytest.fixture(scope="module")
def shapes():
    return gl.load_clip("shapes")


def test_zero_shot_accuracy_is_at_least_95_percent(shapes):
    assert zero_shot_accuracy(shapes, n=600, seed=SEEDS["zero_shot"]) >= 0.95


def test_binding_is_at_least_95_percent(shapes):
    assert binding_accuracy(shapes, n=600, seed=SEEDS["binding"]) >= 0.95


def test_grad_eclip_points_at_least_twice_as_well_as_raw_attention(shapes):
    grad = localisation(shapes, "grad_eclip", n_objects=4, n=300, scene_seed=SEEDS["pointing"])["pointing"]
    attention = localisation(shapes, "self_attention", n_objects=4, n=300, scene_seed=SEEDS["pointing"])["pointing"]
    g, g_lo, _ = rate_with_interval(grad)
    a, _, a_hi = rate_with_interval(attention)
    assert g >= 2 * a
    assert g_lo > a_hi  # and the two rates' intervals do not overlap
