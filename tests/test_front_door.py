"""The front door: `gl.load` for every family, ``pretrained=None`` meaning random weights everywhere, and the
inputs `gl.explain` takes or refuses with a clear error (NumPy images, text embeddings, stray arguments)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gradeclip_lib as gl
from gradeclip_lib.loading import family_of
from gradeclip_lib.models import loading

SHIPPED_FAMILIES = {"shapes": gl.Clip, "shapes-resnet": gl.Clip, "shapes-siglip": gl.Clip, "shapes-tuned": gl.Clip,
                    "shapes-shuffled": gl.Clip, "shapes-classifier": gl.Classifier, "shapes-blip": gl.Blip}


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in model.model.state_dict().items() if v.is_floating_point()}


def differ(a: dict, b: dict) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a if a[k].numel() > 1)


@pytest.mark.parametrize("name", list(SHIPPED_FAMILIES))
def test_pretrained_none_means_random_weights_in_every_family(name):
    trained, random = gl.load(name), gl.load(name, pretrained=None)
    assert isinstance(trained, SHIPPED_FAMILIES[name]) and isinstance(random, SHIPPED_FAMILIES[name])
    assert trained.pretrained is not None and random.pretrained is None and "random weights" in repr(random)
    assert weights(trained).keys() == weights(random).keys()  # the same architecture
    assert differ(weights(trained), weights(random))
    assert not differ(weights(random), weights(gl.load(name, pretrained=None)))  # seeded: reproducible
    assert differ(weights(random), weights(gl.load(name, pretrained=None, seed=1)))


def test_the_family_loaders_agree_with_load():
    assert not differ(weights(gl.load_classifier("shapes", pretrained=None)),
                      weights(gl.load("shapes-classifier", pretrained=None)))
    trained = gl.load_classifier("shapes")
    assert differ(weights(trained), weights(gl.load_classifier("shapes", pretrained=None)))
    assert not differ(weights(gl.load_blip("shapes")), weights(gl.load("shapes-blip")))
    assert not differ(weights(gl.load("data/shapes")), weights(gl.load_clip("shapes")))


@pytest.mark.parametrize(("name", "family"), [
    ("ViT-B-16-quickgelu:openai", "clip"), ("RN50", "clip"), ("shapes", "clip"),
    ("vit_base_patch16_224.augreg_in21k_ft_in1k", "classifier"), ("shapes-classifier", "classifier"),
    ("Salesforce/blip-itm-base-coco", "blip"), ("shapes-blip", "blip"), (gl.samples.DATA_DIR / "shapes-blip", "blip"),
])
def test_a_name_says_its_family(name, family):
    assert family_of(name) == family


def test_an_unknown_name_lists_what_load_takes():
    with pytest.raises(ValueError, match="open_clip.list_models") as err:
        gl.load("no-such-model")
    assert "shapes-blip" in str(err.value) and "family=" in str(err.value)


def test_a_tagless_clip_name_means_its_openai_weights_and_never_random(monkeypatch, tmp_path):
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(gl.WeightsUnavailableError, match="ViT-B-16-quickgelu:openai"):
        gl.load_clip("ViT-B-16-quickgelu", cache_dir=str(tmp_path))
    with pytest.raises(gl.WeightsUnavailableError, match="pretrained=None"):
        gl.load("ViT-B-16-quickgelu")
    random = gl.load("ViT-B-32-quickgelu", pretrained=None)
    assert isinstance(random, gl.Clip) and random.pretrained is None


# ---------------------------------------------------------------- images as NumPy arrays
def test_numpy_images_are_read_as_the_same_pil_image(tiny, images):
    pil = images[2]
    uint8 = np.asarray(pil)
    expected = gl.explain(tiny, pil, "a dog")
    for array in (uint8, uint8.astype(np.float32) / 255, uint8.astype(np.float64) / 255):
        got = gl.explain(tiny, array, "a dog")
        torch.testing.assert_close(got.maps, expected.maps)
        assert got.image_sizes == expected.image_sizes
    batch = np.stack([np.asarray(images[0]), np.asarray(images[1])])
    both = gl.explain(tiny, batch, ["a dog", "a cat"])
    torch.testing.assert_close(both.maps, gl.explain(tiny, images[:2], ["a dog", "a cat"]).maps)
    torch.testing.assert_close(tiny.encode_image(uint8), tiny.encode_image(pil))


@pytest.mark.parametrize(("array", "match"), [
    (np.full((40, 40, 3), 200.0), "astype"),  # floats in 0..255
    (np.full((40, 40, 3), -0.5), r"\[0, 1\]"),
    (np.full((40, 40, 3), np.nan), "NaN"),
    (np.zeros((3, 40, 40), np.uint8), "transpose"),
    (np.zeros((40, 40, 5), np.uint8), "H x W x 3"),
    (np.zeros((40, 40, 3), np.int64), "uint8"),
])
def test_numpy_images_out_of_range_or_shape_say_how_to_fix_them(tiny, array, match):
    with pytest.raises(gl.ImageError, match=match):
        gl.explain(tiny, array, "a dog")


# ---------------------------------------------------------------- texts and stray arguments
def test_bad_texts_and_embeddings_get_clear_errors(tiny, images):
    width = tiny.embed_dim
    with pytest.raises(gl.TextError, match=f"width {width}"):
        gl.explain(tiny, images[0], torch.randn(1, width + 3))
    with pytest.raises(gl.TextError, match="targets"):
        gl.explain(tiny, images[0], [1, 2])
    with pytest.raises(gl.TextError, match="NaN"):
        gl.explain(tiny, images[0], torch.full((width,), float("nan")))
    with pytest.raises(gl.TextError, match="all zeros"):
        gl.explain(tiny, images[0], torch.zeros(width))
    with pytest.raises(gl.TextError, match="width"):
        gl.explain_text(tiny, torch.randn(width - 1), "a dog")
    with pytest.raises(gl.TextError, match="strings"):
        gl.explain_text(tiny, images[0], 5)
    assert issubclass(gl.TextTooLongError, gl.TextError) and issubclass(gl.TextError, ValueError)


def test_targets_are_refused_where_texts_are_explained(tiny, images):
    with pytest.raises(ValueError, match="classifier"):
        gl.explain(tiny, images[0], "a dog", targets=[5])
    blip = gl.load("shapes-blip")
    with pytest.raises(ValueError, match="classifier"):
        gl.explain(blip, images[0], "a red circle", targets=[0])


@pytest.mark.parametrize(("name", "text"), [("shapes", "a red circle"), ("shapes-resnet", "a red circle"),
                                            ("shapes-classifier", "red circle"), ("shapes-blip", "a red circle")])
def test_an_option_fails_the_same_way_on_every_family(name, text, images):
    model = gl.load(name)
    for method in ("grad_eclip", "rise", "random"):
        with pytest.raises(ValueError, match=f"'{method}' on a .* takes .*; got colour"):
            gl.explain(model, images[0], text, method=method, colour="red")
    with pytest.raises(ValueError, match="takes .*seed; got qk"):
        gl.explain(model, images[0], text, method="random", qk="width")
    if name != "shapes":
        with pytest.raises(ValueError, match="paper"):
            gl.explain(model, images[0], text, mode="paper")
    assert gl.explain(model, images[0], text, method="grad_eclip", qk="width").maps.ndim == 3


def test_word_weights_are_weights_and_the_old_name_warns(tiny, images):
    words = gl.explain_text(tiny, images[0], "a photo of a dog")
    assert float(words.weights.sum()) == pytest.approx(1.0, abs=1e-5)
    with pytest.warns(DeprecationWarning, match="weights"):
        old = words.scores
    assert old is words.weights


def test_the_front_doors_take_models_images_and_texts_by_the_same_names(tiny, images):
    by_name = gl.explain_text(model=tiny, images=images[0], texts="a photo of a dog")
    terms = gl.grad_eclip_terms(model=tiny, images=images[0], texts="a dog")
    assert gl.explain(model=tiny, images=images[0], texts="a dog").maps.shape[1:] == terms.grid
    with pytest.warns(DeprecationWarning, match="images="):
        old = gl.explain_text(tiny, image=images[0], text="a photo of a dog")
    torch.testing.assert_close(old.weights, by_name.weights)
    with pytest.warns(DeprecationWarning, match="texts="):
        gl.grad_eclip_terms(tiny, images[0], text="a dog")


def test_word_weights_refuse_an_option_their_method_does_not_take(tiny, images):
    with pytest.raises(ValueError, match="'grad_eclip' on a CLIP text tower takes .*n_layers.*; got layer"):
        gl.explain_text(tiny, images[0], "a dog", layer=3)
    assert len(gl.explain_text(tiny, images[0], "a dog", method="game", start_layer=1).weights) == 2
