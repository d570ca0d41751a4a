"""The explainer core on every model family: one Grad-ECLIP (per-pair and Jacobian routes), its terms,
`prompt_maps`, RISE and the random map, through each family's adapter; and one registry that refuses a
method a family does not have with `UnsupportedModelError` naming those it has."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_clip, make_tiny_resnet_clip, make_tiny_timm_clip, random_image
from test_blip import tiny_blip
from test_classifiers import tiny_classifier

import gradeclip_lib as gl
from gradeclip_lib.adapters import adapter_for
from gradeclip_lib.methods import methods_of

FAMILIES = {  # family -> (model builder, two image sizes, three targets)
    "clip_vit": (make_tiny_clip, [(40, 56), (33, 70)], ["a red circle", "a photo of a dog", "a dog"]),
    "clip_resnet": (make_tiny_resnet_clip, [(64, 96), (96, 64)], ["a red circle", "a dog", "a photo"]),
    "clip_siglip": (lambda: make_tiny_timm_clip("siglip"), [(40, 56), (33, 70)], ["a red circle", "a dog", "a cat"]),
    "clip_eva": (lambda: make_tiny_timm_clip("eva"), [(40, 56), (33, 70)], ["a red circle", "a dog", "a cat"]),
    "timm_vit": (tiny_classifier, [(32, 48), (40, 32)], [1, 3, 4]),
    "blip": (tiny_blip, [(32, 48), (40, 32)], ["a red circle", "a photo of a dog on grass", "a dog"]),
}
OTHERS = ["clip_resnet", "timm_vit", "blip"]  # the families that had none of these before the one core


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    build, sizes, targets = FAMILIES[request.param]
    return request.param, build(), [random_image(h, w, i) for i, (h, w) in enumerate(sizes)], targets


def explain(model, images, targets, **options):
    if model.family == "timm_vit":
        return gl.explain(model, images, targets=targets, **options)
    return gl.explain(model, images, targets, **options)


def test_the_family_has_its_adapter_and_the_generic_methods(family):
    name, model, _, _ = family
    assert adapter_for(model).family == name == model.family
    assert {"grad_eclip", "rise", "random", "self_attention"} <= set(methods_of(name))


def test_one_grad_eclip_per_pair_and_jacobian_routes_agree(family):
    _, model, images, targets = family
    image = images[0]
    alone = [explain(model, image, [t], shared=False) for t in targets]
    together = explain(model, image, targets)  # one image, three targets: the Jacobian route by default
    shared = explain(model, image, targets, shared=True)
    for i, single in enumerate(alone):
        scale = float(single.maps.abs().max())
        assert scale > 0
        for exp in (together, shared):
            torch.testing.assert_close(exp.maps[i], single.maps[0], rtol=0, atol=1e-5 * scale)
            assert float(exp.scores[i]) == pytest.approx(float(single.scores[0]), abs=1e-5)


@pytest.mark.parametrize("options", [{}, {"qk": "width"}, {"spatial_weight": False}])
def test_terms_give_the_map_of_explain(family, options):
    _, model, images, targets = family
    terms = gl.grad_eclip_terms(model, images[1], targets[0], **options)
    exp = explain(model, images[1], targets[:1], **options)
    torch.testing.assert_close(terms.emap(), exp.maps, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(terms.score, exp.scores, atol=1e-6, rtol=1e-5)
    assert terms.spatial_weight().shape == exp.maps.shape == terms.gradient_times_value().shape
    if options.get("spatial_weight", True):  # min-maxed over the patches (per head, or over the full width)
        torch.testing.assert_close(terms.lam.amax(-1), torch.ones(terms.lam.shape[:-1]))
        assert float(terms.lam.amin()) == 0


@pytest.mark.parametrize("name", OTHERS)
def test_show_terms_draws_every_family(name):
    import matplotlib.pyplot as plt

    build, sizes, targets = FAMILIES[name]
    model = build()
    image = random_image(*sizes[0], 3)
    fig = gl.plotting.show_terms(image, gl.grad_eclip_terms(model, image, targets[0]))
    assert len(fig.axes) >= 4
    plt.close(fig)


def test_prompt_maps_equal_explain(family):
    _, model, images, targets = family
    maps = gl.prompt_maps(model, images[1])
    exp = maps(targets)
    direct = explain(model, images[1], targets, shared=False)
    scale = float(direct.maps.abs().max())
    torch.testing.assert_close(exp.maps, direct.maps, rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(exp.scores, direct.scores, rtol=0, atol=1e-5)


def test_rise_and_random_explain_the_models_own_score(family):
    name, model, images, targets = family
    reference = explain(model, images, targets[:2], method="grad_eclip")
    rise = explain(model, images, targets[:2], method="rise", n_masks=24, batch=10)
    assert [tuple(m.shape) for m in rise.maps] == [(h, w) for h, w in
                                                   (tuple(p.shape[-2:]) for p in adapter_for(model).prepare(images)[0])]
    assert all(float(m.std()) > 0 for m in rise.maps)
    torch.testing.assert_close(rise.scores, reference.scores, atol=1e-5, rtol=1e-5)
    random = explain(model, images, targets[:2], method="random", seed=3)
    assert [m.shape for m in random.maps] == [m.shape for m in reference.maps]
    again = explain(model, images[1], targets[1:2], method="random", seed=4)  # pair 1 of a batch seeded 3 has 4
    torch.testing.assert_close(again.maps[0], random.maps[1])
    torch.testing.assert_close(random.scores, reference.scores, atol=1e-5, rtol=1e-5)


def test_a_classifier_explains_probabilities_through_every_route():
    model, image = tiny_classifier(), random_image(32, 48, 0)
    per_pair = gl.explain(model, image, targets=[1, 3], probability=True, shared=False)
    logits = model.model(adapter_for(model).prepare([image])[0][0][None]).float()
    torch.testing.assert_close(per_pair.scores, logits.softmax(-1)[0, [1, 3]], atol=1e-6, rtol=1e-5)
    shared = gl.explain(model, image, targets=[1, 3], probability=True)
    prompts = gl.prompt_maps(model, image, probability=True)([1, 3])
    for exp in (shared, prompts):
        torch.testing.assert_close(exp.maps, per_pair.maps, atol=1e-7, rtol=1e-4)
    rise = gl.explain(model, image, targets=[1, 3], method="rise", n_masks=8, probability=True)
    torch.testing.assert_close(rise.scores, per_pair.scores, atol=1e-6, rtol=1e-5)


UNSUPPORTED = {"clip_vit": "itm_gradcam", "clip_resnet": "rollout", "clip_siglip": "clip_surgery", "clip_eva": "m2ib",
               "timm_vit": "game", "blip": "mask_clip"}


def test_a_method_of_another_family_names_the_ones_that_apply(family):
    name, model, images, targets = family
    applicable = ", ".join(sorted(methods_of(name)))
    with pytest.raises(gl.UnsupportedModelError, match=applicable) as error:
        explain(model, images[0], targets[:1], method=UNSUPPORTED[name])
    assert isinstance(error.value, ValueError) and isinstance(error.value, TypeError)  # as before, for old callers
    with pytest.raises(ValueError, match="unknown method 'no_such'.*available"):
        explain(model, images[0], targets[:1], method="no_such")


@pytest.mark.parametrize("name", OTHERS)
def test_paper_mode_is_clip_vit_only(name):
    build, sizes, targets = FAMILIES[name]
    model, image = build(), random_image(*sizes[0], 0)
    with pytest.raises(ValueError, match="forward mode only"):
        explain(model, image, targets[:1], mode="paper")
    with pytest.raises(ValueError, match="forward mode only"):
        gl.prompt_maps(model, image, mode="paper")
