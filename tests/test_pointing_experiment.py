"""The one ShapesWorld pointing-game experiment (`shapesworld.evaluate.localisation`) on every family,
checked against a pointing game computed here scene by scene."""

import numpy as np
import pytest
import torch

import gradeclip_lib as gl
from gradeclip_lib.shapesworld.evaluate import image_size, localisation

MODELS = {
    "clip": lambda: gl.load_clip("shapes"),
    "classifier": lambda: gl.load_classifier("shapes"),
    "blip": lambda: gl.load_blip("shapes", pretrained=None),
}


def direct_hit(model, scene, tolerance: float = 0.04) -> bool:
    """Every peak of the upsampled map within ``tolerance`` x side of the named object's mask."""
    obj, side = scene.objects[0], scene.image.size[0]
    if isinstance(model, gl.Classifier):
        exp = gl.explain(model, scene.image, targets=f"{obj.colour} {obj.shape}")
    else:
        exp = gl.explain(model, scene.image, obj.phrase)
    up = exp.upsampled()[0].numpy()
    peaks = torch.from_numpy(np.argwhere(up == up.max())).float()
    inside = torch.from_numpy(obj.mask).nonzero().float()
    return bool((torch.cdist(peaks, inside).amin(1) <= tolerance * side).all())


@pytest.mark.parametrize("family", sorted(MODELS))
def test_pointing_equals_a_direct_pointing_game_on_every_family(family):
    model = MODELS[family]()
    result = localisation(model, "grad_eclip", n_objects=3, n=6, scene_seed=5, batch=4)
    scenes = gl.synthetic.make_scenes(6, seed=5, n_objects=3, size=image_size(model))
    assert result["pointing"].tolist() == [direct_hit(model, s) for s in scenes]
    assert result["energy"].shape == (6,) and bool(((result["energy"] >= 0) & (result["energy"] <= 1)).all())


def test_image_size_is_each_models_training_side():
    assert image_size(MODELS["clip"]()) == 64 and image_size(MODELS["classifier"]()) == 64
    blip = MODELS["blip"]()
    assert image_size(blip) == blip.model.config.vision_config.image_size


@pytest.mark.parametrize("family", ["clip", "classifier"])
def test_random_maps_do_not_depend_on_the_batch(family):
    model = MODELS[family]()
    one = localisation(model, "random", n_objects=2, n=7, scene_seed=9, batch=7, seed=4)
    chunks = localisation(model, "random", n_objects=2, n=7, scene_seed=9, batch=3, seed=4)
    assert torch.equal(one["pointing"], chunks["pointing"]) and torch.allclose(one["energy"], chunks["energy"])
    other = localisation(model, "random", n_objects=2, n=7, scene_seed=9, batch=7, seed=5)
    assert not torch.allclose(one["energy"], other["energy"])  # the seed is used


def test_a_method_of_another_family_is_refused_before_any_scene():
    with pytest.raises(gl.UnsupportedModelError, match="rollout"):
        localisation(MODELS["classifier"](), "rollout", n=1000)


def test_segmentation_metrics_equal_those_of_the_maps_computed_here():
    model = MODELS["clip"]()
    result = localisation(model, "grad_eclip", n_objects=2, n=5, scene_seed=8, batch=2)
    scenes = gl.synthetic.make_scenes(5, seed=8, n_objects=2, size=image_size(model))
    maps = gl.explain(model, [s.image for s in scenes], [s.objects[0].phrase for s in scenes]).upsampled()
    masks = torch.stack([torch.from_numpy(s.objects[0].mask) for s in scenes])
    for key, metric in (("pixel_accuracy", gl.metrics.pixel_accuracy), ("miou", gl.metrics.mean_iou),
                        ("ap", gl.metrics.average_precision)):
        torch.testing.assert_close(result[key], metric(maps, masks), atol=1e-6, rtol=1e-5)
    assert float(result["ap"].mean()) > float(masks.float().mean())  # better than a constant map's AP
