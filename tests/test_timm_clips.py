"""SigLIP (a MAP head) and EVA-02 (rotary class-token ViT) towers of open_clip, on tiny random configs: maps
equal plain re-computations of design.md's formulas, batched equals one at a time, any input size, and the
explained score is the model's own."""

import importlib.util

import pytest
import torch
import torch.nn.functional as F
from reference import (
    eva_grad_eclip_reference,
    eva_legrad_reference,
    map_pool,
    siglip_grad_eclip_reference,
    siglip_legrad_reference,
)

import gradeclip_lib as gl
from gradeclip_lib.authors_legrad import authors_legrad_siglip_map
from gradeclip_lib.methods import method_for, methods_of

KINDS = ["tiny_siglip", "tiny_eva"]
SIZES = [(32, 32), (40, 56)]  # the training size, and a non-square size whose positions are resampled


def texts(clip, n=2, seed=0):
    return F.normalize(torch.randn(n, clip.embed_dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def pixels_of(size, n=1, seed=0):
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind", KINDS)
def test_the_wrapped_tower_computes_what_open_clip_computes(kind, request):
    clip = request.getfixturevalue(kind)
    assert clip.family == {"tiny_siglip": "clip_siglip", "tiny_eva": "clip_eva"}[kind]
    assert clip.embed_dim == 32 and clip.patch_size == 8
    x = pixels_of((32, 32), n=2)
    with torch.no_grad():
        direct = clip.visual.head(clip.visual.trunk.forward_head(clip.visual.trunk.forward_features(x)))
    torch.testing.assert_close(clip.model.encode_image(x), direct)
    assert clip.model.encode_image(pixels_of((40, 56))).shape == (1, 32)  # dynamic size: any multiple of 8


@pytest.mark.parametrize("size", SIZES)
def test_grad_eclip_on_siglip_is_the_formula(tiny_siglip, size):
    x, t = pixels_of(size), texts(tiny_siglip)
    out = gl.explain(tiny_siglip, x, t[0], method="grad_eclip")
    expected, score, embedding = siglip_grad_eclip_reference(tiny_siglip, x, t[0])
    torch.testing.assert_close(embedding, tiny_siglip.model.encode_image(x)[0], rtol=1e-4, atol=1e-5)
    assert out.maps.shape == (1, size[0] // 8, size[1] // 8)
    assert expected.max() > 0 and (expected == 0).any()  # a map with structure, not a constant
    torch.testing.assert_close(out.maps[0], expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out.scores[0], score, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", SIZES)
def test_grad_eclip_on_eva_is_the_formula(tiny_eva, size):
    x, t = pixels_of(size), texts(tiny_eva)
    out = gl.explain(tiny_eva, x, t[1], method="grad_eclip")
    expected, score = eva_grad_eclip_reference(tiny_eva, x, t[1])
    assert expected.max() > 0 and (expected == 0).any()
    torch.testing.assert_close(out.maps[0], expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out.scores[0], score, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["grad_eclip", "legrad", "self_attention", "grad_cam", "rise", "random"])
def test_batched_equals_one_at_a_time(kind, method, request):
    clip = request.getfixturevalue(kind)
    x, t = pixels_of((40, 56), n=2), texts(clip, n=3)
    index = torch.tensor([0, 1, 1])
    options = {"n_masks": 16} if method == "rise" else {}
    info = method_for(clip.family, method)
    together = info.fn(clip, x, t, index, **options)
    for p, image in enumerate(index.tolist()):
        alone = info.fn(clip, x[image:image + 1], t[p:p + 1], torch.tensor([0]),
                        **({"seed": p} if method == "random" else options))
        torch.testing.assert_close(together.maps[p], alone.maps[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(together.scores[p], alone.scores[0], rtol=1e-4, atol=1e-6)
    with torch.no_grad():
        cosine = F.cosine_similarity(clip.model.encode_image(x)[index], t, dim=-1)
    torch.testing.assert_close(together.scores, cosine, rtol=1e-4, atol=1e-6)  # the model's own score


@pytest.mark.parametrize("kind", KINDS)
def test_the_shared_route_equals_a_backward_pass_per_pair(kind, request):
    clip = request.getfixturevalue(kind)
    x, t = pixels_of((40, 56), n=2), texts(clip, n=4)
    index = torch.tensor([0, 0, 1, 1])
    info = method_for(clip.family, "grad_eclip")
    shared, single = info.fn(clip, x, t, index, shared=True), info.fn(clip, x, t, index, shared=False)
    torch.testing.assert_close(shared.maps, single.maps, rtol=1e-4, atol=1e-6)


def test_the_map_heads_own_attention_is_its_probes_softmax(tiny_siglip):
    x = pixels_of((40, 56))
    out = gl.explain(tiny_siglip, x, texts(tiny_siglip)[0], method="self_attention")
    with torch.no_grad():
        probs = map_pool(tiny_siglip.visual.trunk.attn_pool, tiny_siglip.visual.trunk.forward_features(x)[0])[0]
    torch.testing.assert_close(out.maps[0], probs.mean(0)[0].reshape(5, 7), rtol=1e-5, atol=1e-6)


def test_siglip_scores_logit_and_probability(tiny_siglip):
    x, t = pixels_of((32, 32)), texts(tiny_siglip)[:1]
    by = {score: gl.explain(tiny_siglip, x, t, method="grad_eclip", score=score) for score in
          ("cosine", "logit", "probability")}
    model = tiny_siglip.model
    scale, bias = model.logit_scale.exp(), model.logit_bias
    logit = scale * by["cosine"].scores + bias
    torch.testing.assert_close(by["logit"].scores, logit)
    torch.testing.assert_close(by["probability"].scores, torch.sigmoid(logit))
    # the logit is an increasing affine function of the cosine: the same map, scaled by exp(logit_scale)
    torch.testing.assert_close(by["logit"].maps, scale * by["cosine"].maps, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="score must be one of"):
        gl.explain(tiny_siglip, x, t, method="grad_eclip", score="sigmoid")


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layer_index", [-2, 0])
@pytest.mark.parametrize("corrected", [False, True])
def test_legrad_on_siglip_is_the_formula(tiny_siglip, size, layer_index, corrected):
    x, t = pixels_of(size), texts(tiny_siglip, n=3)
    empty = t[2] if corrected else None
    out = gl.explain(tiny_siglip, x, t[0], method="legrad", layer_index=layer_index, empty_prompt=empty)
    expected = siglip_legrad_reference(tiny_siglip, x, t[0], layer_index, empty)
    torch.testing.assert_close(out.maps[0], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("layer_index", [-2, 0])
def test_legrad_on_eva_is_the_formula(tiny_eva, size, layer_index):
    x, t = pixels_of(size), texts(tiny_eva)
    out = gl.explain(tiny_eva, x, t[0], method="legrad", layer_index=layer_index)
    torch.testing.assert_close(out.maps[0], eva_legrad_reference(tiny_eva, x, t[0], layer_index),
                               rtol=1e-4, atol=1e-5)


def test_the_siglip_correction_prompt_is_encoded_or_explained(tiny_siglip):
    x, t = pixels_of((32, 32)), texts(tiny_siglip)
    by_text = gl.explain(tiny_siglip, x, t[0], method="legrad", empty_prompt="a photo of a")
    by_embedding = gl.explain(tiny_siglip, x, t[0], method="legrad",
                              empty_prompt=tiny_siglip.encode_text("a photo of a")[0])
    torch.testing.assert_close(by_text.maps, by_embedding.maps)
    words = gl.load_clip("shapes-siglip", pretrained=None)  # ShapesWorld's word tokenizer knows no "empty"
    with pytest.raises(gl.GradEclipError, match="empty_prompt=None"):
        gl.explain(words, torch.zeros(1, 3, 64, 64), "a red circle", method="legrad", empty_prompt="an empty scene")


@pytest.mark.skipif(importlib.util.find_spec("legrad") is None, reason="legrad-torch is not installed")
@pytest.mark.parametrize("side", [32, 64])  # the model's size, and twice it (square: the package's own limit)
@pytest.mark.parametrize("corrected", [False, True])
def test_legrad_on_siglip_is_the_authors(tiny_siglip, side, corrected):
    x, t = pixels_of((side, side)), texts(tiny_siglip, n=3)
    empty = t[2] if corrected else None
    theirs = authors_legrad_siglip_map(tiny_siglip, x, t[:2], empty=empty)
    ours = gl.explain(tiny_siglip, [x[0], x[0]], t[:2], method="legrad", empty_prompt=empty).maps
    # they min-max on the grid, then upsample (bilinear, by the patch): ours upsampled the same way
    ours = F.interpolate(ours[:, None], scale_factor=tiny_siglip.patch_size, mode="bilinear")[:, 0]
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)


def test_methods_that_read_clip_vit_blocks_say_which_apply(tiny_siglip):
    assert set(methods_of("clip_siglip")) == {"grad_eclip", "legrad", "self_attention", "grad_cam", "rise", "random"}
    with pytest.raises(gl.UnsupportedModelError, match="legrad"):
        gl.explain(tiny_siglip, pixels_of((32, 32)), texts(tiny_siglip)[0], method="rollout")


def test_full_size_siglip2_and_eva02_load_offline_with_random_weights(monkeypatch):
    from gradeclip_lib.models import loading

    monkeypatch.setattr(loading, "hub_reachable", lambda timeout=3.0: False)
    image = pixels_of((224, 160))
    siglip = gl.load("ViT-B-16-SigLIP2", pretrained=None)
    assert siglip.family == "clip_siglip" and siglip.embed_dim == 768
    with pytest.raises(gl.TokenizerUnavailableError, match=r"text embeddings \[T, E\]"):
        gl.explain(siglip, image, "a dog", method="grad_eclip")
    out = gl.explain(siglip, image, texts(siglip)[0], method="grad_eclip")  # embeddings need no tokenizer
    assert out.maps.shape == (1, 14, 10)
    eva = gl.load("EVA02-B-16", pretrained=None)  # open_clip's own tokenizer: strings work offline
    assert eva.family == "clip_eva"
    assert gl.explain(eva, image, "a dog", method="legrad").maps.shape == (1, 14, 10)
    with pytest.raises(gl.WeightsUnavailableError, match="no network"):
        gl.load_clip("ViT-B-16-SigLIP2", "webli", cache_dir="/nonexistent")
