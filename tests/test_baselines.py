"""Every baseline against a plain computation of its formula (tests/reference.py), and the behaviour
all methods share: shapes for any image size, batched equals one at a time, seeds."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reference import (
    abnar_rollout,
    chefer_relevance,
    clip_surgery_reference,
    legrad_reference,
    mask_clip_reference,
    plain_text_forward,
    plain_vision_forward,
)

import gradeclip_lib as gl
from gradeclip_lib.methods.rise import rise_masks

TEXTS = ["a red circle", "a photo of a blue star and a green cross", "there is a white square"]
FAST = {"rise": {"n_masks": 40, "batch": 16}, "m2ib": {"steps": 3, "samples": 2}}


def setup(tiny, images):
    pixels = tiny.crop(images)
    return pixels, tiny.encode_text(TEXTS)


def crop_maps(tiny, images, method, **options):
    return gl.explain(tiny, images, TEXTS, method=method, preprocess="crop", **options).maps


def test_self_attention(tiny, images):
    pixels, _ = setup(tiny, images)
    _, records = plain_vision_forward(tiny.model, pixels)
    expected = records[-1]["weights"].mean(1)[:, 0, 1:]
    torch.testing.assert_close(crop_maps(tiny, images, "self_attention").flatten(1), expected.detach(),
                               rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("start", [0, 1])
def test_rollout(tiny, images, start):
    pixels, _ = setup(tiny, images)
    _, records = plain_vision_forward(tiny.model, pixels)
    expected = abnar_rollout([r["weights"].mean(1).detach() for r in records[start:]])[:, 0, 1:]
    got = crop_maps(tiny, images, "rollout", start_layer=start).flatten(1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("start", [-1, 0])
def test_game(tiny, images, start):
    pixels, texts = setup(tiny, images)
    f, records = plain_vision_forward(tiny.model, pixels)
    logit = tiny.model.logit_scale.exp() * F.cosine_similarity(f, texts, dim=-1)
    expected = chefer_relevance(logit, [r["weights"] for r in records[start:]])[:, 0, 1:]
    got = crop_maps(tiny, images, "game", start_layer=start).flatten(1)
    torch.testing.assert_close(got, expected.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer_index", [-2, 0])
def test_legrad(tiny, images, layer_index):
    pixels, texts = setup(tiny, images)
    expected = legrad_reference(tiny.model, pixels, texts, layer_index)
    got = crop_maps(tiny, images, "legrad", layer_index=layer_index).flatten(1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert bool((got.amax(1) == 1).all() and (got.amin(1) == 0).all())


def test_grad_cam(tiny, images):
    pixels, texts = setup(tiny, images)
    f, records = plain_vision_forward(tiny.model, pixels)
    x = records[-1]["input"]
    grad = torch.autograd.grad(F.cosine_similarity(f, texts, dim=-1).sum(), x)[0]
    expected = F.relu((grad.mean(1, keepdim=True) * x[:, 1:]).sum(-1)).detach()
    torch.testing.assert_close(crop_maps(tiny, images, "grad_cam").flatten(1), expected, rtol=1e-4, atol=1e-6)


def test_mask_clip(tiny, images):
    pixels, texts = setup(tiny, images)
    expected = mask_clip_reference(tiny.model, pixels, texts)
    torch.testing.assert_close(crop_maps(tiny, images, "mask_clip").flatten(1), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("depth", [2, 3])
def test_clip_surgery(tiny, images, depth):
    pixels, texts = setup(tiny, images)
    empty = tiny.encode_text([""])
    expected = clip_surgery_reference(tiny.model, pixels, texts, empty, depth)
    expected = expected[torch.arange(3), :, torch.arange(3)]  # each image against its own text
    got = crop_maps(tiny, images, "clip_surgery", depth=depth).flatten(1)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_clip_surgery_label_set_changes_the_map(tiny, images):
    plain = gl.explain(tiny, images[0], TEXTS[0], method="clip_surgery").maps
    labelled = gl.explain(tiny, images[0], TEXTS[0], method="clip_surgery", labels=["a dog", "a car"]).maps
    assert plain.shape == labelled.shape and not torch.allclose(plain, labelled)


def test_rise_against_a_loop_over_masks(tiny, images):
    pixels, texts = setup(tiny, images)
    masks = rise_masks(30, 4, 0.5, tuple(pixels.shape[-2:]), seed=3)
    expected = torch.zeros(3, *pixels.shape[-2:])
    with torch.no_grad():
        for m in masks:
            f = F.normalize(tiny.model.encode_image(pixels * m), dim=-1)
            expected += (f @ F.normalize(texts, dim=-1).T).diagonal()[:, None, None] * m[0]
    expected /= 30 * 0.5
    got = crop_maps(tiny, images, "rise", n_masks=30, grid=4, seed=3, batch=7)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_rise_masks():
    masks = rise_masks(400, 8, 0.5, (40, 56), seed=0)
    assert masks.shape == (400, 1, 40, 56) and float(masks.min()) >= 0 and float(masks.max()) <= 1
    assert abs(float(masks.mean()) - 0.5) < 0.05
    torch.testing.assert_close(masks, rise_masks(400, 8, 0.5, (40, 56), seed=0))
    assert not torch.equal(masks, rise_masks(400, 8, 0.5, (40, 56), seed=1))


def test_m2ib_against_a_plain_bottleneck(tiny, images):
    layer, steps, samples, beta = 1, 3, 2, 0.1
    pixels, texts = setup(tiny, images)
    pixels, texts = pixels[:1], texts[:1]
    visual, blocks = tiny.model.visual, tiny.model.visual.transformer.resblocks
    with torch.no_grad():
        x = visual.ln_pre(torch.cat([visual.class_embedding.expand(1, 1, -1),
                                     visual.conv1(pixels).flatten(2).transpose(1, 2)], 1) + visual.positional_embedding)
        for blk in blocks[: layer + 1]:
            x = blk(x)
    alpha = torch.full_like(x, 5.0, requires_grad=True)
    opt = torch.optim.Adam([alpha], lr=1.0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        lam = torch.sigmoid(alpha)
        mu, var = x * lam, (1 - lam) ** 2
        z = mu + var.sqrt() * torch.randn((samples, *x.shape), generator=gen)
        fit = 0.0
        for s in range(samples):
            h = z[s]
            for blk in blocks[layer + 1:]:
                h = blk(h)
            f = visual.ln_post(h)[:, 0] @ visual.proj
            fit = fit + F.cosine_similarity(f, texts, dim=-1).sum() / samples
        kl = -0.5 * (1 + torch.log(var) - mu**2 - var)
        loss = beta * kl.mean() - fit
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the authors' map: the capacity their last forward buffered, before the last update
    expected = kl.detach().sum(-1)[:, 1:]
    got = gl.explain(tiny, images[0], TEXTS[0], method="m2ib", preprocess="crop", layer=layer, steps=steps,
                     samples=samples).maps
    torch.testing.assert_close(got.flatten(1), expected, rtol=1e-3, atol=1e-4)


# ------------------------------------------------------------------------------------- all methods
@pytest.mark.parametrize("method", sorted(gl.IMAGE_METHODS))
def test_shapes_for_non_square_images(tiny, images, method):
    exp = gl.explain(tiny, images[2], TEXTS[0], method=method, **FAST.get(method, {}))
    expected = (32, 72) if method == "rise" else (4, 9)  # RISE maps pixels, the others tokens
    assert tuple(exp.maps.shape) == (1, *expected)
    assert tuple(exp.upsampled().shape) == (1, 33, 70)
    assert torch.isfinite(exp.maps).all()


@pytest.mark.parametrize("method", sorted(gl.IMAGE_METHODS))
def test_batched_equals_one_at_a_time(tiny, images, method):
    options = FAST.get(method, {})
    batched = gl.explain(tiny, images, TEXTS, method=method, **options)
    for i in range(3):
        seed = {"seed": i} if method == "random" else {}  # seeded per pair: pair i of the batch has seed 0 + i
        single = gl.explain(tiny, images[i], TEXTS[i], method=method, **options, **seed)
        torch.testing.assert_close(batched.maps[i], single.maps[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(batched.scores[i], single.scores[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["random", "rise", "m2ib"])
def test_seeded_methods_are_deterministic(tiny, images, method):
    options = FAST.get(method, {})
    a = gl.explain(tiny, images[0], TEXTS[0], method=method, seed=1, **options).maps
    b = gl.explain(tiny, images[0], TEXTS[0], method=method, seed=1, **options).maps
    c = gl.explain(tiny, images[0], TEXTS[0], method=method, seed=2, **options).maps
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_random_maps_are_uniform_and_a_function_of_their_own_seed(tiny, images):
    from gradeclip_lib.methods.random_map import hashed_uniform

    u = hashed_uniform(torch.tensor([0, 1, 2**31 - 1]), (64, 64))
    assert u.min() >= 0 and u.max() < 1 and abs(float(u.mean()) - 0.5) < 0.01
    assert abs(float(u.std()) - (1 / 12) ** 0.5) < 0.01  # the uniform's standard deviation
    assert torch.corrcoef(u.flatten(1))[0, 1].abs() < 0.05  # seeds 0 and 1 give unrelated maps
    torch.testing.assert_close(hashed_uniform(torch.tensor([1]), (64, 64))[0], u[1])  # whatever its neighbours
    # explicit per-pair seeds: the same pair gets the same map in any batch and any order
    both = gl.explain(tiny, images[:2], TEXTS[:2], method="random", seed=[7, 9]).maps
    swapped = gl.explain(tiny, images[1::-1], TEXTS[1::-1], method="random", seed=[9, 7]).maps
    torch.testing.assert_close(both[0], swapped[1])
    with pytest.raises(ValueError, match="one per pair"):
        gl.explain(tiny, images[:2], TEXTS[:2], method="random", seed=[1, 2, 3])


@pytest.mark.parametrize("method", sorted(gl.IMAGE_METHODS))
def test_bf16_runs_and_agrees(images, method):
    from conftest import make_tiny_clip

    clip32, clip16 = make_tiny_clip(seed=4), make_tiny_clip(seed=4).to(dtype=torch.bfloat16)
    options = FAST.get(method, {})
    a = gl.explain(clip32, images[0], TEXTS[1], method=method, **options).maps.flatten()
    b = gl.explain(clip16, images[0], TEXTS[1], method=method, **options).maps.flatten()
    if method == "random":
        torch.testing.assert_close(a, b)
        return
    assert torch.corrcoef(torch.stack([a, b]))[0, 1] > 0.95


# ------------------------------------------------------------------------------------------- text
def text_reference(tiny, image, text):
    ids = tiny.tokenize(text)
    f, records = plain_text_forward(tiny.model, ids)
    eos = int(ids.argmax())
    cos = F.cosine_similarity(f, tiny.encode_image(image), dim=-1)
    return ids, eos, records, cos


def normalize(raw, eos):
    w = F.relu(raw[1:eos])
    return (w / w.sum()).detach()


def test_text_self_attention_rollout_and_game(tiny, images):
    text = "a photo of a blue star and a green cross"
    ids, eos, records, cos = text_reference(tiny, images[0], text)
    attn = records[-1]["weights"].mean(1)[0, eos]
    torch.testing.assert_close(gl.explain_text(tiny, images[0], text, method="self_attention").weights,
                               normalize(attn, eos), rtol=1e-4, atol=1e-6)
    roll = abnar_rollout([r["weights"].mean(1).detach() for r in records])[0, eos]
    torch.testing.assert_close(gl.explain_text(tiny, images[0], text, method="rollout").weights,
                               normalize(roll, eos), rtol=1e-4, atol=1e-6)
    logit = tiny.model.logit_scale.exp() * cos
    rel = chefer_relevance(logit, [r["weights"] for r in records[-2:]])[0, eos]
    torch.testing.assert_close(gl.explain_text(tiny, images[0], text, method="game", start_layer=-2).weights,
                               normalize(rel, eos), rtol=1e-4, atol=1e-6)


def test_every_text_method_sums_to_one(tiny, images):
    for method in gl.TEXT_METHODS:
        words = gl.explain_text(tiny, images[1], TEXTS[1], method=method)
        assert len(words.tokens) == len(words.weights)
        assert float(words.weights.sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("method", sorted(gl.TEXT_METHODS))
def test_text_batch_equals_one_at_a_time(tiny, images, method):
    options = {"steps": 3, "samples": 2} if method == "m2ib" else {}
    batch = gl.explain_text(tiny, images[0], TEXTS, method=method, **options)
    for text, got in zip(TEXTS, batch):
        single = gl.explain_text(tiny, images[0], text, method=method, **options)
        assert got.tokens == single.tokens
        torch.testing.assert_close(got.scores, single.scores, rtol=1e-4, atol=1e-6)


def test_text_m2ib_is_seeded_and_explains_the_models_cosine(tiny, images):
    text = TEXTS[1]
    a = gl.explain_text(tiny, images[0], text, method="m2ib", steps=3, samples=2, seed=1)
    b = gl.explain_text(tiny, images[0], text, method="m2ib", steps=3, samples=2, seed=1)
    c = gl.explain_text(tiny, images[0], text, method="m2ib", steps=3, samples=2, seed=2)
    torch.testing.assert_close(a.scores, b.scores)
    assert not torch.allclose(a.scores, c.scores)
    expected = float(tiny.encode_image(images[0])[0] @ tiny.encode_text(text)[0])
    assert a.score == pytest.approx(expected, abs=1e-5)
