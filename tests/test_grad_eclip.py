"""Grad-ECLIP against independent computations of its formula (tests/reference.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import (
    grad_eclip_forward_image,
    grad_eclip_forward_text,
    grad_eclip_paper_image,
    grad_eclip_paper_text,
)

import gradeclip_lib as gl

TEXTS = ["a red circle", "a photo of a blue star and a green cross", "there is a white square"]


@pytest.mark.parametrize("size", [(40, 56), (33, 70), (32, 32)])
def test_paper_mode_reproduces_authors_code(tiny, size):
    from conftest import random_image

    img = random_image(*size, seed=7)
    text = tiny.encode_text(TEXTS[1])[0]
    ref_map, ref_score = grad_eclip_paper_image(tiny.model, img, text, tiny.patch_size)
    exp = gl.explain(tiny, img, TEXTS[1], mode="paper")
    assert exp.maps.shape[1:] == ref_map.shape
    assert ref_map.max() > 0
    torch.testing.assert_close(exp.maps[0], ref_map, rtol=1e-4, atol=1e-6)
    assert exp.scores[0].item() == pytest.approx(ref_score, abs=1e-6)


@pytest.mark.parametrize("qk", ["head", "width"])
def test_forward_mode_matches_multi_head_reference(tiny, images, qk):
    pixels = tiny.crop(images)
    texts = tiny.encode_text(TEXTS)
    ref_maps, ref_scores = grad_eclip_forward_image(tiny.model, pixels, texts, qk=qk)
    exp = gl.explain(tiny, images, TEXTS, preprocess="crop", qk=qk)
    torch.testing.assert_close(exp.maps.flatten(1), ref_maps, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(exp.scores, ref_scores, rtol=0, atol=1e-6)


def test_per_head_and_width_lambda_differ(tiny, images):
    a = gl.explain(tiny, images[0], TEXTS[0], qk="head").maps
    b = gl.explain(tiny, images[0], TEXTS[0], qk="width").maps
    assert not torch.allclose(a, b)


def test_forward_score_is_the_models_own_cosine(tiny, images):
    exp = gl.explain(tiny, images, TEXTS, preprocess="crop")
    with torch.no_grad():
        img = tiny.model.encode_image(tiny.crop(images), normalize=True)
        txt = tiny.model.encode_text(tiny.tokenize(TEXTS), normalize=True)
    torch.testing.assert_close(exp.scores, (img * txt).sum(-1), rtol=0, atol=1e-5)


def test_paper_mode_explains_a_different_score(tiny, images):
    forward = gl.explain(tiny, images[0], TEXTS[0], preprocess="crop").scores
    paper = gl.explain(tiny, images[0], TEXTS[0], preprocess="crop", mode="paper").scores
    assert abs(float(forward - paper)) > 1e-3


def test_faithful_is_a_deprecated_alias_of_forward(tiny, images):
    """``mode="faithful"``, the older name of ``"forward"``, still works: the same maps, scores and word
    weights, with a DeprecationWarning that says to use "forward" and points at the caller's line."""
    forward = gl.explain(tiny, images, TEXTS, mode="forward")
    with pytest.warns(DeprecationWarning, match='use mode="forward"') as caught:
        old = gl.explain(tiny, images, TEXTS, mode="faithful")
    assert len(caught) == 1 and caught[0].filename == __file__
    assert old.options["mode"] == "forward"
    for a, b in zip(old.maps, forward.maps, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(old.scores, forward.scores, rtol=0, atol=0)
    default = gl.explain(tiny, images, TEXTS)
    for a, b in zip(default.maps, forward.maps, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    with pytest.warns(DeprecationWarning, match='use mode="forward"'):
        old_words = gl.explain_text(tiny, images[0], TEXTS[1], mode="faithful")
    torch.testing.assert_close(old_words.weights, gl.explain_text(tiny, images[0], TEXTS[1]).weights, rtol=0, atol=0)
    with pytest.warns(DeprecationWarning, match='use mode="forward"'):
        old_prompts = gl.prompt_maps(tiny, images[0], mode="faithful")(TEXTS[:2])
    torch.testing.assert_close(old_prompts.maps, gl.prompt_maps(tiny, images[0], mode="forward")(TEXTS[:2]).maps,
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        gl.explain(tiny, images[0], TEXTS[0], mode="faithfull")


@pytest.mark.parametrize("mode", ["forward", "paper"])
def test_batched_equals_one_at_a_time(tiny, images, mode):
    batched = gl.explain(tiny, images, TEXTS, mode=mode)
    assert isinstance(batched.maps, list)  # two sizes in the batch
    for i, (img, text) in enumerate(zip(images, TEXTS)):
        single = gl.explain(tiny, img, text, mode=mode)
        torch.testing.assert_close(batched.maps[i], single.maps[0], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(batched.scores[i], single.scores[0], rtol=1e-5, atol=1e-6)


def test_one_image_many_texts_shares_the_image(tiny, images):
    many = gl.explain(tiny, images[0], TEXTS)
    assert many.maps.shape[0] == len(TEXTS)
    for i, text in enumerate(TEXTS):
        torch.testing.assert_close(many.maps[i], gl.explain(tiny, images[0], text).maps[0], rtol=1e-4, atol=1e-6)
    assert not torch.allclose(many.maps[0], many.maps[1])


def test_chunked_batches_equal_one_batch(tiny, images):
    whole = gl.explain(tiny, images[:2], TEXTS[:2])
    chunked = gl.explain(tiny, images[:2], TEXTS[:2], batch_size=1)
    torch.testing.assert_close(whole.maps, chunked.maps, rtol=1e-4, atol=1e-6)


def test_text_embeddings_as_targets(tiny, images):
    emb = tiny.encode_text(TEXTS[:2])
    a = gl.explain(tiny, images[:2], emb)
    b = gl.explain(tiny, images[:2], TEXTS[:2])
    torch.testing.assert_close(a.maps, b.maps)


def test_spatial_weight_off_is_gradient_times_value(tiny, images):
    exp = gl.explain(tiny, images[0], TEXTS[0], preprocess="crop", spatial_weight=False)
    from reference import multi_head_last_block

    pixels = tiny.crop(images[0])
    f, o, _, _, v = multi_head_last_block(tiny.model, pixels)
    s = F.cosine_similarity(f, tiny.encode_text(TEXTS[0]), dim=-1)
    grad = torch.autograd.grad(s.sum(), o)[0]
    expected = F.relu((grad[0, 0] * v[0, 1:]).sum(-1))
    torch.testing.assert_close(exp.maps[0].flatten(), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", ["forward", "paper"])
def test_low_precision_maps_agree_with_fp32(images, dtype, mode):
    from conftest import make_tiny_clip

    clip32, clip16 = make_tiny_clip(seed=3), make_tiny_clip(seed=3).to(dtype=dtype)
    a = gl.explain(clip32, images[0], TEXTS[1], mode=mode).maps.flatten()
    b = gl.explain(clip16, images[0], TEXTS[1], mode=mode).maps.flatten()
    assert b.dtype == torch.float32
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.99


@pytest.mark.parametrize(("size", "grid"), [((50, 90), (6, 11)), ((90, 50), (11, 6)), ((17, 8), (2, 1))])
def test_token_grid_of_non_square_images(tiny, size, grid):
    from conftest import random_image

    exp = gl.explain(tiny, random_image(*size), TEXTS[0])
    assert tuple(exp.maps.shape) == (1, *grid)
    assert tuple(exp.upsampled().shape) == (1, *size)


def test_crop_gives_the_training_grid(tiny, images):
    exp = gl.explain(tiny, images, TEXTS, preprocess="crop")
    assert tuple(exp.maps.shape) == (3, 4, 4)
    assert [tuple(s) for s in exp.image_sizes] == [(32, 32)] * 3  # the maps cover the centre crop
    assert tuple(exp.upsampled().shape) == (3, 32, 32)
    assert tiny.crop_view(images[2]).size == (32, 32)


def test_normalized_and_upsampled(tiny, images):
    exp = gl.explain(tiny, images, TEXTS)
    for m in exp.normalized():
        assert float(m.min()) == 0.0 and float(m.max()) == pytest.approx(1.0)
    up = exp.upsampled()
    assert [tuple(u.shape) for u in up] == [(40, 56), (40, 56), (33, 70)]


# ------------------------------------------------------------------------------------------- text
def test_text_paper_mode_reproduces_authors_code(tiny, images):
    text = "a photo of a blue star and a green cross"
    image_emb = tiny.encode_image(images[0])[0]
    ref = grad_eclip_paper_text(tiny.model, tiny.tokenize(text), image_emb, n=3)
    words = gl.explain_text(tiny, images[0], text, mode="paper")
    torch.testing.assert_close(words.weights, ref, rtol=1e-4, atol=1e-6)


def test_text_forward_mode_matches_multi_head_reference(tiny, images):
    text = "a photo of a blue star and a green cross"
    image_emb = tiny.encode_image(images[0])[0]
    ref = grad_eclip_forward_text(tiny.model, tiny.tokenize(text), image_emb, n=3)
    words = gl.explain_text(tiny, images[0], text)
    torch.testing.assert_close(words.weights, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mode", ["forward", "paper"])
def test_text_scores_sum_to_one_per_word_piece(tiny, images, mode):
    text = "A photo of a Hyper-realistic, enormous blue star!"
    words = gl.explain_text(tiny, images[0], text, mode=mode)
    n_pieces = len(tiny.tokenizer.encode(text))
    assert len(words.tokens) == len(words.weights) == n_pieces
    assert words.tokens[:3] == ["a", "photo", "of"]
    assert float(words.weights.sum()) == pytest.approx(1.0, abs=1e-5)
    assert (words.weights >= 0).all()


def test_text_forward_score_is_the_models_cosine(tiny, images):
    text = "a white square"
    words = gl.explain_text(tiny, images[1], text)
    expected = float(tiny.encode_image(images[1])[0] @ tiny.encode_text(text)[0])
    assert words.score == pytest.approx(expected, abs=1e-5)


def test_text_batch_equals_single_and_embedding_input(tiny, images):
    emb = tiny.encode_image(images[2])[0]
    batch = gl.explain_text(tiny, images[2], TEXTS)
    for text, got in zip(TEXTS, batch):
        single = gl.explain_text(tiny, emb, text)
        assert got.tokens == single.tokens
        torch.testing.assert_close(got.scores, single.scores, rtol=1e-4, atol=1e-6)


def test_unknown_method_and_mode(tiny, images):
    with pytest.raises(ValueError, match="available"):
        gl.explain(tiny, images[0], "x", method="nope")
    with pytest.raises(ValueError, match="mode"):
        gl.explain(tiny, images[0], "x", mode="exact")
    with pytest.raises(ValueError, match="one text per image"):
        gl.explain(tiny, images[:2], TEXTS)


# ------------------------------------------------------------------------------------------- terms
def test_terms_recombine_into_the_map(tiny, images):
    terms = gl.grad_eclip_terms(tiny, images[2], TEXTS[0])
    exp = gl.explain(tiny, images[2], TEXTS[0])
    torch.testing.assert_close(terms.emap(), exp.maps)
    flat = gl.explain(tiny, images[2], TEXTS[0], spatial_weight=False)
    torch.testing.assert_close(F.relu(terms.gradient_times_value()), flat.maps, rtol=1e-4, atol=1e-6)
    lam = terms.spatial_weight()
    assert lam.shape == exp.maps.shape and float(lam.min()) >= 0 and float(lam.max()) <= 1


def test_terms_of_several_pairs_in_one_batch(tiny, images):
    pairs = gl.grad_eclip_terms(tiny, images[:2], TEXTS[:2])  # the two 40 x 56 images
    torch.testing.assert_close(pairs.emap(), gl.explain(tiny, images[:2], TEXTS[:2]).maps, rtol=1e-4, atol=1e-6)
    shared = gl.grad_eclip_terms(tiny, images[0], TEXTS[:2])  # one image, two texts
    assert shared.emap().shape[0] == 2 and torch.equal(shared.v[0], shared.v[1])
    torch.testing.assert_close(shared.emap()[1], gl.explain(tiny, images[0], TEXTS[1]).maps[0], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="one size"):
        gl.grad_eclip_terms(tiny, images, TEXTS[0])
    second = pairs.select([1])
    torch.testing.assert_close(second.emap(), pairs.emap()[1:])
    assert second.score.shape == (1,) and torch.equal(second.w[0], pairs.w[1])
