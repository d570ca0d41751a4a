"""Grad-ECLIP and its baselines on CLIP with a ResNet image tower, each against an independent
computation on a tiny random model: the attention pool rewritten with explicit per-head loops, the
model's own `AttentionPool2d` where the input has its training size."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_resnet_clip, random_image

import gradeclip_lib as gl
from gradeclip_lib.errors import UnsupportedModelError
from gradeclip_lib.images import prepare
from gradeclip_lib.methods import IMAGE_METHODS, RESNET_METHODS
from gradeclip_lib.models.resnet_tower import resnet_embedding, trunk

TEXTS = ["a red circle", "a photo of a dog"]
FAST = {"rise": {"n_masks": 40}, "m2ib": {"steps": 3, "samples": 2}}  # as in test_baselines


def pixels_of(clip, image):
    (pixels,), _ = prepare([image], clip.patch_size, clip.mean, clip.std)
    return pixels[None]


def reference_grad_eclip(clip, image, text, qk="head", spatial_weight=True):
    """Grad-ECLIP by hand: the pool's tokens, positions resized from scratch, attention head by head,
    w by autograd at the pool output before c_proj, the map summed cell by cell and channel by channel."""
    visual, pool = clip.visual, clip.visual.attnpool
    feats = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(pixels_of(clip, image))))))
    _, c, h, w = feats.shape
    side = int(math.sqrt(pool.positional_embedding.shape[0] - 1))
    grid_pos = pool.positional_embedding[1:].T.reshape(1, c, side, side)
    grid_pos = F.interpolate(grid_pos, size=(h, w), mode="bicubic", align_corners=False).reshape(c, h * w).T
    cells = feats[0].reshape(c, h * w).T
    x = torch.cat([cells.mean(0, keepdim=True) + pool.positional_embedding[:1], cells + grid_pos])
    q, k, v = pool.q_proj(x), pool.k_proj(x), pool.v_proj(x)
    heads = pool.num_heads
    d = c // heads
    o = torch.zeros(c)
    for head in range(heads):
        part = slice(head * d, (head + 1) * d)
        att = (q[0, part] @ k[:, part].T / math.sqrt(d)).softmax(-1)
        o[part] = att @ v[:, part]
    o = o.detach().requires_grad_(True)
    t = clip.encode_text(text)[0]
    score = F.cosine_similarity(pool.c_proj(o), t, dim=0)
    (grad,) = torch.autograd.grad(score, o)
    emap = torch.zeros(h * w)
    for i in range(h * w):
        for head in range(heads):
            part = slice(head * d, (head + 1) * d)
            if not spatial_weight:
                lam = 1.0
            else:
                qq, kk = (q[0], k[1:]) if qk == "width" else (q[0, part], k[1:, part])
                cos = F.cosine_similarity(qq[None], kk, dim=1)
                lam = (cos[i] - cos.min()) / (cos.max() - cos.min())
            emap[i] += (grad[part] * v[1 + i, part]).sum() * lam
    return torch.relu(emap).reshape(h, w).detach(), score.detach()


@pytest.fixture(scope="module")
def clip():
    return make_tiny_resnet_clip()


def test_the_written_out_tower_is_the_models_own(clip):
    x = torch.randn(2, 3, 64, 64)
    assert torch.allclose(resnet_embedding(clip.visual, x), clip.visual(x), atol=1e-6)
    assert clip.backbone == "resnet" and clip.patch_size == 32


@pytest.mark.parametrize("qk, spatial_weight", [("head", True), ("width", True), ("head", False)])
def test_grad_eclip_matches_a_hand_written_attention_pool(clip, qk, spatial_weight):
    image = random_image(96, 160, 1)  # a 3 x 5 feature grid: not square, not the training 2 x 2
    exp = gl.explain(clip, image, TEXTS[0], qk=qk, spatial_weight=spatial_weight)
    ref, score = reference_grad_eclip(clip, image, TEXTS[0], qk, spatial_weight)
    assert exp.maps.shape == (1, 3, 5)
    assert ref.max() > 0 and torch.allclose(exp.maps[0], ref, atol=1e-6, rtol=1e-4)
    assert exp.scores[0] == pytest.approx(float(score), abs=1e-6)


def test_scores_are_the_models_own_and_batching_changes_nothing(clip):
    images = [random_image(64, 64, 2), random_image(64, 64, 3), random_image(96, 64, 4)]
    texts = [TEXTS[0], TEXTS[1], TEXTS[1]]
    for method in sorted(RESNET_METHODS):
        options = FAST.get(method, {})
        batched = gl.explain(clip, images, texts, method=method, **options)
        for p, (image, text, together, score) in enumerate(zip(images, texts, batched.maps, batched.scores)):
            seed = {"seed": p} if method == "random" else {}  # pair p of a batch is seeded with 0 + p
            alone = gl.explain(clip, image, text, method=method, **options, **seed)
            assert torch.allclose(alone.maps[0], together, atol=1e-5, rtol=1e-4), method
            assert float(score) == pytest.approx(float(alone.scores[0]), abs=1e-6)
    crop = gl.explain(clip, images[:2], texts[:2], preprocess="crop")
    own = F.cosine_similarity(clip.encode_image(images[:2]), clip.encode_text(texts[:2]))
    assert torch.allclose(crop.scores, own, atol=1e-6)


def test_baselines_against_the_models_own_pool(clip):
    """At the training size the model's AttentionPool2d runs as is: Grad-CAM differentiates through it,
    and the pool's attention weights come from torch's own multi-head attention."""
    image = random_image(64, 64, 5)
    pixels = pixels_of(clip, image)
    t = clip.encode_text(TEXTS[1])
    feats = trunk(clip.visual, pixels).requires_grad_(True)
    score = F.cosine_similarity(clip.visual.attnpool(feats), t)
    (grad,) = torch.autograd.grad(score.sum(), feats)
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * feats).sum(1)).detach()
    exp = gl.explain(clip, image, TEXTS[1], method="grad_cam")
    assert cam.max() > 0 and torch.allclose(exp.maps, cam, atol=1e-7, rtol=1e-4)

    pool = clip.visual.attnpool
    x = feats.detach().flatten(2).permute(2, 0, 1)
    x = torch.cat([x.mean(0, keepdim=True), x]) + pool.positional_embedding[:, None]
    _, weights = F.multi_head_attention_forward(
        x, x, x, x.shape[-1], pool.num_heads, None, torch.cat([pool.q_proj.bias, pool.k_proj.bias, pool.v_proj.bias]),
        None, None, False, 0.0, pool.c_proj.weight, pool.c_proj.bias, training=False, need_weights=True,
        use_separate_proj_weight=True, q_proj_weight=pool.q_proj.weight, k_proj_weight=pool.k_proj.weight,
        v_proj_weight=pool.v_proj.weight, average_attn_weights=True)
    attention = gl.explain(clip, image, TEXTS[1], method="self_attention")
    assert torch.allclose(attention.maps[0].flatten(), weights[0, 0, 1:], atol=1e-6)


def test_m2ib_works_on_the_stage_3_grid(clip):
    image = random_image(96, 160, 6)
    exp = gl.explain(clip, image, TEXTS[0], method="m2ib", steps=3, samples=2)
    assert exp.maps.shape == (1, 6, 10)  # stride 16
    assert exp.maps.std() > 0
    coarse = gl.explain(clip, image, TEXTS[0], method="m2ib", stage=4, steps=3, samples=2)
    assert coarse.maps.shape == (1, 3, 5)
    with pytest.raises(ValueError, match="stage"):
        gl.explain(clip, image, TEXTS[0], method="m2ib", stage=5)


def test_methods_that_need_vit_attention_say_which_apply(clip):
    image = random_image(64, 64, 7)
    for method in sorted(set(IMAGE_METHODS) - set(RESNET_METHODS)):
        with pytest.raises(UnsupportedModelError, match="grad_cam, grad_eclip, m2ib"):
            gl.explain(clip, image, TEXTS[0], method=method)
    with pytest.raises(ValueError, match="forward mode only"):
        gl.explain(clip, image, TEXTS[0], mode="paper")
    with pytest.raises(UnsupportedModelError, match="ResNet"):
        gl.attention_maps(clip, image)


def test_text_explanations_and_terms_work_on_a_resnet_clip(clip):
    image = random_image(64, 96, 8)
    text = gl.explain_text(clip, image, "a red circle and a dog")
    own = F.cosine_similarity(clip.encode_image(image), clip.encode_text("a red circle and a dog"))
    assert text.score == pytest.approx(float(own), abs=1e-6)
    assert float(text.scores.sum()) == pytest.approx(1.0, abs=1e-5)
    terms = gl.grad_eclip_terms(clip, image, TEXTS[0])
    assert terms.heads == clip.visual.attnpool.num_heads and terms.lam.shape == (1, terms.heads, 6)
    assert torch.allclose(terms.emap(), gl.explain(clip, image, TEXTS[0]).maps, atol=1e-7)


def test_load_clip_builds_resnet_architectures(caplog):
    with caplog.at_level(logging.WARNING):
        clip = gl.load_clip("RN50", pretrained=None)
    assert "pretrained" not in caplog.text  # asked for; the repr says "random weights"
    assert "random weights" in repr(clip) and logging.getLogger().level == logging.WARNING
    assert clip.backbone == "resnet" and clip.visual.attnpool.num_heads == 32
    assert len(gl.methods.RESNET_METHODS) >= 6


def test_the_shapesworld_resnet_preset_builds_and_a_missing_model_says_how_to_train_it(tmp_path):
    clip = gl.load_clip("shapes-resnet", pretrained=None)
    assert clip.backbone == "resnet" and clip.name == "shapes-resnet" and clip.preprocess_cfg.size == 128
    scene = gl.synthetic.make_scenes(1, seed=3, n_objects=2, size=128)[0]
    assert gl.explain(clip, scene.image, scene.objects[0].phrase).maps.shape == (1, 4, 4)
    with pytest.raises(gl.WeightsUnavailableError, match="--preset resnet"):
        gl.load_clip("shapes-resnet", pretrained=tmp_path)
