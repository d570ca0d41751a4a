"""Many texts on one image (and one text against many images): the shared routes (one pass and one
Jacobian per image, or per text) give the per-pair backward pass's maps, word weights and scores, for
every mode and option, on batches of mixed images and texts."""

from __future__ import annotations

import pytest
import torch

import gradeclip_lib as gl
from gradeclip_lib.adapters.clip_vit import class_token_readout
from gradeclip_lib.methods import shared_image
from gradeclip_lib.methods.shared_image import per_image_matmul

TEXTS = ["a red circle", "a photo of a blue star and a green cross", "there is a white square",
         "a cat", "two dogs on a sofa"]
OPTIONS = [{"mode": "forward"}, {"mode": "forward", "qk": "width"}, {"mode": "forward", "spatial_weight": False},
           {"mode": "paper"}, {"mode": "paper", "spatial_weight": False}]


def assert_same(a: gl.Explanation, b: gl.Explanation) -> None:
    maps_a = a.maps if isinstance(a.maps, list) else list(a.maps)
    maps_b = b.maps if isinstance(b.maps, list) else list(b.maps)
    for x, y in zip(maps_a, maps_b, strict=True):
        scale = float(y.abs().max()) or 1.0
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(a.scores, b.scores, rtol=0, atol=1e-6)


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_one_image_many_texts_equals_one_backward_per_text(tiny, images, options):
    image = images[2]  # 33 x 70: a non-square grid (4 x 9)
    shared = gl.explain(tiny, image, TEXTS, shared=True, **options)
    per_text = gl.explain(tiny, image, TEXTS, shared=False, **options)
    assert tuple(shared.maps.shape) == (5, 4, 9)
    assert_same(shared, per_text)
    assert float(shared.maps.amax()) > 0  # not trivially equal


@pytest.mark.parametrize("mode", ["forward", "paper"])
def test_mixed_batch_of_images_each_with_several_texts(tiny, images, mode):
    # images[0] and [1] share a size (one batch), images[2] has another; each image has 2 or 3 texts,
    # given in an interleaved order
    order = [0, 1, 2, 0, 2, 1, 0, 2]
    pairs_images = [images[i] for i in order]
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(order))]
    shared = gl.explain(tiny, pairs_images, texts, mode=mode)  # the default takes the shared route
    one_by_one = [gl.explain(tiny, img, txt, mode=mode, shared=False) for img, txt in zip(pairs_images, texts)]
    assert isinstance(shared.maps, list) and len(shared.maps) == len(order)
    for p, single in enumerate(one_by_one):
        torch.testing.assert_close(shared.maps[p], single.maps[0], rtol=0, atol=1e-5 * float(single.maps.abs().max()))
        torch.testing.assert_close(shared.scores[p], single.scores[0], rtol=0, atol=1e-6)
    assert shared.image_sizes == [single.image_sizes[0] for single in one_by_one]


def test_text_embeddings_as_tensors(tiny, images):
    embeddings = tiny.encode_text(TEXTS)
    from_tensors = gl.explain(tiny, images[0], embeddings * 3.0)  # any scale: normalised first
    assert_same(from_tensors, gl.explain(tiny, images[0], TEXTS, shared=False))


def test_the_route_is_taken_only_when_texts_share_an_image(tiny, images, monkeypatch):
    calls = []
    original = shared_image.grad_eclip_shared
    monkeypatch.setattr("gradeclip_lib.methods.grad_eclip.grad_eclip_shared",
                        lambda *a, **k: calls.append(len(a[1])) or original(*a, **k))
    gl.explain(tiny, images[:2], TEXTS[:2])  # two images, one text each
    assert calls == []
    gl.explain(tiny, [images[0], images[1], images[0]], TEXTS[:3])  # images[0] twice: one pass for it
    assert calls == [2]  # one call, on the 2 distinct images of the batch


def test_an_image_given_twice_is_run_once(tiny, images, monkeypatch):
    import importlib

    front = importlib.import_module("gradeclip_lib.explain")  # the module, not the function of that name
    prepared = []
    original = front.prepare
    monkeypatch.setattr(front, "prepare", lambda items, *a, **k: prepared.append(len(items)) or original(
        items, *a, **k))
    exp = gl.explain(tiny, [images[0], images[0], images[1]], TEXTS[:3])
    assert prepared == [2] and len(exp.scores) == 3


def test_readout_reproduces_the_embedding(tiny, images, monkeypatch):
    from gradeclip_lib.capture import Capture
    from gradeclip_lib.images import prepare
    from gradeclip_lib.methods.common import image_embeddings, vision_trunk
    from gradeclip_lib.models.towers import run_blocks

    pixels, _ = prepare([images[2]], tiny.patch_size, tiny.mean, tiny.std)
    pixels = pixels[0][None]
    blocks = tiny.vision_blocks
    x = vision_trunk(tiny, pixels, torch.zeros(1, dtype=torch.long), len(blocks) - 1)
    with torch.no_grad(), Capture(blocks[-1:], leaf=False) as cap:
        tokens = run_blocks(blocks[-1:], x)
    readout = class_token_readout(tiny, x, tokens)
    with torch.no_grad():
        torch.testing.assert_close(readout(cap.records[0].out[:, 0]), image_embeddings(tiny, pixels))
        nudge = torch.randn(cap.records[0].out[:, 0].shape, generator=torch.Generator().manual_seed(0))
        changed = readout(cap.records[0].out[:, 0] + nudge)
    assert not torch.allclose(changed, image_embeddings(tiny, pixels))  # the class token's output matters

    # the class-token shortcut (ln_post and proj of one token) equals the model's own pooling of every
    # token, which the readout takes when the model pools otherwise (an attention pool, here the identity)
    monkeypatch.setattr(tiny.visual, "attn_pool", torch.nn.Identity())
    monkeypatch.setattr(tiny.visual, "attn_pool_contrastive", None, raising=False)
    general = class_token_readout(tiny, x, tokens)
    with torch.no_grad():
        torch.testing.assert_close(general(cap.records[0].out[:, 0] + nudge), changed)


def test_per_image_matmul_against_a_loop():
    gen = torch.Generator().manual_seed(0)
    rows, mats = torch.randn(7, 5, generator=gen), torch.randn(3, 5, 4, generator=gen)
    index = torch.tensor([2, 0, 2, 1, 2, 0, 2])
    expected = torch.stack([rows[p] @ mats[index[p]] for p in range(7)])
    torch.testing.assert_close(per_image_matmul(rows, mats, index), expected)


def test_many_texts_do_not_copy_the_image(tiny, images, monkeypatch):
    import gradeclip_lib.adapters.clip_vit as module

    seen = []
    original = module.vision_trunk
    monkeypatch.setattr(module, "vision_trunk", lambda clip, pixels, index, stop: seen.append(len(index)) or original(
        clip, pixels, index, stop))
    texts = [f"a photo of {n} things" for n in range(300)]
    exp = gl.explain(tiny, images[0], texts)
    assert seen == [1] and tuple(exp.maps.shape[:1]) == (300,)


# ----------------------------------------------------------------------------- one text, many images
TEXT_OPTIONS = [{"mode": "forward"}, {"mode": "forward", "qk": "width"}, {"mode": "forward", "n_layers": 2},
                {"mode": "forward", "spatial_weight": False}, {"mode": "paper"}, {"mode": "paper", "n_layers": 1}]


@pytest.mark.parametrize("options", TEXT_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_one_text_many_images_equals_one_backward_per_image(tiny, images, options):
    from gradeclip_lib.methods import TEXT_METHODS

    fn = TEXT_METHODS["grad_eclip"].fn
    # two texts of different lengths, each against several images, interleaved
    texts = [TEXTS[1], TEXTS[0], TEXTS[1], TEXTS[1], TEXTS[0]]
    ids = tiny.tokenize(texts)
    targets = tiny.encode_image([images[i % 3] for i in range(5)])
    shared = fn(tiny, ids, targets, shared=True, **options)
    per_pair = fn(tiny, ids, targets, shared=False, **options)
    torch.testing.assert_close(shared.maps, per_pair.maps, rtol=0, atol=2e-5)
    torch.testing.assert_close(shared.scores, per_pair.scores, rtol=0, atol=1e-6)
    assert float(shared.maps.max()) > 0.1


def test_explain_text_against_many_images(tiny, images):
    many = gl.explain_text(tiny, images, TEXTS[1])  # one text, three images: one explanation per image
    assert isinstance(many, list) and len(many) == 3
    for image, words in zip(images, many):
        alone = gl.explain_text(tiny, image, TEXTS[1])
        assert words.tokens == alone.tokens and words.score == pytest.approx(alone.score, abs=1e-6)
        torch.testing.assert_close(words.weights, alone.weights, rtol=0, atol=2e-5)
    embeddings = tiny.encode_image(images)
    from_embeddings = gl.explain_text(tiny, embeddings, TEXTS[1])
    torch.testing.assert_close(from_embeddings[2].weights, many[2].weights)
    single = gl.explain_text(tiny, images[0], TEXTS[1])
    assert isinstance(single, gl.TextExplanation)


def test_the_text_route_is_taken_when_enough_images_share_a_text(tiny, images, monkeypatch):
    calls = []
    from gradeclip_lib.methods import shared_text

    original = shared_text.grad_eclip_text_shared
    monkeypatch.setattr("gradeclip_lib.methods.grad_eclip.grad_eclip_text_shared",
                        lambda clip, ids, *a, **k: calls.append(len(ids)) or original(clip, ids, *a, **k))
    from gradeclip_lib.methods.grad_eclip import SHARED_TEXT_FROM

    gl.explain_text(tiny, images[0], TEXTS[:2])  # one image, two different texts
    embeddings = tiny.encode_image(images)
    gl.explain_text(tiny, embeddings[[0, 1, 2] * 3][: SHARED_TEXT_FROM - 1], TEXTS[0])  # too few to pay
    assert calls == []
    gl.explain_text(tiny, embeddings[[0, 1, 2] * 4][:SHARED_TEXT_FROM], TEXTS[0])
    assert calls == [SHARED_TEXT_FROM]  # one call for every pair; it runs the one text once


# ------------------------------------------------------------------------------ prompt maps and atlas
@pytest.mark.parametrize("mode", ["forward", "paper"])
def test_prompt_maps_equal_explain(tiny, images, mode):
    maps = gl.prompt_maps(tiny, images[2], mode=mode)
    got = maps(TEXTS)
    expected = gl.explain(tiny, images[2], TEXTS, mode=mode, shared=False)
    assert got.image_sizes == expected.image_sizes and got.options["mode"] == mode
    torch.testing.assert_close(got.maps, expected.maps, rtol=0, atol=1e-5 * float(expected.maps.abs().max()))
    torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=1e-6)
    torch.testing.assert_close(maps(tiny.encode_text(TEXTS[:1])).maps, got.maps[:1])  # embeddings work too


def test_class_atlas_ranks_classes_and_regions(tiny, images):
    names = ["cat", "dog", "car", "tree", "boat"]
    classifier = tiny.encode_text([f"a photo of a {n}." for n in names]).T
    atlas = gl.class_atlas(tiny, images[0], names, classifier=classifier)
    assert torch.allclose(atlas.probs.sum(), torch.tensor(1.0)) and len(atlas.top(3)) == 3
    assert atlas.top(1)[0] == int(atlas.explanation.scores.argmax())
    direct = gl.explain(tiny, images[0], classifier.T, shared=False)
    torch.testing.assert_close(atlas.explanation.maps, direct.maps, rtol=0, atol=1e-5 * float(direct.maps.max()))
    # the region ranking: each class's share of map mass inside the box, best first
    maps = atlas.explanation.upsampled(normalized=False)
    box = (0, 0, 20, 28)  # top-left quarter of the 40 x 56 image
    shares = maps[:, :20, :28].flatten(1).sum(1) / maps.flatten(1).sum(1)
    for criterion, score in (("share", shares), ("weighted share", shares * atlas.probs),
                             ("mass", maps[:, :20, :28].flatten(1).sum(1))):
        ranked = atlas.region(box, k=5, criterion=criterion)
        assert [n for n, _ in ranked] == [names[i] for i in score.argsort(descending=True).tolist()]
        assert ranked[0][1] == pytest.approx(float(score.max()), rel=1e-5)
    assert atlas.region(box)[0] == atlas.region(box, criterion="weighted share")[0]
    with pytest.raises(ValueError, match="criterion"):
        atlas.region(box, criterion="best")
    with pytest.raises(ValueError, match="region"):
        atlas.region(torch.ones(10, 10, dtype=torch.bool))
